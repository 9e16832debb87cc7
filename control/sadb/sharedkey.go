package sadb

import (
	"crypto/rand"
	"fmt"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// Two live SAs under one AEAD key are two senders of nonces under that key: each numbers its packets
// from 1 and draws its own IV mask (crypto/esp: seqiv), so an IV repeats across them as soon as
// seq₁ ⊕ seq₂ = mask₁ ⊕ mask₂ — improbable, not impossible, and a single repeat under AES-GCM or
// ChaCha20-Poly1305 gives away the XOR of two plaintexts and the authentication key. The classic
// way to get there is a static configuration that uses one key for both directions (the peer's
// outbound SA is our inbound one). The SAD therefore refuses an SA with an AEAD suite whose key is
// already the key of another live SA, in either direction, under any SPI. Keys are compared by a
// keyed fingerprint over the suite's nonce family (esp.Fingerprint): AES-GCM and AES-GMAC under one
// key count as one key, and no key bytes are copied into a map. CBC with HMAC takes a fresh random
// IV per packet and is not refused.

// keyPrint is an SA's key fingerprint; ok is false for suites without nonces to protect.
type keyPrint struct {
	fp [esp.FingerprintLen]byte
	ok bool
}

// newKeySecret is the fingerprint secret of one Store (never stored: fingerprints live only in
// memory).
func newKeySecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// keyPrintOf fingerprints sa's key when sa runs an AEAD suite.
func (s *Store) keyPrintOf(sa *SA) keyPrint {
	if sa.AEAD == nil {
		return keyPrint{}
	}
	p, err := sa.ESPParams()
	if err != nil {
		return keyPrint{} // prepare has checked the suite; nothing to compare against
	}
	fp, err := esp.Fingerprint(p, s.keySecret)
	if err != nil {
		return keyPrint{}
	}
	return keyPrint{fp: fp, ok: true}
}

// keySharedLocked fails when another live SA than except holds the key kp stands for.
func (s *Store) keySharedLocked(kp keyPrint, except *saRec) error {
	if !kp.ok {
		return nil
	}
	if r, ok := s.byKeyPrint[kp.fp]; ok && r != except {
		return fmt.Errorf("%w: its key is the key of %s: two SAs under one AEAD key repeat nonces (an SA "+
			"per direction needs its own key)", ErrInvalid, r.e.ID())
	}
	return nil
}

// holdKeyLocked records that r holds its key; dropKeyLocked forgets it.
func (s *Store) holdKeyLocked(r *saRec) {
	if r.key.ok {
		s.byKeyPrint[r.key.fp] = r
	}
}

func (s *Store) dropKeyLocked(r *saRec) {
	if r.key.ok && s.byKeyPrint[r.key.fp] == r {
		delete(s.byKeyPrint, r.key.fp)
	}
}
