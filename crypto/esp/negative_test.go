package esp

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"unsafe"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"
	"github.com/xdpsec/xdpsec/crypto/keymem"
	"github.com/xdpsec/xdpsec/ipsec"
)

// sealed returns an outer packet from c's outbound SA (fresh copy), with the
// inbound SA of the same parameters.
func sealed(t *testing.T, c saCase, payload int, mutate func(trailer []byte)) (wire []byte, out, in *SA) {
	t.Helper()
	out, in = c.pair(t)
	out.trailerFunc = mutate
	r := rand.New(rand.NewPCG(3, uint64(payload)))
	inner6 := c.inner6
	if c.mode == ipsec.ModeTransport {
		inner6 = c.outer6
	}
	pkt := innerPacket(r, inner6, payload, 0)
	buf, off := frame(pkt, 0)
	s, e, err := out.Encap(buf, off, len(pkt))
	if err != nil {
		t.Fatalf("%v: Encap: %v", c, err)
	}
	return append([]byte(nil), buf[s:e]...), out, in
}

// decap runs Decap on a copy of wire and checks the error and its counter.
func expectDecap(t *testing.T, in *SA, wire []byte, want *Error, what string) {
	t.Helper()
	before := in.Counters()
	buf, off := frame(wire, 0)
	_, _, err := in.Decap(buf, off, len(wire))
	if want == nil {
		if err != nil {
			t.Fatalf("%s: Decap: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: Decap error %v, want %v", what, err, want)
	}
	if r, ok := ReasonOf(err); !ok || r != want.Reason {
		t.Fatalf("%s: ReasonOf(%v) = %v", what, err, r)
	}
	after := in.Counters()
	if after.Errors[want.Reason] != before.Errors[want.Reason]+1 || after.InPackets != before.InPackets {
		t.Fatalf("%s: counter for %v not incremented once (%d -> %d)", what, want.Reason, before.Errors[want.Reason], after.Errors[want.Reason])
	}
}

// espOffset returns where the ESP header starts in an outer packet of c.
func espOffset(c saCase) int {
	e := 20
	if c.outer6 {
		e = 40
	}
	if c.udp {
		e += 8
	}
	return e
}

// setLen rewrites the outer IP (and UDP) length fields for a packet cut to n bytes.
func setLen(c saCase, p []byte) {
	if c.outer6 {
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
	}
	if c.udp {
		u := espOffset(c) - 8
		binary.BigEndian.PutUint16(p[u+4:], uint16(len(p)-u))
	}
}

func negativeCases() []saCase {
	var cs []saCase
	for _, s := range suites {
		for _, udp := range []bool{false, true} {
			for _, outer6 := range []bool{false, true} {
				cs = append(cs, saCase{suite: s, mode: ipsec.ModeTunnel, outer6: outer6, inner6: !outer6, udp: udp, window: 64})
			}
		}
		cs = append(cs, saCase{suite: s, mode: ipsec.ModeTransport, window: 64, esn: true})
	}
	return cs
}

func TestDecapTruncated(t *testing.T) {
	for _, c := range negativeCases() {
		wire, out, in := sealed(t, c, 100, nil)
		e := espOffset(c)
		minESP := 8 + out.ivLen + out.icvLen + 2
		// Cut inside the ESP header, IV and ICV, with consistent IP lengths:
		// every cut is "truncated".
		for n := e; n < e+minESP; n++ {
			p := append([]byte(nil), wire[:n]...)
			setLen(c, p)
			expectDecap(t, in, p, ErrTruncated, c.String()+": cut in esp header")
		}
		// Cut anywhere with the IP length left claiming the whole packet.
		for n := 1; n < len(wire); n++ {
			buf, off := frame(wire[:n], 0)
			_, _, err := in.Decap(buf, off, n)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%v: cut at %d/%d: %v, want truncated", c, n, len(wire), err)
			}
		}
		expectDecap(t, in, wire, nil, c.String()+": intact")
	}
}

