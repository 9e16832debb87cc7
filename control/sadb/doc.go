// Package sadb is the authoritative Security Policy Database (SPD) and Security Association Database
// (SAD) of an xdpsec instance: the "kernel side" of the inline offload design, which the card only mirrors.
//
// Its semantics follow what Linux users know from ip xfrm:
//   - an SA is identified by (SPI, destination, protocol); adding a second SA with the same triple fails
//     with ErrExists, as `ip xfrm state add` fails with EEXIST. An SA may also carry a unique name (the
//     config's handle) and a reqid that policy templates use to find it.
//   - `update` changes an SA in place: its lifetimes, offload list and name, and what the ESP engine can
//     change on a running SA while it keeps its sequence numbers, IV mask and replay window (source
//     address, mode, reqid, TTL, DF, TFC padding, ESN, replay window size, UDP encapsulation; Compare's
//     InPlace). The SPI, destination, direction, algorithms and keys of an SA are fixed for its life: a
//     new key is a new SA (rekey), never an edit — ErrImmutable says so.
//   - a policy is identified by (direction, selector); a second one fails with ErrExists (priority is not
//     part of the identity, as in xfrm_policy_insert).
//
// SA life cycle (RFC 4301 §4.4.2.1): Mature → Dying (soft limit reached) → Dead (hard limit reached, or
// deleted). A deleted SA leaves every lookup at once, but its SA index and its key stay reserved in a
// graveyard until the offload engine has removed it from the card and calls Reap, which overwrites the key
// bytes and frees the index. This is what lets "terminate the offload before releasing the key" hold
// without the store knowing about the card.
//
// Every SA gets a card SA index (1..capacity; 0 means "no SA" to the card) and every policy a policy id,
// both allocated here, lowest free first.
//
// The store is safe for concurrent use. Readers get copies; keys are copied out only on request
// (WithKeys), so a listing can never leak or alias key bytes.
package sadb
