package esp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// v6WithExt builds an IPv6 packet with the given extension headers (each 8
// bytes) in front of a UDP payload.
func v6WithExt(exts []byte, payload int) []byte {
	base := innerPacket(newRand(), true, payload, 0)
	udp := base[40:]
	p := append([]byte(nil), base[:40]...)
	p[6] = exts[0]
	for i := range exts {
		next := byte(protoUDP)
		if i+1 < len(exts) {
			next = exts[i+1]
		}
		p = append(p, next, 0, 1, 2, 3, 4, 5, 6) // 8-byte header, length field 0
	}
	p = append(p, udp...)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	return p
}

// TestTransport6ExtensionHeaders: ESP goes after hop-by-hop, routing and
// destination options (RFC 4303 §3.1.1), and comes back out intact.
func TestTransport6ExtensionHeaders(t *testing.T) {
	for _, s := range suites {
		c := saCase{suite: s, mode: ipsec.ModeTransport, outer6: true, window: 64}
		out, in := c.pair(t)
		pkt := v6WithExt([]byte{protoHBH, protoDstOpt}, 300)
		buf, off := frame(pkt, 0)
		st, e, err := out.Encap(buf, off, len(pkt))
		if err != nil {
			t.Fatalf("%s: Encap: %v", s.name, err)
		}
		w := append([]byte(nil), buf[st:e]...)
		// base header → HBH → DstOpt → ESP.
		if w[6] != protoHBH || w[40] != protoDstOpt || w[48] != protoESP || binary.BigEndian.Uint32(w[56:]) != 0x1001 {
			t.Fatalf("%s: header chain %x", s.name, w[:64])
		}
		if int(binary.BigEndian.Uint16(w[4:]))+40 != len(w) {
			t.Fatalf("%s: payload length", s.name)
		}
		buf, off = frame(w, 0)
		st, e, err = in.Decap(buf, off, len(w))
		if err != nil {
			t.Fatalf("%s: Decap: %v", s.name, err)
		}
		if !bytes.Equal(buf[st:e], pkt) {
			t.Fatalf("%s: round trip differs", s.name)
		}
	}
	c := saCase{suite: suites[0], mode: ipsec.ModeTransport, outer6: true, window: 64}
	out, _ := c.pair(t)
	frag := v6WithExt([]byte{protoHBH, protoFrag}, 100)
	buf, off := frame(frag, 0)
	if _, _, err := out.Encap(buf, off, len(frag)); !errors.Is(err, ErrFragment) {
		t.Fatalf("fragment header: %v", err)
	}
	bad := v6WithExt([]byte{protoHBH}, 100)
	bad[41] = 200 // extension header longer than the packet
	buf, off = frame(bad, 0)
	if _, _, err := out.Encap(buf, off, len(bad)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("overlong extension header: %v", err)
	}
}