func TestDecapBadPaddingAndNextHeader(t *testing.T) {
	for _, c := range negativeCases() {
		// 101 bytes of UDP payload: every suite pads at least one byte.
		payload := 101
		_, probe, _ := sealed(t, c, payload, nil)
		inLen := payload + 28
		if c.mode == ipsec.ModeTunnel && c.inner6 || c.mode == ipsec.ModeTransport && c.outer6 {
			inLen += 20
		}
		if c.mode == ipsec.ModeTransport {
			inLen -= 20
		}
		if probe.padLen(inLen) == 0 {
			t.Fatalf("%v: test needs padding", c)
		}
		wire, _, in := sealed(t, c, payload, func(tr []byte) { tr[0] ^= 0x40 })
		expectDecap(t, in, wire, ErrBadPadding, c.String()+": pad byte")
		wire, _, in = sealed(t, c, payload, func(tr []byte) { tr[len(tr)-2] = 0xff })
		expectDecap(t, in, wire, ErrBadPadding, c.String()+": pad length too long")
		wire, _, in = sealed(t, c, payload, func(tr []byte) { tr[len(tr)-1] = protoNoNext })
		expectDecap(t, in, wire, ErrDummy, c.String()+": dummy packet")
		if c.mode == ipsec.ModeTunnel {
			wire, _, in = sealed(t, c, payload, func(tr []byte) { tr[len(tr)-1] = 6 })
			expectDecap(t, in, wire, ErrBadNextHeader, c.String()+": next header tcp in tunnel mode")
			other := byte(protoIPv6)
			if c.inner6 {
				other = protoIPIP
			}
			wire, _, in = sealed(t, c, payload, func(tr []byte) { tr[len(tr)-1] = other })
			expectDecap(t, in, wire, ErrBadNextHeader, c.String()+": next header of the other family")
		}
	}
}

func TestDecapTampered(t *testing.T) {
	for _, c := range negativeCases() {
		wire, out, in := sealed(t, c, 64, nil)
		e := espOffset(c)
		// Every bit of the ICV, and bits of the sequence number, IV and
		// ciphertext.
		for i := len(wire) - out.icvLen; i < len(wire); i++ {
			for bit := range 8 {
				p := append([]byte(nil), wire...)
				p[i] ^= 1 << bit
				expectDecap(t, in, p, ErrICV, c.String()+": flipped icv bit")
			}
		}
		for _, i := range []int{e + 7, e + 8, e + 8 + out.ivLen, len(wire) - out.icvLen - 1} {
			p := append([]byte(nil), wire...)
			p[i] ^= 0x02 // not 0x01: sequence number 1 would become 0, a replay
			expectDecap(t, in, p, ErrICV, c.String()+": flipped body bit")
		}
		p := append([]byte(nil), wire...)
		p[e] ^= 0x80
		expectDecap(t, in, p, ErrWrongSPI, c.String()+": wrong spi")
		// The window did not move for any of them: the packet still passes.
		expectDecap(t, in, wire, nil, c.String()+": original")
		expectDecap(t, in, wire, ErrReplay, c.String()+": replayed")
	}
}

func TestDecapNotESP(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, udp: true, window: 64}
	wire, _, in := sealed(t, c, 10, nil)
	// IKE on 4500: four zero bytes (the non-ESP marker) where the SPI goes.
	ike := append([]byte(nil), wire...)
	binary.BigEndian.PutUint32(ike[28:], 0)
	expectDecap(t, in, ike, ErrNotESP, "ike non-esp marker")
	// NAT keepalive: one 0xff byte.
	ka := append(append([]byte(nil), wire[:28]...), 0xff)
	setLen(c, ka)
	expectDecap(t, in, ka, ErrNotESP, "nat keepalive")
	// Another destination port.
	port := append([]byte(nil), wire...)
	binary.BigEndian.PutUint16(port[22:], 500)
	expectDecap(t, in, port, ErrNotESP, "udp port 500")
	// TCP.
	tcp := append([]byte(nil), wire...)
	tcp[9] = 6
	setLen(c, tcp)
	expectDecap(t, in, tcp, ErrNotESP, "tcp")
	// UDP to an SA without encapsulation, and plain ESP (same keys and SPI)
	// to the UDP-encapsulated SA: the encapsulation is part of the SA, as
	// Linux's XfrmInStateMismatch and the card's InStateMismatch hold.
	plainWire, _, plain := sealed(t, saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}, 10, nil)
	expectDecap(t, plain, wire, ErrNotESP, "udp to a plain esp sa")
	expectDecap(t, in, plainWire, ErrNotESP, "plain esp to a udp-encapsulated sa")
	// Fragments and broken outer headers.
	frag := append([]byte(nil), wire...)
	binary.BigEndian.PutUint16(frag[6:], 0x2000)
	setLen(c, frag)
	expectDecap(t, in, frag, ErrFragment, "fragment")
	bad := append([]byte(nil), wire...)
	bad[10] ^= 1
	expectDecap(t, in, bad, ErrBadHeader, "ipv4 checksum")
	v6 := append([]byte(nil), wire...)
	v6[0] = 0x65
	expectDecap(t, in, v6, ErrBadHeader, "ipv6 packet on an ipv4 sa")
}

