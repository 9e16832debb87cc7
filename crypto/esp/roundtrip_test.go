package esp

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"

	"github.com/xdpsec/xdpsec/ipsec"
)

// TestRoundTrip runs every algorithm × mode × inner/outer version × ESN ×
// UDP-encap combination over random inner packets of 0–9000 payload bytes,
// and checks the outer packet's framing as well as the recovered packet.
func TestRoundTrip(t *testing.T) {
	iters := 40
	if testing.Short() {
		iters = 8
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range allCases() {
		t.Run(c.String(), func(t *testing.T) {
			out, in := c.pair(t)
			sizes := []int{0, 1, 2, 3, 13, 14, 15, 16, 17, 1400, 9000}
			for range iters {
				sizes = append(sizes, r.IntN(9001))
			}
			for i, size := range sizes {
				inner6 := c.inner6
				if c.mode == ipsec.ModeTransport {
					inner6 = c.outer6
				}
				pkt := innerPacket(r, inner6, size, byte(i%4))
				buf, off := frame(pkt, 0)
				s, e, err := out.Encap(buf, off, len(pkt))
				if err != nil {
					t.Fatalf("size %d: Encap: %v", size, err)
				}
				checkOuter(t, c, buf[s:e], uint64(i+1))
				if got := e - s - len(pkt); got != out.Overhead(len(pkt)) {
					t.Fatalf("size %d: Encap added %d bytes, Overhead says %d", size, got, out.Overhead(len(pkt)))
				}
				if bytes.Contains(buf[s:e], pkt[28:]) && c.suite.enc.Name != AlgNull && c.suite.aead.Name != AlgGMAC && size > 16 {
					t.Fatalf("size %d: plaintext visible in ciphertext", size)
				}
				// Decap from a fresh buffer with its own headroom.
				wire := append([]byte(nil), buf[s:e]...)
				buf2, off2 := frame(wire, 0)
				s2, e2, err := in.Decap(buf2, off2, len(wire))
				if err != nil {
					t.Fatalf("size %d: Decap: %v", size, err)
				}
				if !bytes.Equal(buf2[s2:e2], pkt) {
					t.Fatalf("size %d: round trip differs:\n got %x\nwant %x", size, buf2[s2:e2], pkt)
				}
			}
			oc, ic := out.Counters(), in.Counters()
			if oc.OutPackets != uint64(len(sizes)) || ic.InPackets != uint64(len(sizes)) || oc.OutBytes != ic.InBytes {
				t.Fatalf("counters: out %+v in %+v", oc, ic)
			}
		})
	}
}

// checkOuter checks the outer packet's headers: lengths, checksum, protocol,
// SPI, sequence number and the RFC 4303 §2.4 alignment.
func checkOuter(t *testing.T, c saCase, o []byte, seq uint64) {
	t.Helper()
	var hl int
	var proto byte
	if c.outer6 {
		if o[0]>>4 != 6 || int(binary.BigEndian.Uint16(o[4:]))+40 != len(o) {
			t.Fatalf("outer ipv6 header wrong: %x", o[:40])
		}
		hl, proto = 40, o[6]
		if c.mode == ipsec.ModeTunnel && o[7] != DefaultTTL {
			t.Fatalf("hop limit %d", o[7])
		}
	} else {
		hl = int(o[0]&0xf) * 4
		if o[0]>>4 != 4 || int(binary.BigEndian.Uint16(o[2:])) != len(o) || inetsum.Fold(inetsum.Sum(o[:hl], 0)) != 0xffff {
			t.Fatalf("outer ipv4 header wrong: %x", o[:20])
		}
		proto = o[9]
		if c.mode == ipsec.ModeTunnel && o[8] != DefaultTTL {
			t.Fatalf("ttl %d", o[8])
		}
	}
	e := hl
	if c.udp {
		if proto != protoUDP {
			t.Fatalf("proto %d, want udp", proto)
		}
		u := o[hl:]
		if binary.BigEndian.Uint16(u[2:]) != 4500 || int(binary.BigEndian.Uint16(u[4:])) != len(o)-hl {
			t.Fatalf("udp header wrong: %x", u[:8])
		}
		if c.outer6 {
			var src, dst [16]byte
			copy(src[:], o[8:24])
			copy(dst[:], o[24:40])
			sum := inetsum.Fold(inetsum.Sum(src[:], inetsum.Sum(dst[:], inetsum.Add(inetsum.Sum(u, 0), uint64(len(u))+protoUDP))))
			if sum != 0xffff {
				t.Fatalf("udp6 checksum wrong")
			}
		}
		e += 8
	} else if proto != protoESP {
		t.Fatalf("proto %d, want esp", proto)
	}
	if binary.BigEndian.Uint32(o[e:]) != 0x1001 || binary.BigEndian.Uint32(o[e+4:]) != uint32(seq) {
		t.Fatalf("esp header %x, want spi 0x1001 seq %d", o[e:e+8], seq)
	}
	out, _ := New(c.params())
	ct := len(o) - e - 8 - out.ivLen - out.icvLen
	if ct%out.align != 0 || ct%4 != 0 {
		t.Fatalf("ciphertext length %d not aligned to %d", ct, out.align)
	}
}
