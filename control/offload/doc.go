// Package offload is the asynchronous offload engine: it makes the card (a Driver) hold exactly what the
// SAD and SPD (package sadb) say, in the background, the way FreeBSD's ipsec_accel runs its offload and
// termination calls in a task queue.
//
// API calls change the store and return at once; the store's change hook kicks the engine, whose single
// goroutine takes a snapshot and reconciles the card with it (level-triggered: any number of changes
// coalesce into one pass, and a pass after a failure repairs what failed). Each pass applies changes in
// an order that never opens a gap:
//
//  1. install new and changed SAs (an SA is in the card before any policy points to it);
//  2. point every policy at its SA: for PROTECT, the newest mature SA that the card acked on that
//     interface (else the newest dying one, else none — ipsec.NoSA, which the card drops, counts and
//     reports as ACQUIRE: never plaintext);
//  3. remove SAs no longer wanted (no policy points to them any more); when an SA leaves its last
//     interface the driver wipes its key, and the store then reaps it (overwrites the SAD's key bytes and
//     frees its index);
//  4. install the SAs that had to wait for 3 (a re-added SA whose (SPI, dst) the card still held under its
//     old index), then repeat 2.
//
// Rekey is make-before-break as a consequence: a new SA for a policy is installed (1) before the policy
// switches to it (2), and the old one stays in the card — inbound traffic on it is still accepted — until
// it is deleted or expires (3).
//
// The card acks or nacks each (SA, interface): nack when its table is full (retried after something was
// removed), when it cannot do the algorithm or mode, or — decided here, without asking the card — when the
// interface is not in the SA's offload list. The state (pending, offloaded, refused + reason) is what
// `xdpsec sa list -s` and the metrics show, and acks and nacks are events.
//
// On a card whose tables serve both its interfaces (xdpsec's: Options.Protected/Wire or SharedTables) an
// offload list cannot split an entry between interfaces, so each entry is decided on the interface where
// the card uses it — an SA on the wire interface, a policy on the interface it classifies — and is
// offloaded to both or to neither. An SA whose list leaves out the wire interface is thus refused and
// absent from the card, and its traffic dropped and counted.
//
// Check compares the card (Driver.Dump) with the SAD/SPD after a pass, in the engine's goroutine, so it
// can run at any time, also under churn (`xdpsec check`). It derives the SA each policy should use on
// its own (refResolver), from the card's read-back, rather than repeating the engine's resolution.
//
// Concurrency, in one rule: the engine goroutine owns all working state and alone calls the Driver;
// other goroutines send it requests (Counters, GlobalCounters, SetDefaults, Check) or read what it
// published at the end of its last pass (SAStates, PolicyStates, Direction, Stats, Sync). Engine's
// documentation lists the fields on each side.
//
// Files: engine.go (the engine, its goroutine, requests and published state), pass.go (a pass and its
// snapshot view, offload lists), sas.go (steps 1, 3, 4, reaping, renumbering), policies.go (step 2),
// check.go (the consistency check), driver.go (the Driver contract).
package offload
