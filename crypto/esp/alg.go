package esp

import (
	"strings"
)

// suiteKind is the transform family the engine runs for an SA.
type suiteKind uint8

const (
	kindGCM    suiteKind = iota + 1 // RFC 4106
	kindChaCha                      // RFC 7634
	kindGMAC                        // RFC 4543 (integrity only, AES-GCM with empty plaintext)
	kindCBC                         // RFC 3602 + RFC 4868
	kindNull                        // RFC 2410 + RFC 4868
)

// suiteSpec is a resolved, validated algorithm suite.
type suiteSpec struct {
	kind    suiteKind
	cipher  []byte // cipher key (AEAD: without salt)
	salt    []byte // 4 bytes for the AEADs
	authKey []byte // HMAC key
	ivLen   int    // explicit IV bytes on the wire
	icvLen  int
	align   int // the ciphertext (payload..next header) is a multiple of this
	name    string
}

// Canonical ip-xfrm names.
const (
	AlgGCM     = "rfc4106(gcm(aes))"
	AlgChaCha  = "rfc7539esp(chacha20,poly1305)"
	AlgGMAC    = "rfc4543(gcm(aes))"
	AlgCBC     = "cbc(aes)"
	AlgNull    = "ecb(cipher_null)"
	AlgHMAC256 = "hmac(sha256)"
)

// aeadAliases maps a lower-case name to its canonical name and, for aliases
// that fix a key size, the required AES key length (0 = any valid).
var aeadAliases = map[string]struct {
	canon  string
	keyLen int
}{
	AlgGCM:              {AlgGCM, 0},
	"aes-gcm":           {AlgGCM, 0},
	"aes-gcm-128":       {AlgGCM, 16},
	"aes-gcm-192":       {AlgGCM, 24},
	"aes-gcm-256":       {AlgGCM, 32},
	"aes128gcm16":       {AlgGCM, 16}, // strongSwan spelling
	"aes256gcm16":       {AlgGCM, 32},
	AlgChaCha:           {AlgChaCha, 32},
	"chacha20-poly1305": {AlgChaCha, 32},
	"chacha20poly1305":  {AlgChaCha, 32},
	AlgGMAC:             {AlgGMAC, 0},
	"aes-gmac":          {AlgGMAC, 0},
	"aes-gmac-128":      {AlgGMAC, 16},
	"aes-gmac-192":      {AlgGMAC, 24},
	"aes-gmac-256":      {AlgGMAC, 32},
}

var encAliases = map[string]struct {
	canon  string
	keyLen int
}{
	AlgCBC:        {AlgCBC, 0},
	"aes-cbc":     {AlgCBC, 0},
	"aes-cbc-128": {AlgCBC, 16},
	"aes-cbc-192": {AlgCBC, 24},
	"aes-cbc-256": {AlgCBC, 32},
	AlgNull:       {AlgNull, 0},
	"null":        {AlgNull, 0},
	"cipher_null": {AlgNull, 0},
}

var authAliases = map[string]string{
	AlgHMAC256:          AlgHMAC256,
	"hmac-sha256-128":   AlgHMAC256,
	"hmac-sha2-256-128": AlgHMAC256,
	"sha256":            AlgHMAC256,
}

func aesKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }

