package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
)

// AEAD IVs (GCM, ChaCha20-Poly1305, GMAC) only have to be unique under a
// key (RFC 4106 §3.1, RFC 7634 §2, RFC 4543 §3.1): a repeated (key, nonce)
// pair leaks the XOR of two plaintexts and, for GCM and GMAC, the
// authentication key, after which anyone can forge. As Linux's seqiv does,
// the explicit IV is the 64-bit sequence number XOR a per-SA 64-bit mask:
//
//	IV = seq ⊕ mask
//
// For a fixed mask this is a bijection of the 64-bit numbers, so IVs repeat
// exactly when sequence numbers do, and the counter (nextSeq) never repeats
// one. What the mask adds is safety when the counter's state is lost:
//
//   - Same key, state carried over (control/seqstate): the SA's next life
//     gets the previous mask and a counter strictly above every number the
//     previous life could have sent, so its IVs are new ones of the same
//     injective sequence. The mask must be carried too: a fresh mask with
//     a continuing counter is NOT safe, since seq₁ ⊕ m₁ = seq₂ ⊕ m₂ whenever
//     seq₁ ⊕ seq₂ = m₁ ⊕ m₂, and for long-lived SAs such pairs exist.
//   - Same key, state lost (a restart from a static configuration, the
//     state directory wiped): the counter starts again at 1, and without
//     a mask every IV of the new life would repeat one of the old life.
//     With a fresh random mask, two lives collide only if m₁ ⊕ m₂ is one
//     of the values seq₁ ⊕ seq₂ can take: fewer than 2^b, b the bit length
//     of the larger of the two lives' counts, so the probability is below
//     2^(b-64) (2^-32 for an SA that used all 2^32-1 non-ESN numbers).
//     Improbable, not impossible: keep the state, or use IKE.
//   - The same key configured on two SAs (a common manual-keying mistake,
//     e.g. one key for both directions): independent masks make their IV
//     streams differ with the same probability, where IV = seq made them
//     equal from the first packet.
//
// The mask is public (any packet shows seq and IV); it needs no secrecy,
// only independence between lives. Known-answer tests pass WithIVMask(0),
// which gives IV = seq as before.

// randomMask returns a fresh AEAD IV mask.
func randomMask() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand documents a crash instead)
	return be.Uint64(b[:])
}

// CBC IVs must be unpredictable (RFC 3602 §2.4, §3). Taking them from
// crypto/rand costs a getrandom call of ~1.7 µs per 1 KiB batch here (27 ns
// per packet, 7 % of a 64-byte CBC Encap), and a background goroutine
// refilling batches cannot keep up when the workers saturate the cores (it
// is scheduled only when a worker yields; measured: 94 % of batches still
// filled inline, at a higher cost per IV for the channel hand-offs).
//
// Each encrypt-then-MAC state (one per concurrent caller, see etmPool)
// therefore draws its IVs from its own generator: AES-128 in counter mode
// under a key and a starting counter taken from crypto/rand when the state
// first encrypts. This is the IV generation NIST SP 800-38A Appendix C
// recommends for CBC (the block cipher applied to a unique counter), with a
// key of its own that never leaves the state, so the IVs are unpredictable
// to anyone without that key. It is the generate step of SP 800-90A's
// CTR_DRBG without the key update after each request: that update gives
// backtracking resistance, which IVs do not need (they go out in the clear). A batch of ivBatch IVs is one XORKeyStream over 1 KiB (~160 ns, 2.5
// ns per packet), with no allocation, no lock and no goroutine.
//
// An IV never repeats within a state: AES is a permutation and the counter
// does not wrap before the generator is rekeyed (every ivRekeyBatches
// batches, 2^32 IVs, far inside the PRP/PRF bound). Across states the keys
// are independent and random, so a repeat is as likely as between two
// crypto/rand draws (2^-128 per pair).

// ivBatch is the number of 16-byte IVs generated at once.
const ivBatch = 64

// ivRekeyBatches is how many batches a state draws under one generator key.
const ivRekeyBatches = 1 << 26

// nextIV fills iv with 16 unpredictable bytes (RFC 3602 §3).
func (es *etmState) nextIV(iv []byte) {
	if es.ivNext >= ivBatch {
		es.refillIVs()
	}
	i := es.ivNext * 16
	copy(iv, es.ivs[i:i+16])
	clear(es.ivs[i : i+16]) // an IV once used is not kept
	es.ivNext++
}

// refillIVs generates the next batch, keying the generator first when it
// has none yet or has used its key for ivRekeyBatches batches.
func (es *etmState) refillIVs() {
	if es.ivGen == nil || es.ivBatches >= ivRekeyBatches {
		var seed [32]byte  // AES-128 key ‖ starting counter
		rand.Read(seed[:]) // never fails (crypto/rand documents a crash instead)
		blk, err := aes.NewCipher(seed[:16])
		if err != nil {
			panic("esp: aes.NewCipher on a 16-byte key: " + err.Error()) // cannot happen
		}
		es.ivGen = cipher.NewCTR(blk, seed[16:])
		clear(seed[:])
		es.ivBatches = 0
	}
	clear(es.ivs[:])
	es.ivGen.XORKeyStream(es.ivs[:], es.ivs[:])
	es.ivNext = 0
	es.ivBatches++
}
