// Package seqstate keeps the per-SA sequence state that must survive a
// restart, so that an SA with a static key never sends a sequence number or
// an AEAD IV twice and never accepts an old packet again (RFC 4303 §3.3.3,
// §3.4.3; RFC 4106 §3.1).
//
// # What it keeps
//
// An SA is recognised across restarts by its SPI, its destination and a
// keyed fingerprint of its key and algorithm (esp.Fingerprint under a random
// 32-byte secret stored in the directory, mode 0600): the key itself is never
// written. Per SA:
//
//   - outbound: the reserved ceiling — the highest sequence number any life
//     of the SA may send — and the AEAD IV mask, which every life reuses
//     (crypto/esp iv.go explains why the mask must stay with the counter);
//   - inbound: the highest authenticated sequence number, persisted every
//     InboundEvery; a restarted receiver drops everything at or below it;
//   - tombstones: keys that expired hard or exhausted their numbers. The
//     store refuses them, under any SPI and in either direction, with the
//     reason.
//
// # Reservations
//
// The packet path never writes: an outbound SA may use numbers up to its
// ceiling (esp.WithCeiling, esp.SA.RaiseCeiling), and the store raises the
// ceiling only after a reservation above it reached the disk. A write
// replaces a file the crash-safe way — temporary file, fsync, rename, fsync
// of the directory — and only then moves the SAs' ceilings. So after a
// crash at any point the disk holds a ceiling at least as high as any
// number sent, and the next life starts strictly above it (Outbound). When
// writes fail (disk full, EIO) the SAs stop at their ceilings — Encap
// drops with esp.ErrSeqUnreserved, counted — rather than go beyond, and
// every Step tries again.
//
// A reservation covers ReserveAhead (10 s) at the SA's observed rate
// (peak-held, decaying over ReserveAhead), at least MinReservation (2^20),
// and is renewed by Step once less than half of that is left. A restart thus
// skips at most one reservation of numbers: with the defaults a non-ESN SA
// sending up to 100,000 packets/s can restart about 4,000 times before its
// 2^32 numbers run out.
//
// # Use
//
// The daemon opens the store on its state directory (Open; DefaultDir is
// /var/lib/xdpsec/<instance>), runs Run on a goroutine of its own, and
// before the offload engine installs the configuration's SAs calls Prepare
// with the outbound ones (one write for all). The driver then, for each SA:
//
//	outbound:  h, err := store.Outbound(p)   // durable reservation; refuses retired keys
//	           p.Seq = h.Seq()
//	           sa, err := esp.New(p, h.Options()...)
//	           h.Attach(sa)
//	inbound:   h, err := store.Inbound(p)
//	           p.Seq = h.Top()
//	           sa, err := esp.New(p)
//	           h.Attach(sa)
//	update in place (esp.Continue): h.Attach(newSA) — same handle
//	removed from the SAD:            h.Release()  — kept for Grace
//	hard expiry, seq exhausted:      h.Retire("hard-expired"), or store.Retire(p, "seq-exhausted")
//	                                 where the handle is not at hand (the lifetime poller)
//
// and Close at shutdown persists the last inbound marks.
//
// # Files
//
// The directory (created 0700; refused when another user owns it or group or
// others can write it or a parent that is not sticky) holds "secret", "lock"
// (an flock: one daemon per directory) and up to 64 shard files
// "seq-XX.state" (entries spread by the fingerprint's first byte, so a
// reservation rewrites one shard, not everything). file.go describes their
// format. Released entries are pruned after Grace (24 h) or, oldest first,
// beyond MaxReleased; tombstones beyond MaxTombstones, oldest first.
package seqstate
