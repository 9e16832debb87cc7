// Package control is xdpsec's control plane, the "kernel side" of the inline IPsec offload design
// (FreeBSD's ipsec_offload): it keeps the authoritative SPD and SAD, offers each SA and policy to the
// card per interface and records the card's ack or nack, enforces lifetimes from the card's counters,
// publishes events, and serves the daemon's local API. This package holds only this overview; the work
// is in its subpackages:
//
//   - sadb: the SPD and SAD with ip-xfrm semantics (duplicate (SPI, dst, proto) refused, SAs found by
//     name, reqid or identity; states mature/dying/dead; card indices; key custody and wiping);
//   - offload: the asynchronous offload engine (one goroutine, a gap-free order: SAs before the policies
//     that point at them, policies away before SAs leave, PROTECT without SA → NoSA, never plaintext),
//     the Driver interface of the card, per-(SA, interface) ack/nack, rekey make-before-break, and the
//     consistency check behind `xdpsec check`; offload/fakecard is an in-memory card for tests;
//   - lifetime: soft and hard limits in bytes, packets, seconds since add and since first use (RFC 4301
//     §4.4.2.1), and sequence-number exhaustion, polled from the counters;
//   - events: ACQUIRE, SA/policy changes, expiries, acks and nacks, fanned out without blocking;
//   - api: HTTP/JSON over a 0600 unix socket, server and client; xfrmargs: the ip xfrm argument grammar
//     of `xdpsec sa add` / `sp add`; metrics: Prometheus;
//   - manager: all of the above for the daemon;
//   - config (the YAML) and daemon (the running gateway,
//     including the real Driver) belong to the configuration and data-path work.
//
// The daemon's use of the manager:
//
//	m, err := manager.New(cfg, drv, manager.Options{Acquires: acq, ExtraCounters: workers})
//	err = m.Start(ctx)         // install cfg's SAs and policies; start engine, poller, API, metrics
//	err = m.Sync(ctx)          // wait until the card holds them
//	res, err := m.ReloadFile() // SIGHUP: apply only the differences
//	err = m.Close()            // stop; the card keeps its entries, the SAD's keys are wiped
//
// docs/control.md has the API schema, the CLI grammar, the event and metric names, and the tests.
package control
