package pmtu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

var (
	gw4 = netip.MustParseAddr("198.18.1.1")
	h14 = netip.MustParseAddr("198.18.1.10")
	h24 = netip.MustParseAddr("198.18.2.10")
	gw6 = netip.MustParseAddr("2001:2:0:1::1")
	h16 = netip.MustParseAddr("2001:2:0:1::10")
	h26 = netip.MustParseAddr("2001:2:0:2::10")
)

// ip4 serializes an IPv4 packet with the given payload through gopacket, so that the inputs do
// not depend on the code under test.
func ip4(t testing.TB, src, dst netip.Addr, proto layers.IPProtocol, flags layers.IPv4Flag,
	fragOff uint16, opts []layers.IPv4Option, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 63, Protocol: proto, Flags: flags, FragOffset: fragOff,
		SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice()), Options: opts, Id: 0x1234}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip6(t testing.TB, src, dst netip.Addr, nh layers.IPProtocol, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv6{Version: 6, HopLimit: 63, NextHeader: nh,
		SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// onesSum is a plain byte-by-byte RFC 1071 sum, written independently of the package's.
func onesSum(b []byte, acc uint32) uint32 {
	for i := 0; i < len(b); i++ {
		if i%2 == 0 {
			acc += uint32(b[i]) << 8
		} else {
			acc += uint32(b[i])
		}
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return acc
}

func TestFragNeeded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		payload   int
		pad       int // Ethernet padding after the packet, never quoted
		wantQuote int
	}{
		{"full-size TCP segment quoted up to 576 bytes", 1480, 0, 548},
		{"small packet quoted whole", 72, 0, 92},
		{"trailing padding ignored", 10, 16, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := ip4(t, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(tc.payload))
			orig = append(orig, make([]byte, tc.pad)...)
			dst := make([]byte, 2048)
			n, err := FragNeeded(dst, gw4, orig, 1438)
			if err != nil {
				t.Fatal(err)
			}
			if n != 28+tc.wantQuote {
				t.Fatalf("reply length %d, want %d", n, 28+tc.wantQuote)
			}
			p := gopacket.NewPacket(dst[:n], layers.LayerTypeIPv4, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatal(el.Error())
			}
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if !ip.SrcIP.Equal(net.IP(gw4.AsSlice())) || !ip.DstIP.Equal(net.IP(h14.AsSlice())) {
				t.Errorf("reply %v -> %v, want %v -> %v", ip.SrcIP, ip.DstIP, gw4, h14)
			}
			if ip.Protocol != layers.IPProtocolICMPv4 || ip.TTL != 64 || int(ip.Length) != n {
				t.Errorf("reply header: proto %v ttl %d length %d", ip.Protocol, ip.TTL, ip.Length)
			}
			if onesSum(dst[:20], 0) != 0xffff {
				t.Error("IPv4 header checksum does not verify")
			}
			ic := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			want := layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeFragmentationNeeded)
			if ic.TypeCode != want {
				t.Errorf("type/code %v, want %v", ic.TypeCode, want)
			}
			// RFC 1191 §4: the low 16 bits of the second word carry the next-hop MTU; gopacket
			// calls them Seq.
			if ic.Id != 0 || ic.Seq != 1438 {
				t.Errorf("unused %d, next-hop MTU %d, want 0, 1438", ic.Id, ic.Seq)
			}
			if onesSum(dst[20:n], 0) != 0xffff {
				t.Error("ICMP checksum does not verify")
			}
			if !bytes.Equal(ic.Payload, orig[:tc.wantQuote]) {
				t.Error("quoted bytes differ from the start of the offending packet")
			}
		})
	}
}

// refusal is one case of a reply builder's checks: what it answers (want nil) and what it refuses.
type refusal struct {
	name string
	src  netip.Addr
	orig []byte
	mtu  int
	buf  int // the output buffer's size
	want error
}

