// Package manager ties the control plane together for the daemon (`xdpsec run`): the SPD/SAD store
// (sadb), the offload engine onto the card (offload), the lifetime poller (lifetime), the event bus
// (events), the API server on a unix socket (api) and optional Prometheus metrics (metrics).
//
// The daemon's use:
//
//	drv := card.New(...)                       // an offload.Driver: the real card, or fakecard in tests
//	m, err := manager.New(cfg, drv, manager.Options{ConfigPath: path})
//	if err := m.Start(ctx); err != nil { … }   // install cfg's SAs and policies, start engine, poller, API
//	…
//	res, err := m.ReloadFile()                 // SIGHUP: re-read ConfigPath, apply only the differences
//	…
//	m.Close()                                  // stop everything; the card keeps what it holds
//
// Start returns once the configuration is in the store and the API is listening; the card follows
// asynchronously (Sync waits for it). Reload and ReloadFile apply only what changed, by name: an SA whose
// keys, SPI, addresses, mode, reqid, algorithms, ESN, window or encapsulation changed is replaced (the new
// one added before the old one is deleted, so a policy moves to it make-before-break); one whose lifetime
// or offload list changed is updated in place; one that is unchanged is not touched at all, so it keeps
// its sequence numbers and replay window. SAs and policies added at run time through the API (without a
// config name) are left alone by a reload.
//
// Everything that reads the clock takes Options.Now, so tests can drive time lifetimes.
package manager