func TestEncapRefuses(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}
	out, _ := c.pair(t)
	r := rand.New(rand.NewPCG(1, 1))
	pkt := innerPacket(r, false, 100, 0)
	buf, off := frame(pkt, 0)
	if _, _, err := out.Encap(buf, off-1, len(pkt)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("headroom: %v", err)
	}
	if _, _, err := out.Encap(buf[:len(buf)-1], off, len(pkt)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("tailroom: %v", err)
	}
	if _, _, err := out.Encap(buf, off, 10); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("short inner: %v", err)
	}
	buf[off] = 0x55
	if _, _, err := out.Encap(buf, off, len(pkt)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("ip version 5: %v", err)
	}
	if got := out.Counters(); got.Errors[ReasonNoRoom] != 2 || got.Errors[ReasonBadHeader] != 2 || got.OutPackets != 0 {
		t.Fatalf("counters %+v", got)
	}
	// Transport mode refuses fragments and the other family.
	tc := saCase{suite: suites[0], mode: ipsec.ModeTransport, window: 64}
	tout, _ := tc.pair(t)
	frag := innerPacket(r, false, 100, 0)
	binary.BigEndian.PutUint16(frag[6:], 0x2001)
	buf, off = frame(frag, 0)
	if _, _, err := tout.Encap(buf, off, len(frag)); !errors.Is(err, ErrFragment) {
		t.Fatalf("transport fragment: %v", err)
	}
	v6 := innerPacket(r, true, 100, 0)
	buf, off = frame(v6, 0)
	if _, _, err := tout.Encap(buf, off, len(v6)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("transport v6 on v4 sa: %v", err)
	}
}

func TestSeqExhausted(t *testing.T) {
	for _, esn := range []bool{false, true} {
		c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, esn: esn, window: 64, initSeq: 1<<32 - 2}
		if esn {
			c.initSeq = 1<<64 - 2
		}
		out, _ := c.pair(t)
		r := rand.New(rand.NewPCG(1, 1))
		pkt := innerPacket(r, false, 10, 0)
		buf, off := frame(pkt, 0)
		if out.SeqExhausted() {
			t.Fatalf("esn=%v: exhausted before the last number", esn)
		}
		if _, _, err := out.Encap(buf, off, len(pkt)); err != nil {
			t.Fatalf("esn=%v: last number refused: %v", esn, err)
		}
		if !out.SeqExhausted() || out.NextSeq()-1 != out.SeqLimit() {
			t.Fatalf("esn=%v: not exhausted after the last number", esn)
		}
		for range 3 {
			buf, off = frame(pkt, 0)
			if _, _, err := out.Encap(buf, off, len(pkt)); !errors.Is(err, ErrSeqExhausted) {
				t.Fatalf("esn=%v: %v, want exhausted", esn, err)
			}
		}
		if out.Counters().Errors[ReasonSeqExhausted] != 3 || out.NextSeq() != c.initSeq+2 {
			t.Fatalf("esn=%v: counters %+v next %d", esn, out.Counters(), out.NextSeq())
		}
	}
}