func refusals(t *testing.T, reply func(dst []byte, src netip.Addr, orig []byte, mtu int) (int, error), cases []refusal) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reply(make([]byte, tc.buf), tc.src, tc.orig, tc.mtu)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFragNeededRefusals(t *testing.T) {
	ok := ip4(t, h14, h24, layers.IPProtocolUDP, layers.IPv4DontFragment, 0, nil, pattern(100))
	icmpErr := ip4(t, h14, h24, layers.IPProtocolICMPv4, layers.IPv4DontFragment, 0, nil,
		append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, pattern(40)...))
	echo := ip4(t, h14, h24, layers.IPProtocolICMPv4, layers.IPv4DontFragment, 0, nil,
		append([]byte{8, 0, 0, 0, 0, 1, 0, 1}, pattern(40)...))
	refusals(t, FragNeeded, []refusal{
		{"ordinary packet", gw4, ok, 1400, 600, nil},
		{"echo request is answered", gw4, echo, 1400, 600, nil},
		{"ICMP error is never answered", gw4, icmpErr, 1400, 600, ErrNoReply},
		{"non-first fragment", gw4, ip4(t, h14, h24, layers.IPProtocolUDP, 0, 10, nil, pattern(100)), 1400, 600, ErrNoReply},
		{"multicast source", gw4, ip4(t, netip.MustParseAddr("224.0.0.5"), h24, layers.IPProtocolUDP, 0, 0, nil, pattern(8)), 1400, 600, ErrNoReply},
		{"unspecified source", gw4, ip4(t, netip.MustParseAddr("0.0.0.0"), h24, layers.IPProtocolUDP, 0, 0, nil, pattern(8)), 1400, 600, ErrNoReply},
		{"broadcast destination", gw4, ip4(t, h14, netip.MustParseAddr("255.255.255.255"), layers.IPProtocolUDP, 0, 0, nil, pattern(8)), 1400, 600, ErrNoReply},
		{"multicast destination", gw4, ip4(t, h14, netip.MustParseAddr("239.1.1.1"), layers.IPProtocolUDP, 0, 0, nil, pattern(8)), 1400, 600, ErrNoReply},
		{"IPv6 source for an IPv4 reply", gw6, ok, 1400, 600, ErrSource},
		{"MTU below 68", gw4, ok, 67, 600, ErrMTU},
		{"truncated packet", gw4, ok[:60], 1400, 600, ErrMalformed},
		{"not IPv4", gw4, ip6(t, h16, h26, layers.IPProtocolUDP, pattern(20)), 1400, 600, ErrMalformed},
		{"short output buffer", gw4, ok, 1400, 100, ErrShortBuffer},
	})
}

func TestPacketTooBig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		payload   int
		wantQuote int
	}{
		{"full-size packet quoted up to 1280 bytes", 1460, 1232},
		{"small packet quoted whole", 100, 140},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := ip6(t, h16, h26, layers.IPProtocolUDP, pattern(tc.payload))
			dst := make([]byte, 2048)
			n, err := PacketTooBig(dst, gw6, orig, 1418)
			if err != nil {
				t.Fatal(err)
			}
			if n != 48+tc.wantQuote {
				t.Fatalf("reply length %d, want %d", n, 48+tc.wantQuote)
			}
			p := gopacket.NewPacket(dst[:n], layers.LayerTypeIPv6, gopacket.Default)
			ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if !ip.SrcIP.Equal(net.IP(gw6.AsSlice())) || !ip.DstIP.Equal(net.IP(h16.AsSlice())) {
				t.Errorf("reply %v -> %v, want %v -> %v", ip.SrcIP, ip.DstIP, gw6, h16)
			}
			if ip.NextHeader != layers.IPProtocolICMPv6 || ip.HopLimit != 64 || int(ip.Length) != n-40 {
				t.Errorf("reply header: next %v hop limit %d length %d", ip.NextHeader, ip.HopLimit, ip.Length)
			}
			icl := p.Layer(layers.LayerTypeICMPv6)
			if icl == nil {
				t.Fatalf("no ICMPv6 layer: %v", p)
			}
			ic := icl.(*layers.ICMPv6)
			if ic.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypePacketTooBig, 0) {
				t.Errorf("type/code %v", ic.TypeCode)
			}
			body := dst[44:n]
			if mtu := binary.BigEndian.Uint32(body); mtu != 1418 {
				t.Errorf("MTU %d, want 1418", mtu)
			}
			if !bytes.Equal(body[4:], orig[:tc.wantQuote]) {
				t.Error("quoted bytes differ from the start of the offending packet")
			}
			// Verify the checksum over the pseudo-header independently, then against gopacket.
			pseudo := make([]byte, 0, 40)
			pseudo = append(pseudo, dst[8:40]...)
			pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(n-40))
			pseudo = append(pseudo, 0, 0, 0, 58)
			if onesSum(dst[40:n], onesSum(pseudo, 0)) != 0xffff {
				t.Error("ICMPv6 checksum does not verify")
			}
			ic.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true},
				ic, gopacket.Payload(ic.Payload)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), dst[40:n]) {
				t.Error("gopacket computes a different ICMPv6 checksum")
			}
		})
	}
}

