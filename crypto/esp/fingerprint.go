package esp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// FingerprintLen is the length of a key fingerprint.
const FingerprintLen = 16

// Fingerprint returns a keyed fingerprint of p's algorithm and key material:
// HMAC-SHA-256 under secret over a domain label, the suite's nonce family and
// each key (cipher key, salt, auth key) with its length, truncated to 16
// bytes. It identifies the key across restarts (control/seqstate keeps
// sequence state under it) without storing the key or anything an attacker
// without the secret could test a guessed key against. The key bytes never
// leave this package.
//
// The family, not the exact suite, enters the fingerprint: AES-GCM
// (RFC 4106) and AES-GMAC (RFC 4543) run the same AES-GCM nonces under a
// key, and the ICV length does not change the keystream, so the same key
// under any of them is one nonce space and must share one sequence state.
func Fingerprint(p Params, secret []byte) ([FingerprintLen]byte, error) {
	var fp [FingerprintLen]byte
	spec, err := p.suite()
	if err != nil {
		return fp, fmt.Errorf("fingerprint sa key: %w", err)
	}
	family := spec.name
	if spec.kind == kindGCM || spec.kind == kindGMAC {
		family = "aes-gcm"
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("xdpsec sa key fingerprint v1\x00"))
	m.Write([]byte(family))
	for _, k := range [][]byte{spec.cipher, spec.salt, spec.authKey} {
		var n [2]byte
		binary.BigEndian.PutUint16(n[:], uint16(len(k)))
		m.Write(n[:])
		m.Write(k)
	}
	var sum [sha256.Size]byte
	copy(fp[:], m.Sum(sum[:0]))
	clear(sum[:])
	return fp, nil
}
