package bench

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/ipsec"
)

func testStormBuilder(t *testing.T, suite string) *stormBuilder {
	t.Helper()
	s := suites[suite]
	key := make([]byte, s.keyLen)
	rand.Read(key)
	return &stormBuilder{dmac: net.HardwareAddr{2, 0, 0, 0, 0, 2}, smac: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		outerSrc: testbed.GW1WANAddr4, outerDst: testbed.GW2WANAddr4, innerSrc: testbed.H1Addr4, innerDst: testbed.H2Addr4,
		keys: Keys{SPI: spiStorm, Alg: s.alg, Key: key}, innerPayload: 18}
}

// receiver is gw2's side of the storm SA: the same keys, a fresh replay window.
func receiver(t *testing.T, b *stormBuilder) *esp.SA {
	t.Helper()
	sa, err := esp.New(esp.Params{SPI: b.keys.SPI, Mode: ipsec.ModeTunnel, Src: b.outerSrc, Dst: b.outerDst,
		AEAD: esp.AEADAlg{Name: b.keys.Alg, Key: b.keys.Key, ICVBits: 128}, ReplayWindow: 128})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sa.Wipe)
	return sa
}

// decap opens a frame's IP packet with sa and returns the inner packet, or the reason it refused it.
func decap(t *testing.T, sa *esp.SA, frame []byte) ([]byte, string) {
	t.Helper()
	if binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
		t.Fatalf("ethertype %#04x, want IPv4", binary.BigEndian.Uint16(frame[12:]))
	}
	buf := make([]byte, esp.Headroom+len(frame))
	n := copy(buf[esp.Headroom:], frame[14:])
	s, e, err := sa.Decap(buf, esp.Headroom, n)
	if err != nil {
		r, ok := esp.ReasonOf(err)
		if !ok {
			t.Fatalf("decap: %v without a reason", err)
		}
		return nil, r.String()
	}
	return buf[s:e], ""
}

// checkStormInner checks an opened packet is the storm's: UDP from h1 to h2's StormPort.
func checkStormInner(t *testing.T, p []byte) {
	t.Helper()
	if len(p) < 28 || p[0] != 0x45 || p[9] != 17 {
		t.Fatalf("inner packet % x is not IPv4/UDP", p)
	}
	src, _ := netip.AddrFromSlice(p[12:16])
	dst, _ := netip.AddrFromSlice(p[16:20])
	if src != testbed.H1Addr4 || dst != testbed.H2Addr4 || binary.BigEndian.Uint16(p[22:]) != StormPort {
		t.Fatalf("inner packet %v → %v port %d, want h1 → h2 port %d", src, dst, binary.BigEndian.Uint16(p[22:]), StormPort)
	}
}

func forSuites(t *testing.T, fn func(t *testing.T, b *stormBuilder)) {
	for _, s := range []string{"aes-gcm-128", "chacha20-poly1305"} {
		t.Run(s, func(t *testing.T) { fn(t, testStormBuilder(t, s)) })
	}
}

func TestStormReplaysAreAuthenticAndLeftOfTheWindowAfterThePrimer(t *testing.T) {
	forSuites(t, func(t *testing.T, b *stormBuilder) {
		reps, err := b.replays(200)
		if err != nil {
			t.Fatal(err)
		}
		// Authentic: a receiver that has not seen the primer accepts one (the packet is real).
		fresh := receiver(t, b)
		p, reason := decap(t, fresh, reps[7])
		if reason != "" {
			t.Fatalf("a replay before the primer: refused (%s), want accepted", reason)
		}
		checkStormInner(t, p)

		sa := receiver(t, b)
		primer, err := b.primer()
		if err != nil {
			t.Fatal(err)
		}
		p, reason = decap(t, sa, primer)
		if reason != "" {
			t.Fatalf("primer refused: %s", reason)
		}
		checkStormInner(t, p)
		if got := sa.ReplayTop(); got != stormPrimerSeq {
			t.Fatalf("window top %d after the primer, want %d", got, stormPrimerSeq)
		}
		for i, f := range reps {
			if _, reason := decap(t, sa, f); reason != "replay" {
				t.Fatalf("replay %d: %q, want replay", i, reason)
			}
		}
	})
}

func TestStormBadICVAuthenticatesOnceRestored(t *testing.T) {
	forSuites(t, func(t *testing.T, b *stormBuilder) {
		bad, err := b.badICVs(50)
		if err != nil {
			t.Fatal(err)
		}
		sa := receiver(t, b)
		for i, f := range bad {
			if _, reason := decap(t, sa, f); reason != "icv" {
				t.Fatalf("bad ICV %d: %q, want icv", i, reason)
			}
		}
		if top := sa.ReplayTop(); top != 0 {
			t.Fatalf("forged packets moved the window to %d", top)
		}
		// Their sequence numbers are fresh: above the primer's.
		for i, f := range bad {
			if seq := binary.BigEndian.Uint32(f[14+20+4:]); seq <= stormPrimerSeq {
				t.Fatalf("bad ICV %d has sequence number %d, not above the primer's %d", i, seq, stormPrimerSeq)
			}
		}
		for i, f := range bad {
			f[len(f)-1] ^= 1 // restore the ICV
			p, reason := decap(t, sa, f)
			if reason != "" {
				t.Fatalf("bad ICV %d restored: refused (%s)", i, reason)
			}
			checkStormInner(t, p)
		}
	})
}