func TestPacketTooBigRefusals(t *testing.T) {
	udp := ip6(t, h16, h26, layers.IPProtocolUDP, pattern(100))
	icmpErr := ip6(t, h16, h26, layers.IPProtocolICMPv6, append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, pattern(40)...))
	echo := ip6(t, h16, h26, layers.IPProtocolICMPv6, append([]byte{128, 0, 0, 0, 0, 1, 0, 1}, pattern(40)...))
	// hop-by-hop options (8 bytes, PadN) in front of an ICMPv6 error.
	hbhErr := ip6(t, h16, h26, layers.IPProtocolIPv6HopByHop,
		append([]byte{58, 0, 1, 4, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}, pattern(40)...))
	frag := func(nh byte, off uint16) []byte {
		return ip6(t, h16, h26, layers.IPProtocolIPv6Fragment,
			append([]byte{nh, 0, byte(off >> 8), byte(off), 0, 0, 0, 1}, pattern(64)...))
	}
	refusals(t, PacketTooBig, []refusal{
		{"ordinary packet", gw6, udp, 1400, 1400, nil},
		{"echo request is answered", gw6, echo, 1400, 1400, nil},
		{"multicast destination is answered (RFC 4443 §2.4 e.3)", gw6, ip6(t, h16, netip.MustParseAddr("ff0e::1"), layers.IPProtocolUDP, pattern(8)), 1400, 1400, nil},
		{"non-first fragment of UDP is answered", gw6, frag(17, 8), 1400, 1400, nil},
		{"ICMPv6 error is never answered", gw6, icmpErr, 1400, 1400, ErrNoReply},
		{"ICMPv6 error behind hop-by-hop options", gw6, hbhErr, 1400, 1400, ErrNoReply},
		{"non-first fragment of ICMPv6", gw6, frag(58, 8), 1400, 1400, ErrNoReply},
		{"multicast source", gw6, ip6(t, netip.MustParseAddr("ff02::1"), h26, layers.IPProtocolUDP, pattern(8)), 1400, 1400, ErrNoReply},
		{"unspecified source", gw6, ip6(t, netip.IPv6Unspecified(), h26, layers.IPProtocolUDP, pattern(8)), 1400, 1400, ErrNoReply},
		{"IPv4 source for an IPv6 reply", gw4, udp, 1400, 1400, ErrSource},
		{"MTU below 1280", gw6, udp, 1279, 1400, ErrMTU},
		{"truncated packet", gw6, udp[:100], 1400, 1400, ErrMalformed},
		{"not IPv6", gw6, ip4(t, h14, h24, layers.IPProtocolUDP, 0, 0, nil, pattern(8)), 1400, 1400, ErrMalformed},
		{"short output buffer", gw6, udp, 1400, 150, ErrShortBuffer},
	})
}

