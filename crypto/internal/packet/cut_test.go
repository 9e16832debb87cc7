package packet

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
)

// pieces cuts pkt (headers hl bytes long, L4 at l4) into pieces of at most unit payload bytes, as the
// worker does: Hdr copied in front of each piece's payload, then Fix.
func pieces(pkt []byte, hl, l4, unit int, tcp bool) [][]byte {
	c := NewCut(pkt[:hl], l4, tcp)
	payload := pkt[hl:]
	var out [][]byte
	for done, i := 0, 0; done < len(payload) || i == 0; i++ {
		seg := min(unit, len(payload)-done)
		p := append(append([]byte(nil), c.Hdr...), payload[done:done+seg]...)
		c.Fix(p, i, done, done+seg >= len(payload))
		out = append(out, p)
		done += seg
	}
	return out
}

// TestCutSegments: TCP segments of an IPv4 and an IPv6 packet carry the payload in order with the
// right lengths, sequence numbers, IDs and flags, and checksums that verify.
func TestCutSegments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		pkt, _ := packettest.L4Packet(v6, 6, 3000)
		hl := 40
		if v6 {
			hl = 60
		}
		pkt[hl-20+13] |= tcpFIN | tcpCWR // FIN (last only), CWR (first only), PSH already set
		segs := pieces(pkt, hl, hl-20, 1000, true)
		if len(segs) != 3 {
			t.Fatalf("v6=%v: %d segments, want 3", v6, len(segs))
		}
		var payload []byte
		for i, p := range segs {
			tcp := p[hl-20:]
			if l, ok := IPLength(p); !ok || l != len(p) {
				t.Errorf("v6=%v segment %d: IP length %d of %d bytes", v6, i, l, len(p))
			}
			if !packettest.L4Verifies(p) {
				t.Errorf("v6=%v segment %d: TCP checksum does not verify", v6, i)
			}
			if !v6 && packettest.RefSum(p[:20], 0) != 0xffff {
				t.Errorf("segment %d: IPv4 header checksum does not verify", i)
			}
			if !v6 && binary.BigEndian.Uint16(p[4:]) != binary.BigEndian.Uint16(pkt[4:])+uint16(i) {
				t.Errorf("segment %d: IPv4 ID %d", i, binary.BigEndian.Uint16(p[4:]))
			}
			if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0x01020304+uint32(1000*i) {
				t.Errorf("v6=%v segment %d: seq %#x", v6, i, seq)
			}
			last, first := i == len(segs)-1, i == 0
			if fl := tcp[13]; (fl&tcpFIN != 0) != last || (fl&tcpPSH != 0) != last || (fl&tcpCWR != 0) != first || fl&0x10 == 0 {
				t.Errorf("v6=%v segment %d: flags %#x", v6, i, fl)
			}
			payload = append(payload, p[hl:]...)
		}
		if !bytes.Equal(payload, pkt[hl:]) {
			t.Errorf("v6=%v: the segments do not carry the payload in order", v6)
		}
	}
}

// TestCutFragments: IPv4 fragments have offsets in 8-byte units, MF on all but the last (and on the
// last when the packet was itself a non-last fragment), and header checksums that verify.
func TestCutFragments(t *testing.T) {
	for _, mf := range []bool{false, true} {
		pkt, _ := packettest.L4Packet(false, 17, 2000)
		fo := uint16(100) // the packet is itself a fragment at offset 800
		if mf {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(pkt[6:], fo)
		frags := pieces(pkt, 20, 20, 800, false)
		if len(frags) != 3 {
			t.Fatalf("%d fragments, want 3", len(frags))
		}
		for i, p := range frags {
			got := binary.BigEndian.Uint16(p[6:])
			wantMF := i < len(frags)-1 || mf
			if int(got&0x1fff)*8 != 800+800*i || (got&0x2000 != 0) != wantMF || got&0x4000 != 0 {
				t.Errorf("mf=%v fragment %d: flags/offset %#x", mf, i, got)
			}
			if packettest.RefSum(p[:20], 0) != 0xffff || int(binary.BigEndian.Uint16(p[2:])) != len(p) {
				t.Errorf("mf=%v fragment %d: header checksum or length wrong", mf, i)
			}
		}
	}
}
