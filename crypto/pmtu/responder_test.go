package pmtu

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const headroom = 128

func frame(pkt []byte) []byte {
	buf := make([]byte, headroom+len(pkt)+64)
	copy(buf[headroom:], pkt)
	return buf
}

func TestResponderInPlace(t *testing.T) {
	r := NewResponder(gw4, gw6, 0, 0)
	o4 := ip4(t, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	buf := frame(o4)
	start, end, ok := r.PacketTooBig(buf, headroom, len(o4), 1438)
	if !ok || start != headroom-28 || end-start != 576 {
		t.Fatalf("IPv4: start %d end %d ok %v, want %d, %d, true", start, end, ok, headroom-28, headroom-28+576)
	}
	p := gopacket.NewPacket(buf[start:end], layers.LayerTypeIPv4, gopacket.Default)
	ic, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic == nil || ic.Seq != 1438 || !bytes.Equal(ic.Payload, o4[:548]) {
		t.Fatalf("IPv4 reply does not carry MTU 1438 and the quote: %v", p)
	}
	if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ip.DstIP.Equal(net.IP(h14.AsSlice())) {
		t.Fatalf("IPv4 reply goes to %v", ip.DstIP)
	}

	o6 := ip6(t, h16, h26, layers.IPProtocolTCP, pattern(1460))
	buf = frame(o6)
	start, end, ok = r.PacketTooBig(buf, headroom, len(o6), 1418)
	if !ok || start != headroom-48 || end-start != 1280 {
		t.Fatalf("IPv6: start %d end %d ok %v", start, end, ok)
	}
	p = gopacket.NewPacket(buf[start:end], layers.LayerTypeIPv6, gopacket.Default)
	if p.Layer(layers.LayerTypeICMPv6) == nil || !bytes.Equal(buf[start+48:end], o6[:1232]) {
		t.Fatalf("IPv6 reply malformed: %v", p)
	}
	if r.Sent.Load() != 2 {
		t.Fatalf("Sent %d, want 2", r.Sent.Load())
	}

	// No headroom, no source of the family, an ICMP error: silence.
	if _, _, ok := r.PacketTooBig(frame(o4), 10, len(o4), 1438); ok {
		t.Error("answered without headroom for the headers")
	}
	r4only := NewResponder(gw4, netipInvalid, 0, 0)
	if _, _, ok := r4only.PacketTooBig(frame(o6), headroom, len(o6), 1418); ok {
		t.Error("answered IPv6 without an IPv6 source address")
	}
	icmpErr := ip4(t, h14, h24, layers.IPProtocolICMPv4, layers.IPv4DontFragment, 0, nil,
		append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, pattern(1400)...))
	if _, _, ok := r.PacketTooBig(frame(icmpErr), headroom, len(icmpErr), 1438); ok {
		t.Error("answered an ICMP error")
	}
	if r.Silent.Load() != 2 || r4only.Silent.Load() != 1 {
		t.Errorf("Silent %d and %d, want 2 and 1", r.Silent.Load(), r4only.Silent.Load())
	}
}

func TestResponderRateLimit(t *testing.T) {
	r := NewResponder(gw4, gw6, 10, 3) // 10 per second, bursts of 3
	var now int64
	r.now = func() int64 { return now }
	o4 := ip4(t, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	icmpErr := ip4(t, h14, h24, layers.IPProtocolICMPv4, layers.IPv4DontFragment, 0, nil,
		append([]byte{3, 1, 0, 0, 0, 0, 0, 0}, pattern(1400)...))
	send := func(p []byte) bool {
		_, _, ok := r.PacketTooBig(frame(p), headroom, len(p), 1438)
		return ok
	}
	// Packets that are never answered do not spend the budget.
	for i := 0; i < 10; i++ {
		send(icmpErr)
	}
	got := 0
	for i := 0; i < 10; i++ {
		if send(o4) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("burst: %d replies, want 3", got)
	}
	now += 100_000_000 // 0.1 s: one more token
	if !send(o4) || send(o4) {
		t.Fatal("after 0.1 s exactly one more reply should go out")
	}
	if r.Limited.Load() != 8 {
		t.Fatalf("Limited %d, want 8", r.Limited.Load())
	}
}

func TestResponderFragmentIPv4(t *testing.T) {
	r := NewResponder(gw4, gw6, 0, 0)
	pkt := ip4(t, h14, h24, layers.IPProtocolUDP, 0, 0, nil, pattern(3000))
	dst := make([]byte, 1500)
	var total, count int
	for off := 0; ; {
		n, next := r.FragmentIPv4(dst, pkt, 1438, off)
		if n == 0 {
			t.Fatal("fragment refused")
		}
		total += n - 20
		count++
		if next == 0 {
			break
		}
		off = next
	}
	if total != 3000 || count != 3 {
		t.Fatalf("%d fragments carrying %d bytes, want 3 carrying 3000", count, total)
	}
	df := ip4(t, h14, h24, layers.IPProtocolUDP, layers.IPv4DontFragment, 0, nil, pattern(3000))
	if n, _ := r.FragmentIPv4(dst, df, 1438, 0); n != 0 {
		t.Fatal("fragmented a DF packet")
	}
}

func TestResponderNoAllocations(t *testing.T) {
	r := NewResponder(gw4, gw6, 1000, 10)
	o4 := ip4(t, h14, h24, layers.IPProtocolTCP, layers.IPv4DontFragment, 0, nil, pattern(1480))
	buf := frame(o4)
	if a := testing.AllocsPerRun(100, func() {
		copy(buf[headroom:], o4)
		r.PacketTooBig(buf, headroom, len(o4), 1438)
	}); a != 0 {
		t.Fatalf("PacketTooBig allocates %.1f times", a)
	}
}