// resolveSuite checks the algorithm fields and key lengths. The returned key
// slices alias the caller's; New copies them.
func resolveSuite(aead AEADAlg, enc EncAlg, auth AuthAlg) (suiteSpec, error) {
	var s suiteSpec
	if aead.Name != "" {
		if enc.Name != "" {
			return s, fieldErr("enc", ErrInvalidValue, "not allowed together with aead")
		}
		if auth.Name != "" {
			return s, fieldErr("auth", ErrInvalidValue, "not allowed together with aead")
		}
		a, ok := aeadAliases[strings.ToLower(strings.TrimSpace(aead.Name))]
		if !ok {
			return s, fieldErr("aead.alg", ErrUnknownAlgorithm, "%q", aead.Name)
		}
		s.name = a.canon
		kl := len(aead.Key) - 4
		switch {
		case a.canon == AlgChaCha && kl != 32:
			return s, fieldErr("aead.key", ErrKeyLength, "%s needs 36 bytes (32-byte key ‖ 4-byte salt), got %d", aead.Name, len(aead.Key))
		case a.keyLen != 0 && kl != a.keyLen:
			return s, fieldErr("aead.key", ErrKeyLength, "%s needs %d bytes (%d-byte key ‖ 4-byte salt), got %d", aead.Name, a.keyLen+4, a.keyLen, len(aead.Key))
		case a.canon != AlgChaCha && !aesKeyLen(kl):
			return s, fieldErr("aead.key", ErrKeyLength, "%s needs 20, 28 or 36 bytes (16/24/32-byte AES key ‖ 4-byte salt), got %d", aead.Name, len(aead.Key))
		}
		s.cipher, s.salt = aead.Key[:kl], aead.Key[kl:]
		s.ivLen = 8
		s.align = 4
		icv := aead.ICVBits
		if icv == 0 {
			icv = 128
		}
		switch a.canon {
		case AlgGCM:
			s.kind = kindGCM
			// RFC 4106 §8 allows 8, 12 and 16-byte ICVs; Go's GCM does 12..16.
			if icv != 128 && icv != 96 {
				return s, fieldErr("aead.icv_bits", ErrInvalidValue, "%d (supported: 96, 128)", aead.ICVBits)
			}
		case AlgChaCha:
			s.kind = kindChaCha
			if icv != 128 {
				return s, fieldErr("aead.icv_bits", ErrInvalidValue, "%d (RFC 7634 fixes 128)", aead.ICVBits)
			}
		case AlgGMAC:
			s.kind = kindGMAC
			if icv != 128 {
				return s, fieldErr("aead.icv_bits", ErrInvalidValue, "%d (RFC 4543 fixes 128)", aead.ICVBits)
			}
		}
		s.icvLen = icv / 8
		return s, nil
	}

	if enc.Name == "" {
		return s, fieldErr("aead", ErrMissing, "need aead, or enc and auth")
	}
	e, ok := encAliases[strings.ToLower(strings.TrimSpace(enc.Name))]
	if !ok {
		return s, fieldErr("enc.alg", ErrUnknownAlgorithm, "%q", enc.Name)
	}
	switch {
	case e.canon == AlgNull && len(enc.Key) != 0:
		return s, fieldErr("enc.key", ErrKeyLength, "%s takes no key, got %d bytes", enc.Name, len(enc.Key))
	case e.canon == AlgCBC && e.keyLen != 0 && len(enc.Key) != e.keyLen:
		return s, fieldErr("enc.key", ErrKeyLength, "%s needs %d bytes, got %d", enc.Name, e.keyLen, len(enc.Key))
	case e.canon == AlgCBC && !aesKeyLen(len(enc.Key)):
		return s, fieldErr("enc.key", ErrKeyLength, "%s needs 16, 24 or 32 bytes, got %d", enc.Name, len(enc.Key))
	}
	if auth.Name == "" {
		// RFC 8221 §3: encryption without integrity MUST NOT be used.
		return s, fieldErr("auth", ErrMissing, "%s needs an integrity algorithm", enc.Name)
	}
	an, ok := authAliases[strings.ToLower(strings.TrimSpace(auth.Name))]
	if !ok {
		return s, fieldErr("auth.alg", ErrUnknownAlgorithm, "%q", auth.Name)
	}
	if len(auth.Key) != 32 {
		return s, fieldErr("auth.key", ErrKeyLength, "%s needs 32 bytes (RFC 4868 §2.1.1), got %d", auth.Name, len(auth.Key))
	}
	if auth.TruncBits != 0 && auth.TruncBits != 128 {
		return s, fieldErr("auth.trunc_bits", ErrInvalidValue, "%d (RFC 4868 fixes 128 for %s)", auth.TruncBits, an)
	}
	s.authKey = auth.Key
	s.icvLen = 16
	if e.canon == AlgCBC {
		s.kind = kindCBC
		s.cipher = enc.Key
		s.ivLen = 16
		s.align = 16
	} else {
		s.kind = kindNull
		s.align = 4
	}
	s.name = e.canon + "+" + an
	return s, nil
}