// TestReplayThroughSA exercises the window through Decap: out of order,
// duplicates, the window's left edge.
func TestReplayThroughSA(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 32}
	out, in := c.pair(t)
	r := rand.New(rand.NewPCG(5, 5))
	var wires [][]byte
	for range 40 {
		pkt := innerPacket(r, false, 20, 0)
		buf, off := frame(pkt, 0)
		s, e, err := out.Encap(buf, off, len(pkt))
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, append([]byte(nil), buf[s:e]...))
	}
	// seq 40 first, then 9 (left edge: 40-32+1), then 8 (outside).
	expectDecap(t, in, wires[39], nil, "seq 40")
	expectDecap(t, in, wires[8], nil, "seq 9 (left edge)")
	expectDecap(t, in, wires[7], ErrReplay, "seq 8 (left of window)")
	expectDecap(t, in, wires[8], ErrReplay, "seq 9 again")
	for i := 38; i >= 9; i-- {
		expectDecap(t, in, wires[i], nil, "out of order")
	}
	for i := 8; i < 40; i++ {
		expectDecap(t, in, wires[i], ErrReplay, "duplicate")
	}
	if in.ReplayTop() != 40 {
		t.Fatalf("top %d", in.ReplayTop())
	}
}

// TestESNRollover sends across the 2^32 boundary of the low half and
// delivers out of order around it: the receiver must infer the high half
// (RFC 4303 Appendix A) both ways.
func TestESNRollover(t *testing.T) {
	for _, s := range suites {
		c := saCase{suite: s, mode: ipsec.ModeTunnel, esn: true, window: 64, initSeq: 1<<32 - 10}
		out, in := c.pair(t)
		r := rand.New(rand.NewPCG(6, 6))
		var wires [][]byte
		for range 20 { // 2^32-9 .. 2^32+10
			pkt := innerPacket(r, false, 20, 0)
			buf, off := frame(pkt, 0)
			st, e, err := out.Encap(buf, off, len(pkt))
			if err != nil {
				t.Fatal(err)
			}
			wires = append(wires, append([]byte(nil), buf[st:e]...))
		}
		// Deliver: 0..4, then 15 (high half +1), then 5..14 (late, high
		// half still 0 for 5..8), then 19, 16..18.
		order := []int{0, 1, 2, 3, 4, 15, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 19, 16, 17, 18}
		for _, i := range order {
			expectDecap(t, in, wires[i], nil, c.String()+": rollover delivery")
		}
		if in.ReplayTop() != 1<<32+10 {
			t.Fatalf("%v: top %#x", c, in.ReplayTop())
		}
		expectDecap(t, in, wires[3], ErrReplay, c.String()+": duplicate before rollover")
		expectDecap(t, in, wires[12], ErrReplay, c.String()+": duplicate after rollover")
	}
}

func TestECN(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}
	for _, inner6 := range []bool{false, true} {
		c.inner6 = inner6
		for _, tc := range []struct {
			inner, outer, want byte
			err                *Error
		}{
			{0, 3, 0, ErrECN}, // CE over not-ECT: drop
			{2, 3, 3, nil},    // ECT(0) + CE -> CE
			{1, 3, 3, nil},
			{2, 1, 1, nil}, // ECT(0) + ECT(1) -> ECT(1)
			{1, 2, 1, nil},
			{0, 0, 0, nil},
			{3, 2, 3, nil},
		} {
			out, in := c.pair(t)
			r := rand.New(rand.NewPCG(8, 8))
			pkt := innerPacket(r, inner6, 50, tc.inner)
			buf, off := frame(pkt, 0)
			s, e, err := out.Encap(buf, off, len(pkt))
			if err != nil {
				t.Fatal(err)
			}
			w := append([]byte(nil), buf[s:e]...)
			if w[1]&3 != tc.inner {
				t.Fatalf("outer ecn %d, want the inner's %d (RFC 6040 normal mode)", w[1]&3, tc.inner)
			}
			w[1] = w[1]&^3 | tc.outer
			setLen(c, w)
			buf, off = frame(w, 0)
			s, e, err = in.Decap(buf, off, len(w))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("inner %d outer %d: %v", tc.inner, tc.outer, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			got := buf[s:e]
			var ecn byte
			if inner6 {
				ecn = byte(binary.BigEndian.Uint16(got)>>4) & 3
			} else {
				ecn = got[1] & 3
				if inetsum.Fold(inetsum.Sum(got[:20], 0)) != 0xffff {
					t.Fatalf("inner checksum broken after ecn update")
				}
			}
			if ecn != tc.want {
				t.Fatalf("inner6=%v inner %d outer %d: got %d want %d", inner6, tc.inner, tc.outer, ecn, tc.want)
			}
		}
	}
}

