package esp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

// fuzzCases is the SA table the fuzz targets index with their first byte.
var fuzzCases = func() []saCase {
	var cs []saCase
	for _, s := range suites {
		for _, mode := range []ipsec.Mode{ipsec.ModeTunnel, ipsec.ModeTransport} {
			for _, outer6 := range []bool{false, true} {
				for _, udp := range []bool{false, true} {
					cs = append(cs, saCase{suite: s, mode: mode, outer6: outer6, inner6: outer6, udp: udp, esn: udp, window: 64})
				}
			}
		}
	}
	return cs
}()

func fuzzSA(t *testing.T, sel uint8) saCase {
	return fuzzCases[int(sel)%len(fuzzCases)]
}

// FuzzDecap feeds arbitrary outer packets to Decap: it must return a
// sentinel error or a packet inside the buffer, and never panic. The seed
// corpus (testdata/fuzz/FuzzDecap) holds valid packets of every SA kind.
func FuzzDecap(f *testing.F) {
	for i := range fuzzCases {
		wire, _, _ := sealed(&testing.T{}, fuzzCases[i], 40+i, nil)
		f.Add(uint8(i), wire)
	}
	f.Fuzz(func(t *testing.T, sel uint8, pkt []byte) {
		c := fuzzSA(t, sel)
		in, err := New(c.params())
		if err != nil {
			t.Fatal(err)
		}
		buf, off := frame(pkt, 0)
		s, e, err := in.Decap(buf, off, len(pkt))
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			if in.Counters().InPackets != 0 {
				t.Fatal("failed packet counted as received")
			}
			return
		}
		if s < off || e > off+len(pkt) || s > e {
			t.Fatalf("output [%d:%d] outside the input [%d:%d]", s, e, off, off+len(pkt))
		}
	})
}

// FuzzDecapAuthentic fuzzes what Decap parses after the ICV verified: the
// decrypted inner packet, padding, pad length and next header. FuzzDecap
// cannot reach those paths (a mutated packet fails the ICV), yet a peer
// holding the keys — buggy or hostile — can send anything there. So the
// packet is sealed by Encap with its plaintext replaced, just before
// encryption, by the fuzzer's body and trailer bytes: Decap must return a
// sentinel error or a packet inside the decrypted payload, never panic.
func FuzzDecapAuthentic(f *testing.F) {
	for i := range fuzzCases {
		f.Add(uint8(i), []byte{0x45, 0, 0, 40}, []byte{1, 2, 2, 4})
		f.Add(uint8(i), []byte{0x60, 0, 0, 0, 0, 0xff}, []byte{0, 0, 255, 41})
	}
	f.Add(uint8(3), []byte{0x4f, 0, 0xff, 0xff}, []byte{9, 9, 9, 59})
	f.Fuzz(func(t *testing.T, sel uint8, body, trailer []byte) {
		if len(body) > 2000 {
			return
		}
		c := fuzzSA(t, sel)
		out, in := c.pair(t)
		inner6, hl := c.inner6, 0
		if c.mode == ipsec.ModeTransport {
			inner6, hl = c.outer6, 20
			if c.outer6 {
				hl = 40
			}
		}
		pkt := innerPacket(newRand(), inner6, len(body), 0)
		buf, off := frame(pkt, 0)
		out.trailerFunc = func(tr []byte) {
			// Tunnel: the whole inner packet; transport: what follows
			// the IP header Encap keeps.
			copy(buf[off+hl:off+len(pkt)], body)
			copy(tr, trailer)
		}
		s, e, err := out.Encap(buf, off, len(pkt))
		if err != nil {
			t.Fatalf("%v: Encap of a valid packet: %v", c, err)
		}
		wire := append([]byte(nil), buf[s:e]...)
		buf2, off2 := frame(wire, 0)
		s2, e2, err := in.Decap(buf2, off2, len(wire))
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if s2 < off2 || e2 > off2+len(wire) || s2 > e2 {
			t.Fatalf("output [%d:%d] outside the input [%d:%d]", s2, e2, off2, off2+len(wire))
		}
	})
}

// FuzzEncapDecap encapsulates arbitrary inner packets: whatever Encap
// accepts, Decap must give back unchanged.
func FuzzEncapDecap(f *testing.F) {
	for i := range fuzzCases {
		c := fuzzCases[i]
		f.Add(uint8(i), innerPacket(newRand(), c.inner6, i*7, byte(i%4)))
	}
	f.Fuzz(func(t *testing.T, sel uint8, pkt []byte) {
		c := fuzzSA(t, sel)
		out, in := c.pair(t)
		buf, off := frame(pkt, 0)
		s, e, err := out.Encap(buf, off, len(pkt))
		if err != nil {
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		wire := append([]byte(nil), buf[s:e]...)
		buf2, off2 := frame(wire, 0)
		s2, e2, err := in.Decap(buf2, off2, len(wire))
		if err != nil {
			if errors.Is(err, ErrECN) || errors.Is(err, ErrDummy) {
				return // e.g. an inner "packet" whose ECN field is CE over not-ECT; or next header 59
			}
			t.Fatalf("%v: Decap of our own packet: %v", c, err)
		}
		got := buf2[s2:e2]
		if !bytes.Equal(got, pkt[:len(got)]) {
			t.Fatalf("%v: round trip differs", c)
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpora when
// XDPSEC_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("XDPSEC_WRITE_CORPUS") != "1" {
		testutil.Skip(t, "set XDPSEC_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(target string, i int, sel uint8, pkt []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", sel, pkt)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range fuzzCases {
		wire, _, _ := sealed(t, c, 40+i, nil)
		write("FuzzDecap", i, uint8(i), wire)
		write("FuzzEncapDecap", i, uint8(i), innerPacket(newRand(), c.inner6, i*7, byte(i%4)))
	}
	// A few malformed packets: IKE marker, keepalive, truncated ESP.
	c := fuzzCases[1]
	wire, _, _ := sealed(t, c, 10, nil)
	ike := append([]byte(nil), wire...)
	copy(ike[28:32], []byte{0, 0, 0, 0})
	write("FuzzDecap", 90, 1, ike)
	write("FuzzDecap", 91, 1, append(append([]byte(nil), wire[:28]...), 0xff))
	write("FuzzDecap", 92, 1, wire[:35])
}
