// Package esp is xdpsec's ESP engine (RFC 4303): the per-packet transform
// the AF_XDP crypto workers run, in place, in caller-provided buffers.
//
// # SAs
//
// An SA is one Security Association: one direction of one ESP flow. Params
// describes it with the names ip-xfrm uses (SPI, src/dst, mode, aead or
// enc+auth, esn, replay-window, encap, seq); Params.Validate returns a
// *FieldError naming the bad field in the configuration file's spelling
// ("aead.key", "replay_window", …) so a caller can add the file and SA name.
// New validates, copies the keys into one buffer owned by the SA and builds
// the cipher objects. An SA has both Encap (outbound) and Decap (inbound):
// a dataplane uses one per SA, the offline pcap tool either.
//
// Suites (RFC 8221 MUST/SHOULD), by ip-xfrm name and alias:
//
//	rfc4106(gcm(aes))               aes-gcm-128/-192/-256  key ‖ 4-byte salt, 8-byte IV, 16-byte ICV (12 allowed)
//	rfc7539esp(chacha20,poly1305)   chacha20-poly1305      32-byte key ‖ 4-byte salt (RFC 7634)
//	rfc4543(gcm(aes))               aes-gmac-128/-192/-256 integrity only (RFC 4543)
//	cbc(aes) + hmac(sha256)         aes-cbc-128/-256 + hmac-sha256-128   random 16-byte IV (RFC 3602, RFC 4868)
//	ecb(cipher_null) + hmac(sha256) null + hmac-sha256-128               (RFC 2410)
//
// # Buffer layout
//
// Encap(buf, off, n) takes the inner IP packet at buf[off:off+n] and returns
// the outer packet at buf[start:end]; Decap(buf, off, n) takes the outer
// packet and returns the inner (tunnel) or rebuilt (transport) packet.
// Both need Headroom bytes in front of off; Encap also needs Tailroom bytes
// behind off+n (more with TFC padding). Both regions may be overwritten: the
// first Headroom-72 bytes of the front region are per-call scratch (AEAD
// nonce, ESN AAD, HMAC output), which keeps the hot path free of heap
// allocations and of shared scratch state.
//
//	           |<------------- Headroom (128) ------------->|
//	buf:  ... [scratch 56][ outer IPv4/6 ][UDP][ESP][ IV   ][ inner packet (n) ][pad][pl][nh][ICV] ...
//	                       ^start (tunnel)            ^off                                         ^end
//	                                                             |<- Tailroom (64) ->|
//
// Transport mode moves the packet's own IP header (IPv6: with hop-by-hop,
// routing and destination options headers) forward by the ESP header and IV
// (and UDP) length and rewrites its protocol, length and checksum; Decap
// moves it back. Bytes beyond an IP packet's own length (Ethernet padding)
// are ignored. Overhead(n) tells how many bytes Encap adds.
//
// # Processing
//
// Encap: parse the inner header → take the next sequence number → pad
// (RFC 4303 §2.4: 1, 2, 3, … to the cipher block and a 4-byte boundary;
// optional TFC padding in tunnel mode, §2.7) → encrypt and authenticate →
// build the outer header: tunnel mode copies DSCP and ECN from the inner
// header (RFC 4301 §5.1.2.1, RFC 6040 normal mode), sets TTL/hop limit, the
// DF bit by policy (copy/set/clear), the IPv4 ID from the sequence number,
// the IPv4 checksum or IPv6 payload length; UDP encapsulation (RFC 3948)
// adds a UDP header with a zero checksum over IPv4 and a computed one over
// IPv6.
//
// Decap: parse the outer header (IPv4 checksum verified; fragments refused)
// → UDP/4500 checks (RFC 3948: a zero non-ESP marker is IKE, one 0xff byte
// a keepalive: both ErrNotESP) → SPI → infer the ESN high half (RFC 4303
// Appendix A) → replay pre-check → verify the ICV in constant time (HMAC
// before any CBC decryption; AEAD Open, which clears its output when the tag
// fails) → only then update the replay window (RFC 4303 §3.4.3) → check padding and next header → strip to the
// inner packet (tunnel: trimmed to its own length, which drops TFC padding;
// ECN combined per RFC 6040 §4.2) or rebuild the IP header (transport).
//
// # Sequence numbers and IVs
//
// Outbound numbers come from an atomic counter (compare-and-swap) and never
// cycle: without ESN Encap refuses after 2^32-1, with ESN after 2^64-1,
// returning ErrSeqExhausted — the control plane must then hard-expire the SA.
// Nor do they pass the SA's ceiling: WithCeiling and RaiseCeiling let the
// durable state (control/seqstate) hold Encap to numbers it has reserved on
// disk, so no later life of the SA can send one again; beyond it Encap
// returns ErrSeqUnreserved and takes no number. Without a ceiling
// (NoCeiling, the default) Encap stops only at exhaustion.
// Params.Seq restores state (outbound: last number used; inbound: top of the
// window, every number up to it counting as seen, so a restarted receiver
// drops everything at or below its last persisted high-water mark).
// GCM, ChaCha20-Poly1305 and GMAC IVs are the 64-bit sequence number XOR a
// per-SA 64-bit mask, as Linux's seqiv builds them (RFC 4106 §3.1, RFC 7634
// §2, RFC 4543 §3.1 ask only for uniqueness): a bijection for a fixed mask,
// so an IV never repeats under one SA; the mask, random per SA unless
// WithIVMask carries the previous life's, makes a repeat across lives whose
// counter state was lost improbable instead of certain (iv.go explains).
// CBC IVs are unpredictable (RFC 3602 §3): each per-caller state draws them
// in batches of 64 from its own AES-CTR generator keyed from crypto/rand
// (NIST SP 800-38A Appendix C), 2.5 ns per packet and no allocation; see
// iv.go for why not getrandom per batch. With ESN the high half enters the
// AEAD AAD (RFC 4106 §5, RFC 7634 §2.1), the GMAC AAD (RFC 4543 §5) or the
// end of the HMAC input (RFC 4303 §3.3.2.1).
//
// # Updates in place
//
// Continue(prev, p) builds an SA that continues prev's cryptographic state
// with new non-key parameters (src, mode, TTL, DF, TFC padding, UDP
// encapsulation, ESN, replay window size within its capacity): it shares
// prev's counter, ceiling, IV mask and replay window, so a configuration
// reload that touches neither SPI, destination, algorithm nor key keeps
// counting where prev was, even while both are in use. Anything else is
// refused with ErrNotContinuable.
//
// # Concurrency
//
// Encap, Decap, Counters, NextSeq, Ceiling, RaiseCeiling and ReplayTop may be
// called from any number of goroutines at once on one SA (and on the SAs
// that continue it): sequence numbers are unique across callers, the replay window (package replay, an RFC 6479 bitmap ring behind
// a short mutex) accepts each number once. HMAC and CBC objects keep running
// state, so each call borrows one from a small per-SA pool of atomic slots.
// Wipe zeroes the SA's key buffer and drops its cipher objects; calls that
// start afterwards fail with ErrWiped. Call Wipe once workers can no longer
// reach the SA (remove it from their table first): a call already running
// may read key bytes Wipe is zeroing. Go cannot zero the key schedules inside
// crypto/aes or x/crypto objects; dropping every reference is the limit.
// Params, AEADAlg, EncAlg and AuthAlg print their keys as "[N-byte key
// redacted]" in every fmt verb, in JSON and through slog (redact.go), so a
// logged Params shows no key material.
//
// # Errors and counters
//
// Every refused packet returns one of the sentinel errors (type *Error,
// never wrapped on the hot path, so compare with errors.Is or read
// ReasonOf) and increments the SA's counter for its Reason. Reason values
// and names are stable (they index Counters.Errors and name metrics):
//
//	replay           sequence number seen or left of the window
//	icv              integrity check failed (also: an ESN packet far below the window,
//	                 whose inferred high half is one epoch ahead, RFC 4303 App. A)
//	bad_padding      padding not 1, 2, 3, … or pad length beyond the payload
//	bad_next_header  tunnel mode next header not 4/41, or not the inner version
//	truncated        shorter than its headers, IV, trailer and ICV
//	seq_exhausted    outbound numbers used up: the SA needs a hard expiry
//	wrong_spi        ESP header names another SA
//	not_esp          not ESP: other protocol, IKE or keepalive on UDP, wrong port, or the
//	                 wrong encapsulation (plain ESP to a UDP SA, UDP to a plain SA)
//	bad_header       malformed IP header (outer on decap, inner on encap)
//	fragment         an IP fragment (outer on decap; transport-mode inner on encap)
//	no_room          buffer lacks headroom/tailroom
//	too_big          result would exceed 65535 bytes
//	dummy            next header 59, a dummy packet (RFC 4303 §2.6): drop silently
//	ecn              outer CE over a not-ECT inner packet (RFC 6040 §4.2): drop
//	wiped            the SA was wiped
//	seq_unreserved   outbound: the next number is above the ceiling (the durable
//	                 reservation has not reached the disk yet, or writing it fails)
//
// Counters also hold packets and bytes per direction; bytes count inner
// packets (plaintext), as IPsec byte lifetimes do.
//
// # Not done
//
// No reassembly (fragments are refused, the card/kernel reassembles); outer
// IPv6 extension headers on decap are walked (hop-by-hop, routing,
// destination options) but never emitted on encap; transport mode over UDP
// does not apply RFC 3948 §3.1.2 checksum fix-ups to inner TCP/UDP after a
// NAT. AES-GMAC has no vector in RFC 4543; it is checked against the Linux
// kernel's crypto self-test vector (testmgr.h) and by construction against
// crypto/cipher.
package esp