func TestDFAndTTL(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, tc := range []struct {
		df      DFPolicy
		innerDF bool
		want    bool
	}{{DFCopy, true, true}, {DFCopy, false, false}, {DFSet, false, true}, {DFClear, true, false}} {
		p := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}.params()
		p.DF, p.TTL = tc.df, 17
		sa, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		pkt := innerPacket(r, false, 10, 0)
		if !tc.innerDF {
			binary.BigEndian.PutUint16(pkt[6:], 0)
			pkt[10], pkt[11] = 0, 0
			binary.BigEndian.PutUint16(pkt[10:], ipv4Checksum(pkt[:20]))
		}
		buf, off := frame(pkt, 0)
		s, _, err := sa.Encap(buf, off, len(pkt))
		if err != nil {
			t.Fatal(err)
		}
		if got := buf[s+6]&0x40 != 0; got != tc.want || buf[s+8] != 17 {
			t.Fatalf("%v inner df %v: df %v ttl %d", tc.df, tc.innerDF, got, buf[s+8])
		}
	}
}

func TestTFCPadding(t *testing.T) {
	c := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64, tfcPad: 600}
	out, in := c.pair(t)
	r := rand.New(rand.NewPCG(9, 9))
	pkt := innerPacket(r, false, 10, 0)
	buf, off := frame(pkt, 0)
	if _, _, err := out.Encap(buf, off, len(pkt)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("tfc without room: %v", err)
	}
	buf, off = frame(pkt, 600)
	s, e, err := out.Encap(buf, off, len(pkt))
	if err != nil {
		t.Fatal(err)
	}
	if e-s < 600+20+8+8+16 {
		t.Fatalf("tfc padding missing: %d bytes", e-s)
	}
	if e-s != len(pkt)+out.Overhead(len(pkt)) {
		t.Fatalf("Overhead says %d, got %d", out.Overhead(len(pkt)), e-s-len(pkt))
	}
	w := append([]byte(nil), buf[s:e]...)
	buf, off = frame(w, 0)
	s, e, err = in.Decap(buf, off, len(w))
	if err != nil || string(buf[s:e]) != string(pkt) {
		t.Fatalf("tfc round trip: %v", err)
	}
}

func TestWipe(t *testing.T) {
	for _, s := range suites {
		c := saCase{suite: s, mode: ipsec.ModeTunnel, window: 64}
		out, in := c.pair(t)
		wire, _, _ := sealed(t, c, 10, nil)
		st := out.st.Load()
		// The raw keys live in key memory (package keymem), locked when root runs the test.
		if os.Geteuid() == 0 && !st.mem.Locked() {
			t.Errorf("%s: the SA's key copy is not in locked memory: %v", s.name, keymem.Stats().LockErr)
		}
		if unsafe.SliceData(st.keys) != unsafe.SliceData(st.mem.Bytes()) {
			t.Errorf("%s: the SA keeps its keys outside its key memory", s.name)
		}
		out.Wipe()
		out.Wipe()
		for _, b := range st.keys {
			if b != 0 {
				t.Fatalf("%s: key bytes survive Wipe", s.name)
			}
		}
		pkt := innerPacketFixed(10)
		buf, off := frame(pkt, 0)
		if _, _, err := out.Encap(buf, off, len(pkt)); !errors.Is(err, ErrWiped) {
			t.Fatalf("%s: Encap after Wipe: %v", s.name, err)
		}
		in.Wipe()
		expectDecap(t, in, wire, ErrWiped, s.name+": Decap after Wipe")
	}
}

