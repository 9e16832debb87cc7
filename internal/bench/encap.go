package bench

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// encapCases are the engine comparisons the bench runs: Encap of an inner packet of that many
// bytes (tunnel mode, IPv4 in IPv4) against the raw AEAD Seal of the same bytes in place.
var encapCases = []struct {
	suite string
	bytes int
}{
	{"aes-gcm-128", 64}, {"aes-gcm-128", 1400},
	{"chacha20-poly1305", 64}, {"chacha20-poly1305", 1400},
}

// encapBlock is the number of operations timed together: long enough for the clock, short enough
// that an Encap block and the Seal block right after it see the same load.
const encapBlock = 64

// measureEncap times rounds blocks of Encap and, right after each, a block of raw Seals of the same
// size (crypto/esp's BenchmarkOverhead, in the bench's process) and one of the bytes ESP encrypts
// (the packet with its padding and trailer): the first ratio is the goal's, the second says how much
// of it is the engine's framing (sequence number, headers, IV, counters) rather than the cipher's
// longer input.
func measureEncap(suite string, n, rounds int) Result {
	res := Result{Phase: PhaseEncap, System: "crypto/esp", Frame: fmt.Sprint(n)}
	s, ok := suites[suite]
	if !ok {
		return failed(res, fmt.Errorf("unknown suite %q", suite))
	}
	key := make([]byte, s.keyLen)
	if _, err := rand.Read(key); err != nil {
		return failed(res, err)
	}
	sa, err := esp.New(esp.Params{SPI: 0x100, Mode: ipsec.ModeTunnel,
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"),
		AEAD: esp.AEADAlg{Name: s.alg, Key: key}, ReplayWindow: 128})
	if err != nil {
		return failed(res, err)
	}
	var aead cipher.AEAD
	if s.alg == esp.AlgChaCha {
		aead, err = chacha20poly1305.New(key[:len(key)-4])
	} else {
		var blk cipher.Block
		if blk, err = aes.NewCipher(key[:len(key)-4]); err == nil {
			aead, err = cipher.NewGCM(blk)
		}
	}
	if err != nil {
		return failed(res, err)
	}
	pkt := innerUDP4(n)
	buf := make([]byte, esp.Headroom+n+esp.Tailroom)
	copy(buf[esp.Headroom:], pkt)
	// What Encap encrypts: the inner packet, its padding to 4 bytes, pad length and next header.
	espLen := n + (-(n + 2))&3 + 2
	raw := make([]byte, espLen+aead.Overhead())
	nonce, aad := make([]byte, aead.NonceSize()), make([]byte, 8)
	var encapNS, sealNS, sealESPNS, ratios, espRatios []float64
	start := time.Now()
	for range rounds {
		t0 := time.Now()
		for range encapBlock {
			// Encap reads only the inner header; the rest may be the last round's ciphertext.
			copy(buf[esp.Headroom:esp.Headroom+20], pkt[:20])
			if _, _, err := sa.Encap(buf, esp.Headroom, n); err != nil {
				return failed(res, err)
			}
		}
		t1 := time.Now()
		for range encapBlock {
			aead.Seal(raw[:0], nonce, raw[:n], aad)
		}
		t2 := time.Now()
		for range encapBlock {
			aead.Seal(raw[:0], nonce, raw[:espLen], aad)
		}
		t3 := time.Now()
		e := float64(t1.Sub(t0).Nanoseconds()) / encapBlock
		r := float64(t2.Sub(t1).Nanoseconds()) / encapBlock
		re := float64(t3.Sub(t2).Nanoseconds()) / encapBlock
		encapNS, sealNS, ratios = append(encapNS, e), append(sealNS, r), append(ratios, e/r)
		sealESPNS, espRatios = append(sealESPNS, re), append(espRatios, e/re)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Encap = &Encap{Suite: suite, Bytes: n, EncapNS: median(encapNS), SealNS: median(sealNS), Ratio: median(ratios),
		ESPBytes: espLen, SealESPNS: median(sealESPNS), RatioESP: median(espRatios)}
	return res
}

// innerUDP4 is an IPv4/UDP packet of n bytes (n ≥ 28) with a valid header checksum.
func innerUDP4(n int) []byte {
	p := make([]byte, n)
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	copy(p[12:], []byte{198, 18, 1, 1})
	copy(p[16:], []byte{198, 18, 2, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	for i := 28; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
