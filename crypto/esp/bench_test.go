package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/ipsec"
)

// Benchmarks: Encap and Decap per suite at 64, 512, 1400 and 8192-byte inner
// packets (tunnel mode, IPv4 in IPv4), beside the raw transform of the same
// number of bytes in place (AEAD Seal/Open; for the encrypt-then-MAC suites
// CBC + HMAC-SHA-256): the ceiling the engine adds its framing to.
//
//	go test -run='^$' -bench=. -benchmem -count=5 ./crypto/esp/

var benchSizes = []int{64, 512, 1400, 8192}

func benchCase(s suiteCase, window uint32) saCase {
	return saCase{suite: s, mode: ipsec.ModeTunnel, window: window}
}

// benchEach runs f as a sub-benchmark "suite/size" for every suite and inner packet size.
func benchEach(b *testing.B, f func(b *testing.B, s suiteCase, n int)) {
	for _, s := range suites {
		for _, n := range benchSizes {
			b.Run(s.name+"/"+strconv.Itoa(n), func(b *testing.B) { f(b, s, n) })
		}
	}
}

// espBench is an SA pair with an n-byte inner packet laid out for Encap, and its encapsulation for Decap.
type espBench struct {
	out, in    *SA
	n          int
	hdr        int    // inner IP header bytes (Encap reads only those)
	pkt, buf   []byte // the inner packet; Encap's buffer
	wire, dbuf []byte // the ESP packet; Decap's buffer
}

func newESPBench(b *testing.B, s suiteCase, n int, window uint32) *espBench {
	return newESPBenchCase(b, benchCase(s, window), n)
}

// newESPBenchCase is newESPBench for any tunnel-mode case; c.inner6 picks the inner family.
func newESPBenchCase(b *testing.B, c saCase, n int) *espBench {
	e := &espBench{n: n, hdr: 20, pkt: innerPacketFixed(n - 28), buf: make([]byte, Headroom+n+Tailroom)}
	if c.inner6 {
		e.hdr, e.pkt = 40, innerPacket(newRand(), true, n-48, 0)
	}
	e.out, e.in = c.pair(b)
	copy(e.buf[Headroom:], e.pkt)
	st, end, err := e.out.Encap(e.buf, Headroom, n)
	if err != nil {
		b.Fatal(err)
	}
	e.wire = append([]byte(nil), e.buf[st:end]...)
	e.dbuf = make([]byte, Headroom+len(e.wire))
	return e
}

func (e *espBench) encap(b *testing.B) {
	// Encap reads only the inner header; the rest may be the previous round's ciphertext.
	copy(e.buf[Headroom:Headroom+e.hdr], e.pkt[:e.hdr])
	if _, _, err := e.out.Encap(e.buf, Headroom, e.n); err != nil {
		b.Fatal(err)
	}
}

// decap restores the ESP packet first: decryption is in place.
func (e *espBench) decap(b *testing.B) {
	copy(e.dbuf[Headroom:], e.wire)
	if _, _, err := e.in.Decap(e.dbuf, Headroom, len(e.wire)); err != nil {
		b.Fatal(err)
	}
}

// perPacket times op, one n-byte packet a call.
func perPacket(b *testing.B, n int, op func()) {
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		op()
	}
}

func BenchmarkEncap(b *testing.B) {
	benchEach(b, func(b *testing.B, s suiteCase, n int) {
		e := newESPBench(b, s, n, 128)
		perPacket(b, n, func() { e.encap(b) })
	})
}

// BenchmarkDecap restores the packet with a copy each round (decryption is
// in place) and runs with the replay window off, since the same packet is
// decapsulated again and again; BenchmarkOpen pays the same copy. The
// window's own cost is in crypto/replay's BenchmarkAccept.
func BenchmarkDecap(b *testing.B) {
	benchEach(b, func(b *testing.B, s suiteCase, n int) {
		e := newESPBench(b, s, n, 0)
		perPacket(b, n, func() { e.decap(b) })
	})
}

// rawTransform is the bare cryptography of one suite over n bytes in place.
type rawTransform struct {
	seal, open func()
	restore    func() // copy the sealed bytes back before open
}