// TestFragmenterReassembles fragments random packets (with and without IP options) at random
// MTUs, parses every fragment with gopacket, checks it against RFC 791, and reassembles the
// payload by offset; packets without options also go through gopacket's defragmenter (which
// assumes 20-byte headers, so it cannot take the others).
func TestFragmenterReassembles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var f Fragmenter
	out := make([]byte, 2048)
	iters := 500
	if testing.Short() {
		iters = 100
	}
	for i := 0; i < iters; i++ {
		payload := pattern(1 + rng.IntN(8000))
		var opts []layers.IPv4Option
		copied := 0
		if rng.IntN(2) == 0 {
			// Security (type 130, copied) and record route (type 7, not copied).
			opts = append(opts, layers.IPv4Option{OptionType: 130, OptionLength: 11, OptionData: pattern(9)})
			copied = 12 // padded to a 32-bit word
		}
		if rng.IntN(2) == 0 {
			opts = append(opts, layers.IPv4Option{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}})
		}
		mtu := 68 + rng.IntN(1500)
		pkt := ip4(t, h14, h24, layers.IPProtocolUDP, 0, 0, opts, payload)
		hl := int(pkt[0]&0xf) * 4
		if (mtu-hl)&^7 < 8 {
			if err := f.Reset(pkt, mtu); !errors.Is(err, ErrMTU) {
				t.Fatalf("mtu %d with %d-byte header: got %v, want ErrMTU", mtu, hl, err)
			}
			continue
		}
		if err := f.Reset(pkt, mtu); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		want := f.Count()
		defrag := ip4defrag.NewIPv4Defragmenter()
		var whole *layers.IPv4
		got := 0
		asm := make([]byte, len(payload))
		covered := 0
		for {
			n, err := f.Next(out)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			got++
			if n > mtu {
				t.Fatalf("fragment of %d bytes exceeds mtu %d", n, mtu)
			}
			if onesSum(out[:int(out[0]&0xf)*4], 0) != 0xffff {
				t.Fatal("fragment header checksum does not verify")
			}
			fhl := int(out[0]&0xf) * 4
			if got > 1 && fhl != 20+copied {
				t.Fatalf("non-first fragment header %d bytes, want %d (copied options only)", fhl, 20+copied)
			}
			p := gopacket.NewPacket(append([]byte(nil), out[:n]...), layers.LayerTypeIPv4, gopacket.Default)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip.Flags&layers.IPv4MoreFragments != 0 && (n-fhl)%8 != 0 {
				t.Fatalf("fragment with MF carries %d bytes, not a multiple of 8", n-fhl)
			}
			if (ip.Flags&layers.IPv4MoreFragments == 0) != f.Done() {
				t.Fatalf("MF clear on fragment %d, Done %v", got, f.Done())
			}
			if got > 1 {
				for _, o := range ip.Options {
					if o.OptionType != 130 && o.OptionType != 0 {
						t.Fatalf("non-first fragment carries option %d, which is not copied", o.OptionType)
					}
				}
			}
			off := int(ip.FragOffset) * 8
			if off != covered {
				t.Fatalf("fragment at offset %d, want %d", off, covered)
			}
			covered += copy(asm[off:], ip.Payload)
			if len(opts) == 0 {
				r, err := defrag.DefragIPv4(ip)
				if err != nil {
					t.Fatal(err)
				}
				if r != nil {
					whole = r
				}
			}
		}
		if got != want {
			t.Fatalf("Count said %d fragments, Next gave %d", want, got)
		}
		if !f.Done() {
			t.Fatal("Done is false after the last fragment")
		}
		if covered != len(payload) || !bytes.Equal(asm, payload) {
			t.Fatalf("reassembled payload differs (%d bytes covered of %d)", covered, len(payload))
		}
		if len(opts) == 0 && len(pkt) > mtu {
			if whole == nil {
				t.Fatalf("gopacket did not reassemble the %d fragments at mtu %d", got, mtu)
			}
			if !bytes.Equal(whole.Payload, payload) {
				t.Fatalf("gopacket's reassembly differs (len %d, want %d)", len(whole.Payload), len(payload))
			}
		}
	}
}

func TestFragmenterKeepsOffsetAndMF(t *testing.T) {
	// A middle fragment (offset 800 bytes, MF set) split again: the pieces continue at offset
	// 800 and all keep MF, since more of the original follows.
	pkt := ip4(t, h14, h24, layers.IPProtocolUDP, layers.IPv4MoreFragments, 100, nil, pattern(1200))
	var f Fragmenter
	if err := f.Reset(pkt, 576); err != nil {
		t.Fatal(err)
	}
	next := 800
	out := make([]byte, 1500)
	for {
		n, err := f.Next(out)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		fo := binary.BigEndian.Uint16(out[6:])
		if int(fo&0x1fff)*8 != next || fo&0x2000 == 0 {
			t.Fatalf("fragment offset %d MF %v, want %d and MF", int(fo&0x1fff)*8, fo&0x2000 != 0, next)
		}
		next += n - 20
	}
	if next != 2000 {
		t.Fatalf("fragments end at %d, want 2000", next)
	}
}

