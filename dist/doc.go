// Package dist holds what `make install` ships besides the binary — the systemd unit (systemd/), the
// Grafana dashboard (grafana/) and the Prometheus alert rules (prometheus/) — and the tests that check
// the installation: the files `make install` lays out, the unit's `systemd-analyze verify`, and the
// daemon run with exactly the unit's capabilities and system-call filter. It has no code.
package dist