func newRaw(b *testing.B, s suiteCase, n int) rawTransform {
	buf := make([]byte, n+64)
	for i := range buf {
		buf[i] = byte(i)
	}
	nonce := make([]byte, 12)
	aad := make([]byte, 8)
	var sealed []byte
	var r rawTransform
	switch {
	case s.aead.Name != "":
		key := s.aead.Key[:len(s.aead.Key)-4]
		var a cipher.AEAD
		var err error
		if s.name == "chacha20-poly1305" {
			a, err = chacha20poly1305.New(key)
		} else {
			blk, _ := aes.NewCipher(key)
			a, err = cipher.NewGCM(blk)
		}
		if err != nil {
			b.Fatal(err)
		}
		if s.aead.Name == AlgGMAC {
			r.seal = func() { a.Seal(buf[n:n], nonce, nil, buf[:n]) }
			r.open = func() {
				if _, err := a.Open(buf[n:n], nonce, buf[n:n+16], buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
			r.restore = func() {}
			r.seal()
			return r
		}
		r.seal = func() { a.Seal(buf[:0], nonce, buf[:n], aad) }
		r.seal()
		sealed = append([]byte(nil), buf[:n+16]...)
		r.restore = func() { copy(buf, sealed) }
		r.open = func() {
			if _, err := a.Open(buf[:0], nonce, buf[:n+16], aad); err != nil {
				b.Fatal(err)
			}
		}
	default:
		mac := hmac.New(sha256.New, s.auth.Key)
		sum := make([]byte, 0, 32)
		var enc, dec cipher.BlockMode
		iv := make([]byte, 16)
		m := n &^ 15
		if s.enc.Name != AlgNull {
			blk, _ := aes.NewCipher(s.enc.Key)
			enc = cipher.NewCBCEncrypter(blk, iv)
			dec = cipher.NewCBCDecrypter(blk, iv)
		}
		r.seal = func() {
			if enc != nil {
				enc.(ivSetter).SetIV(iv)
				enc.CryptBlocks(buf[:m], buf[:m])
			}
			mac.Reset()
			mac.Write(buf[:n])
			mac.Sum(sum[:0])
		}
		r.open = func() {
			mac.Reset()
			mac.Write(buf[:n])
			if !hmac.Equal(mac.Sum(sum[:0])[:16], buf[n:n+16]) {
				b.Fatal("mac")
			}
			if dec != nil {
				dec.(ivSetter).SetIV(iv)
				dec.CryptBlocks(buf[:m], buf[:m])
			}
		}
		r.seal()
		mac.Reset()
		mac.Write(buf[:n])
		copy(buf[n:], mac.Sum(nil)[:16])
		sealed = append([]byte(nil), buf[:n+16]...)
		r.restore = func() { copy(buf, sealed) }
	}
	return r
}

func BenchmarkSeal(b *testing.B) {
	benchEach(b, func(b *testing.B, s suiteCase, n int) {
		r := newRaw(b, s, n)
		perPacket(b, n, r.seal)
	})
}

func BenchmarkOpen(b *testing.B) {
	benchEach(b, func(b *testing.B, s suiteCase, n int) {
		r := newRaw(b, s, n)
		perPacket(b, n, func() {
			r.restore()
			r.open()
		})
	})
}

// BenchmarkEncapParallel: all Ps on one outbound SA (the shared sequence
// counter is the point of contention).
func BenchmarkEncapParallel(b *testing.B) {
	out, _ := benchCase(suites[0], 128).pair(b)
	n := 1400
	pkt := innerPacketFixed(n - 28)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, Headroom+n+Tailroom)
		copy(buf[Headroom:], pkt)
		for pb.Next() {
			copy(buf[Headroom:Headroom+20], pkt[:20])
			if _, _, err := out.Encap(buf, Headroom, n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOverhead measures the engine's framing cost against the raw
// transform on a shared, noisy machine: each round times a block of 64
// Encaps, right after it a block of 64 raw Seals of the same size, a block of
// 64 raw Seals of the bytes ESP encrypts (the packet with its padding, pad
// length and next header: 68 for a 64-byte packet), then the same for Decap
// and Open, so all see the same load. It reports the median over rounds of
// the per-round ratios as "encap/seal", "encap/seal-esp" and "decap/open",
// and the per-op times. One op = one packet of the given inner size.
func BenchmarkOverhead(b *testing.B) {
	benchEach(b, func(b *testing.B, s suiteCase, n int) {
		overhead(b, benchCase(s, 0), n)
	})
}

// BenchmarkOverheadFamilies is BenchmarkOverhead for the AEAD suites in
// every tunnel family pair (inner/outer), at 64 and 1400 bytes.
func BenchmarkOverheadFamilies(b *testing.B) {
	for _, s := range suites {
		if s.aead.Name == "" || s.aead.Name == AlgGMAC {
			continue
		}
		for _, fam := range []struct {
			name           string
			inner6, outer6 bool
		}{{"4in4", false, false}, {"6in4", true, false}, {"4in6", false, true}, {"6in6", true, true}} {
			for _, n := range []int{64, 1400} {
				b.Run(s.name+"/"+fam.name+"/"+strconv.Itoa(n), func(b *testing.B) {
					c := benchCase(s, 0)
					c.inner6, c.outer6 = fam.inner6, fam.outer6
					overhead(b, c, n)
				})
			}
		}
	}
}

func overhead(b *testing.B, c saCase, n int) {
	const block = 64
	e := newESPBenchCase(b, c, n)
	raw := newRaw(b, c.suite, n)
	rawESP := newRaw(b, c.suite, n+e.out.padLen(n)+2)
	encR := make([]float64, 0, b.N)
	espR := make([]float64, 0, b.N)
	decR := make([]float64, 0, b.N)
	var encT, sealT, sealESPT, decT, openT time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		for range block {
			e.encap(b)
		}
		t1 := time.Now()
		for range block {
			raw.seal()
		}
		t2 := time.Now()
		for range block {
			rawESP.seal()
		}
		t3 := time.Now()
		for range block {
			e.decap(b)
		}
		t4 := time.Now()
		for range block {
			raw.restore()
			raw.open()
		}
		t5 := time.Now()
		encT, sealT, sealESPT = encT+t1.Sub(t0), sealT+t2.Sub(t1), sealESPT+t3.Sub(t2)
		decT, openT = decT+t4.Sub(t3), openT+t5.Sub(t4)
		encR = append(encR, float64(t1.Sub(t0))/float64(t2.Sub(t1)))
		espR = append(espR, float64(t1.Sub(t0))/float64(t3.Sub(t2)))
		decR = append(decR, float64(t4.Sub(t3))/float64(t5.Sub(t4)))
	}
	ops := float64(b.N * block)
	b.ReportMetric(median(encR), "encap/seal")
	b.ReportMetric(median(espR), "encap/seal-esp")
	b.ReportMetric(median(decR), "decap/open")
	b.ReportMetric(float64(encT)/ops, "encap-ns")
	b.ReportMetric(float64(sealT)/ops, "seal-ns")
	b.ReportMetric(float64(sealESPT)/ops, "seal-esp-ns")
	b.ReportMetric(float64(decT)/ops, "decap-ns")
	b.ReportMetric(float64(openT)/ops, "open-ns")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	slices.Sort(s)
	return s[len(s)/2]
}