func TestFragmenterEdges(t *testing.T) {
	var f Fragmenter
	df := ip4(t, h14, h24, layers.IPProtocolUDP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	if err := f.Reset(df, 1400); !errors.Is(err, ErrDontFragment) {
		t.Errorf("DF packet: got %v, want ErrDontFragment", err)
	}
	small := ip4(t, h14, h24, layers.IPProtocolUDP, layers.IPv4DontFragment, 0, nil, pattern(100))
	if err := f.Reset(small, 1400); err != nil {
		t.Fatalf("fitting DF packet: %v", err)
	}
	out := make([]byte, 1500)
	n, err := f.Next(out)
	if err != nil || n != len(small) || !bytes.Equal(out[:n], small) || f.Count() != 1 {
		t.Fatalf("fitting packet: n %d err %v count %d, want an unchanged copy", n, err, f.Count())
	}
	if n, _ := f.Next(out); n != 0 || !f.Done() {
		t.Fatal("a second fragment of a fitting packet")
	}
	big := ip4(t, h14, h24, layers.IPProtocolUDP, 0, 0, nil, pattern(3000))
	if err := f.Reset(big, 1400); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Next(out[:1000]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: got %v", err)
	}
	if n, err := f.Next(out); err != nil || n != 1396 {
		t.Fatalf("first fragment after a short-buffer error: n %d err %v, want 1396", n, err)
	}
	if err := f.Reset(big[:100], 1400); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated packet: got %v", err)
	}
	if err := f.Reset(big, 40); !errors.Is(err, ErrMTU) {
		t.Errorf("mtu 40: got %v", err)
	}
	var zero Fragmenter
	if n, err := zero.Next(out); n != 0 || err != nil || !zero.Done() {
		t.Error("zero Fragmenter produced a fragment")
	}
}

// espOverhead models tunnel-mode ESP with AES-GCM over IPv4: outer header 20, ESP header 8,
// IV 8, payload + 2-byte trailer padded to 4, ICV 16.
func espOverhead(n int) int {
	padded := (n + 2 + 3) &^ 3
	return 20 + 8 + 8 + (padded - n) + 16
}

func TestMaxInner(t *testing.T) {
	for _, link := range []int{68, 576, 1280, 1500, 9000} {
		m := MaxInner(link, espOverhead)
		if m+espOverhead(m) > link {
			t.Errorf("link %d: MaxInner %d does not fit (%d bytes)", link, m, m+espOverhead(m))
		}
		if m+1+espOverhead(m+1) <= link {
			t.Errorf("link %d: MaxInner %d is not the largest (%d fits)", link, m, m+1)
		}
	}
	if got := MaxInner(1500, espOverhead); got != 1446 {
		t.Errorf("MaxInner(1500) = %d, want 1446", got)
	}
	if got := MaxInner(40, espOverhead); got != 0 {
		t.Errorf("MaxInner(40) = %d, want 0", got)
	}
}

func TestNoAllocations(t *testing.T) {
	o4 := ip4(t, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	o6 := ip6(t, h16, h26, layers.IPProtocolTCP, pattern(1460))
	big := ip4(t, h14, h24, layers.IPProtocolUDP, 0, 0, nil, pattern(4000))
	dst := make([]byte, 2048)
	var f Fragmenter
	for name, fn := range map[string]func(){
		"FragNeeded":   func() { _, _ = FragNeeded(dst, gw4, o4, 1438) },
		"PacketTooBig": func() { _, _ = PacketTooBig(dst, gw6, o6, 1418) },
		"Fragmenter": func() {
			_ = f.Reset(big, 1438)
			for n, _ := f.Next(dst); n > 0; n, _ = f.Next(dst) {
			}
		},
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s allocates %.1f times per call", name, a)
		}
	}
}

func BenchmarkFragNeeded(b *testing.B) {
	orig := ip4(b, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	dst := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FragNeeded(dst, gw4, orig, 1438); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPacketTooBig(b *testing.B) {
	orig := ip6(b, h16, h26, layers.IPProtocolTCP, pattern(1460))
	dst := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PacketTooBig(dst, gw6, orig, 1418); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFragment1500(b *testing.B) {
	pkt := ip4(b, h14, h24, layers.IPProtocolUDP, 0, 0, nil, pattern(1480))
	dst := make([]byte, 2048)
	var f Fragmenter
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		_ = f.Reset(pkt, 1438)
		for n, _ := f.Next(dst); n > 0; n, _ = f.Next(dst) {
		}
	}
}

var netipInvalid netip.Addr