func TestValidateNamesField(t *testing.T) {
	good := saCase{suite: suites[0], mode: ipsec.ModeTunnel, window: 64}.params()
	cases := []struct {
		field string
		is    error
		edit  func(p *Params)
	}{
		{"spi", ErrInvalidValue, func(p *Params) { p.SPI = 255 }},
		{"src", ErrMissing, func(p *Params) { p.Src = netip.Addr{} }},
		{"dst", ErrInvalidValue, func(p *Params) { p.Dst = v6a }},
		{"mode", ErrMissing, func(p *Params) { p.Mode = 0 }},
		{"mode", ErrInvalidValue, func(p *Params) { p.Mode = 3 }},
		{"aead.alg", ErrUnknownAlgorithm, func(p *Params) { p.AEAD.Name = "rfc4309(ccm(aes))" }},
		{"aead.key", ErrKeyLength, func(p *Params) { p.AEAD.Key = p.AEAD.Key[:16] }},
		{"aead.key", ErrKeyLength, func(p *Params) { p.AEAD = AEADAlg{Name: "aes-gcm-256", Key: testKey(20, 1)} }},
		{"aead.key", ErrKeyLength, func(p *Params) { p.AEAD = AEADAlg{Name: "chacha20-poly1305", Key: testKey(32, 1)} }},
		{"aead.icv_bits", ErrInvalidValue, func(p *Params) { p.AEAD.ICVBits = 64 }},
		{"enc", ErrInvalidValue, func(p *Params) { p.Enc = EncAlg{Name: "cbc(aes)", Key: testKey(16, 1)} }},
		{"aead", ErrMissing, func(p *Params) { p.AEAD = AEADAlg{} }},
		{"enc.alg", ErrUnknownAlgorithm, func(p *Params) { p.AEAD = AEADAlg{}; p.Enc = EncAlg{Name: "des"} }},
		{"enc.key", ErrKeyLength, func(p *Params) { p.AEAD = AEADAlg{}; p.Enc = EncAlg{Name: "aes-cbc-256", Key: testKey(16, 1)} }},
		{"auth", ErrMissing, func(p *Params) { p.AEAD = AEADAlg{}; p.Enc = EncAlg{Name: "aes-cbc-128", Key: testKey(16, 1)} }},
		{"auth.alg", ErrUnknownAlgorithm, func(p *Params) {
			p.AEAD = AEADAlg{}
			p.Enc = EncAlg{Name: "null"}
			p.Auth = AuthAlg{Name: "hmac(md5)", Key: testKey(16, 1)}
		}},
		{"auth.key", ErrKeyLength, func(p *Params) {
			p.AEAD = AEADAlg{}
			p.Enc = EncAlg{Name: "null"}
			p.Auth = AuthAlg{Name: "hmac(sha256)", Key: testKey(20, 1)}
		}},
		{"auth.trunc_bits", ErrInvalidValue, func(p *Params) {
			p.AEAD = AEADAlg{}
			p.Enc = EncAlg{Name: "null"}
			p.Auth = AuthAlg{Name: "hmac(sha256)", Key: testKey(32, 1), TruncBits: 96}
		}},
		{"replay_window", ErrInvalidValue, func(p *Params) { p.ReplayWindow = 16 }},
		{"replay_window", ErrInvalidValue, func(p *Params) { p.ReplayWindow = MaxReplayWindow + 1 }},
		{"seq", ErrInvalidValue, func(p *Params) { p.Seq = 1 << 32 }},
		{"encap", ErrInvalidValue, func(p *Params) { p.UDPEncap = &UDPEncap{SrcPort: 4500} }},
		{"tfc_pad", ErrInvalidValue, func(p *Params) { p.Mode = ipsec.ModeTransport; p.TFCPadTo = 100 }},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good params: %v", err)
	}
	for _, c := range cases {
		p := good
		c.edit(&p)
		err := p.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, c.is) {
			t.Fatalf("want field %q (%v), got %v", c.field, c.is, err)
		}
		if _, err := New(p); !errors.As(err, &fe) {
			t.Fatalf("New accepted bad %s: %v", c.field, err)
		}
	}
	// Aliases resolve.
	for _, name := range []string{"rfc4106(gcm(aes))", "AES-GCM-128", "aes-gcm"} {
		p := good
		p.AEAD.Name = name
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