func TestStormTruncatedIsShorterThanHeaderIVAndICV(t *testing.T) {
	forSuites(t, func(t *testing.T, b *stormBuilder) {
		sa := receiver(t, b)
		for i, f := range b.truncated(20) {
			ip := f[14:]
			if ip[9] != 50 || binary.BigEndian.Uint32(ip[20:]) != spiStorm {
				t.Fatalf("truncated %d: protocol %d SPI %#x, want ESP of the storm SA", i, ip[9], binary.BigEndian.Uint32(ip[20:]))
			}
			if n := len(ip) - 20; n < 8 || n >= 8+8+16 {
				t.Fatalf("truncated %d: %d ESP bytes, want the 8-byte header the card needs and less than header, IV and ICV", i, n)
			}
			if _, reason := decap(t, sa, f); reason != "truncated" {
				t.Fatalf("truncated %d: %q, want truncated", i, reason)
			}
		}
	})
}

func TestStormRuntIsShorterThanTheESPHeader(t *testing.T) {
	b := testStormBuilder(t, "aes-gcm-128")
	sa := receiver(t, b)
	for i, f := range b.runts(20) {
		ip := f[14:]
		if ip[9] != 50 || ipsum(ip[:20]) != 0xffff || int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			t.Fatalf("runt %d: protocol %d, IP header or length wrong", i, ip[9])
		}
		if n := len(ip) - 20; n < 1 || n >= 8 {
			t.Fatalf("runt %d: %d ESP bytes, want 1 to 7", i, n)
		}
		if _, reason := decap(t, sa, f); reason != "truncated" {
			t.Fatalf("runt %d: %q, want truncated", i, reason)
		}
	}
}

func TestStormUnknownSPIIsForgedESPTowardsTheProtectedHost(t *testing.T) {
	b := testStormBuilder(t, "aes-gcm-128")
	known := map[uint32]bool{spiV4: true, spiV4 + 1: true, spiV6: true, spiV6 + 1: true, spiStorm: true}
	seen := map[uint32]bool{}
	for i, f := range b.unknownSPIs(1000) {
		ip := f[14:]
		spi := binary.BigEndian.Uint32(ip[20:])
		if known[spi] || spi >= spiPort0 && spi < spiPort0+maxPolicies || spi < 256 || seen[spi] {
			t.Fatalf("unknown SPI %d: %#x is a bench SA's, reserved or repeated", i, spi)
		}
		seen[spi] = true
		src, _ := netip.AddrFromSlice(ip[12:16])
		dst, _ := netip.AddrFromSlice(ip[16:20])
		if ip[9] != 50 || src != testbed.H1Addr4 || dst != testbed.H2Addr4 || ipsum(ip[:20]) != 0xffff {
			t.Fatalf("unknown SPI %d: protocol %d %v → %v checksum ok %v, want ESP h1 → h2", i, ip[9], src, dst, ipsum(ip[:20]) == 0xffff)
		}
		if int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || len(ip)-20 < 8+8+16 {
			t.Fatalf("unknown SPI %d: IP length %d for %d bytes", i, binary.BigEndian.Uint16(ip[2:]), len(ip))
		}
	}
}

func TestStormGarbageIsNoIPv4(t *testing.T) {
	b := testStormBuilder(t, "aes-gcm-128")
	for i, f := range b.garbage(2000) {
		if binary.BigEndian.Uint16(f[12:]) != 0x0800 || len(f) < 14+14 || len(f) > 14+200 {
			t.Fatalf("garbage %d: ethertype %#04x, %d bytes", i, binary.BigEndian.Uint16(f[12:]), len(f))
		}
		if f[14]>>4 == 4 {
			t.Fatalf("garbage %d: version nibble 4", i)
		}
	}
}

func TestStormFramesInterleaveEveryKind(t *testing.T) {
	b := testStormBuilder(t, "aes-gcm-128")
	byKind, err := b.frames(3)
	if err != nil {
		t.Fatal(err)
	}
	frames, kinds := interleave(byKind)
	if len(frames) != 3*len(StormKinds) || len(kinds) != len(frames) {
		t.Fatalf("%d frames, %d kinds, want %d", len(frames), len(kinds), 3*len(StormKinds))
	}
	for i, k := range kinds {
		if want := StormKinds[i%len(StormKinds)]; k != want {
			t.Fatalf("frame %d is %s, want %s (round robin)", i, k, want)
		}
		if &frames[i][0] != &byKind[k][i/len(StormKinds)][0] {
			t.Fatalf("frame %d is not %s's frame %d", i, k, i/len(StormKinds))
		}
	}
	if _, err := b.replays(MaxStormPackets + 1); err == nil {
		t.Fatal("more replays than fit left of the window: no error")
	}
}

// ipsum is the ones' complement sum of h (0xffff over a header with a valid checksum).
func ipsum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
