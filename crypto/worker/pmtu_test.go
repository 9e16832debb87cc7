//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/crypto/pmtu"
)

// csumOK reports whether b (with acc, a pseudo-header sum) verifies: its
// plain RFC 1071 sum is all ones.
func csumOK(b []byte, acc uint32) bool { return packettest.RefSum(b, acc) == 0xffff }

func ipv6UDP(ipLen int, src, dst netip.Addr) []byte {
	p := make([]byte, ipLen)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(ipLen-40))
	p[6], p[7] = 17, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	binary.BigEndian.PutUint16(p[40:], 1)
	binary.BigEndian.PutUint16(p[42:], 2)
	binary.BigEndian.PutUint16(p[44:], uint16(ipLen-40))
	return p
}

// TestPMTUResponder runs the too-big paths with crypto/pmtu's Responder,
// the hook the daemon uses.
func TestPMTUResponder(t *testing.T) {
	r := newRig(t, 128, nil)
	gw4, gw6 := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("2001:2::1")
	r.w.pmtu = pmtu.NewResponder(gw4, gw6, 0, 0)
	mtu := r.sas.InnerMTU(outIdx)

	r.prot.Receive(outMeta(), outFrame(ipv4UDP(1500, innerSrc, innerDst, 1, 2, true, 64)))
	_, prot := r.step(t)
	if len(prot) != 1 {
		t.Fatalf("no ICMP reply (stats %v)", statsOf(r.w))
	}
	ip := prot[0][14:]
	if ip[9] != 1 || !csumOK(ip[:20], 0) || netip.AddrFrom4([4]byte(ip[12:16])) != gw4 || netip.AddrFrom4([4]byte(ip[16:20])) != innerSrc {
		t.Fatalf("bad IPv4 header %x", ip[:20])
	}
	icmp := ip[20:binary.BigEndian.Uint16(ip[2:])]
	if icmp[0] != 3 || icmp[1] != 4 || int(binary.BigEndian.Uint16(icmp[6:])) != mtu || !csumOK(icmp, 0) {
		t.Fatalf("bad ICMP %x", icmp[:8])
	}

	src6, dst6 := netip.MustParseAddr("2001:2:1::10"), netip.MustParseAddr("2001:2:2::20")
	r.prot.Receive(outMeta(), ether(lanMAC, senderMAC, 0x86dd, ipv6UDP(1500, src6, dst6)))
	_, prot = r.step(t)
	if len(prot) != 1 || binary.BigEndian.Uint16(prot[0][12:]) != 0x86dd {
		t.Fatalf("no ICMPv6 reply (stats %v)", statsOf(r.w))
	}
	ip6 := prot[0][14:]
	if ip6[6] != 58 || ip6[40] != 2 || netip.AddrFrom16([16]byte(ip6[24:40])) != src6 {
		t.Fatalf("bad packet too big %x", ip6[:48])
	}
	if got := int(binary.BigEndian.Uint32(ip6[44:])); got != max(mtu, 1280) {
		t.Fatalf("PTB mtu %d, want %d", got, mtu)
	}

	big := ipv4UDP(1700, innerSrc, innerDst, 1, 2, false, 64)
	r.prot.Receive(outMeta(), outFrame(big))
	wire, _ := r.step(t)
	if len(wire) != 2 {
		t.Fatalf("%d fragments (stats %v)", len(wire), statsOf(r.w))
	}
	var payload []byte
	for _, f := range wire {
		outer := f[14:]
		buf := make([]byte, esp.Headroom+len(outer))
		copy(buf[esp.Headroom:], outer)
		a, b, err := r.peerIn.Decap(buf, esp.Headroom, len(outer))
		if err != nil {
			t.Fatal(err)
		}
		if !csumOK(buf[a:a+20], 0) {
			t.Fatal("fragment header checksum")
		}
		payload = append(payload, buf[a+20:b]...)
	}
	if !bytes.Equal(payload, big[20:]) {
		t.Fatal("fragments do not reassemble")
	}
	r.checkFrames(t)
}
