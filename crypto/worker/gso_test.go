//go:build linux

package worker

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// newSGRig is a rig whose rings take whole 64 KiB chains (37 frames).
func newSGRig(t testing.TB) *rig {
	t.Helper()
	return newRigSized(t, 0, nil, 1024, 128)
}

// drive steps the worker until it has nothing left to do and returns what
// the kernel doubles transmitted.
func (r *rig) drive(t testing.TB) (wire, prot [][]byte) {
	t.Helper()
	for range 6 {
		if _, err := r.w.Step(); err != nil {
			t.Fatal(err)
		}
		r.wire.Transmit(0, func(d xsk.Desc, pkt []byte) { wire = append(wire, append([]byte(nil), pkt...)) })
		r.prot.Transmit(0, func(d xsk.Desc, pkt []byte) { prot = append(prot, append([]byte(nil), pkt...)) })
	}
	return wire, prot
}

// open decrypts a sealed wire frame as the peer would and returns the inner packet.
func (r *rig) open(t testing.TB, f []byte) []byte {
	t.Helper()
	outer := f[14:]
	if len(outer) > 1500 {
		t.Fatalf("%d-byte packet on a 1500-byte wire", len(outer))
	}
	buf := make([]byte, esp.Headroom+len(outer))
	copy(buf[esp.Headroom:], outer)
	s, e, err := r.peerIn.Decap(buf, esp.Headroom, len(outer))
	if err != nil {
		t.Fatalf("peer decap: %v", err)
	}
	return buf[s:e]
}

// superTCP is a host's GSO super-packet: IP length ipLen, TCP with
// timestamps (32-byte header), the flags given, sequence number seq, IPv4
// ID 0x1234 with DF, and the CHECKSUM_PARTIAL checksum a host leaves.
func superTCP(v6 bool, ipLen int, flags byte, seq uint32) []byte {
	hl := 20
	if v6 {
		hl = 40
	}
	p, at := packettest.L4Packet(v6, 6, ipLen-hl-20)
	// Grow the TCP header to 32 bytes (NOP, NOP, timestamps) keeping the length.
	l4 := p[hl:]
	copy(l4[32:], l4[20:len(l4)-12])
	copy(l4[20:32], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	l4[12] = 8 << 4
	l4[13] = flags
	binary.BigEndian.PutUint32(l4[4:], seq)
	if !v6 {
		binary.BigEndian.PutUint16(p[4:], 0x1234)
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], ^uint16(packettest.RefSum(p[:20], 0)))
	}
	return packettest.Partial(p, at)
}

// TestSegmentTCP feeds GSO super-packets (IPv4 and IPv6, up to 64 KiB, in
// descriptor chains) to the worker and checks the segments the peer opens:
// each fits the inner MTU and is MSS-sized but the last, IP length / ID /
// checksum and IPv6 payload length fixed, TTL decremented, sequence numbers
// advancing, FIN and PSH only on the last and CWR only on the first, TCP
// checksums complete, and the payloads concatenate to the original's.
func TestSegmentTCP(t *testing.T) {
	const fin, psh, ack, cwr = 0x01, 0x08, 0x10, 0x80
	for _, c := range []struct {
		name  string
		v6    bool
		ipLen int
	}{
		{"v4 64k", false, 65535}, {"v4 odd", false, 3001}, {"v4 just over", false, 1800},
		{"v6 64k", true, 65535}, {"v6 odd", true, 5003},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newSGRig(t)
			mtu := r.sas.InnerMTU(outIdx)
			ip := superTCP(c.v6, c.ipLen, fin|psh|ack|cwr, 0xfffff000) // the sequence number wraps
			et := uint16(0x0800)
			hl := 20
			if c.v6 {
				et, hl = 0x86dd, 40
			}
			if !r.prot.ReceiveMulti(outMeta(), ether(lanMAC, senderMAC, et, ip)) {
				t.Fatal("kernel double could not deliver the chain")
			}
			wire, prot := r.drive(t)
			mss := mtu - hl - 32
			want := (c.ipLen - hl - 32 + mss - 1) / mss
			if len(wire) != want || len(prot) != 0 {
				t.Fatalf("%d segments on the wire, %d back; want %d, 0 (stats %+v)", len(wire), len(prot), want, statsOf(r.w))
			}
			var payload []byte
			for i, f := range wire {
				p := r.open(t, f)
				if len(p) > mtu {
					t.Fatalf("segment %d: %d bytes over the inner mtu %d", i, len(p), mtu)
				}
				last := i == len(wire)-1
				if !last && len(p) != mtu {
					t.Errorf("segment %d: %d bytes, want the full %d", i, len(p), mtu)
				}
				if c.v6 {
					if int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) || p[7] != 63 {
						t.Errorf("segment %d: payload length %d hop limit %d", i, binary.BigEndian.Uint16(p[4:]), p[7])
					}
				} else {
					if int(binary.BigEndian.Uint16(p[2:])) != len(p) || binary.BigEndian.Uint16(p[4:]) != 0x1234+uint16(i) ||
						binary.BigEndian.Uint16(p[6:]) != 0x4000 || p[8] != 63 || packettest.RefSum(p[:20], 0) != 0xffff {
						t.Errorf("segment %d: ip header %x", i, p[:20])
					}
				}
				tcp := p[hl:]
				if !packettest.L4Verifies(p) {
					t.Errorf("segment %d: tcp checksum does not verify", i)
				}
				if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(i*mss) {
					t.Errorf("segment %d: seq %#x", i, seq)
				}
				wantFlags := byte(ack)
				if last {
					wantFlags |= fin | psh
				}
				if i == 0 {
					wantFlags |= cwr
				}
				if tcp[13] != wantFlags {
					t.Errorf("segment %d: flags %#x, want %#x", i, tcp[13], wantFlags)
				}
				if !bytes.Equal(tcp[20:32], ip[hl+20:hl+32]) || !bytes.Equal(tcp[:4], ip[hl:hl+4]) {
					t.Errorf("segment %d: tcp header not copied: %x", i, tcp[:32])
				}
				payload = append(payload, tcp[32:]...)
			}
			if !bytes.Equal(payload, ip[hl+32:]) {
				t.Fatal("segments' payloads do not concatenate to the super-packet's")
			}
			st := &r.w.stats
			if st.Chains.Load() != 1 || st.Segments.Load() != uint64(want) || st.Sealed.Load() != uint64(want) {
				t.Errorf("stats: chains %d segments %d sealed %d", st.Chains.Load(), st.Segments.Load(), st.Sealed.Load())
			}
			if got := r.stats.SA(outIdx).Packets.Load(); got != uint64(want) {
				t.Errorf("sa packets %d", got)
			}
			r.checkFrames(t)
		})
	}
}

// TestChainsAcrossBatches sends super-packets back to back so that chains
// straddle RX batches (64 descriptors), mixed with single-frame packets.
func TestChainsAcrossBatches(t *testing.T) {
	r := newSGRig(t)
	mtu := r.sas.InnerMTU(outIdx)
	for i := range 3 {
		ip := superTCP(false, 40000+i, 0x10, uint32(i)<<24)
		if !r.prot.ReceiveMulti(outMeta(), outFrame(ip)) {
			t.Fatal("deliver chain")
		}
		if !r.prot.Receive(outMeta(), outFrame(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64))) {
			t.Fatal("deliver single")
		}
	}
	wire, _ := r.drive(t)
	segs := 0
	for i := range 3 {
		segs += (40000 + i - 52 + mtu - 53) / (mtu - 52)
	}
	if len(wire) != segs+3 || r.w.stats.Chains.Load() != 3 {
		t.Fatalf("%d packets on the wire, want %d (stats %+v, chains %d)", len(wire), segs+3, statsOf(r.w), r.w.stats.Chains.Load())
	}
	for _, f := range wire {
		r.open(t, f)
	}
	r.checkFrames(t)
}

// TestChainOthers: UDP chains (maybe UDP GSO) are dropped and counted,
// IPv4 without DF is fragmented from the chain, IPv6 non-TCP gets the ICMP
// error, inbound chains and chains over 64 descriptors are dropped; every
// frame comes back.
func TestChainOthers(t *testing.T) {
	r := newSGRig(t)
	mtu := r.sas.InnerMTU(outIdx)

	udp := ipv4UDP(9000, innerSrc, innerDst, 1, 2, false, 64)
	r.prot.ReceiveMulti(outMeta(), outFrame(udp))
	if wire, prot := r.drive(t); len(wire)+len(prot) != 0 || r.w.stats.ChainDrops.Load() != 1 {
		t.Fatalf("udp chain: %d/%d sent, chain drops %d", len(wire), len(prot), r.w.stats.ChainDrops.Load())
	}

	// ICMP echo of 9000 bytes without DF: fragments that reassemble.
	icmp := ipv4UDP(9000, innerSrc, innerDst, 0, 0, false, 64)
	icmp[9] = 1
	icmp[10], icmp[11] = 0, 0
	binary.BigEndian.PutUint16(icmp[10:], ^uint16(packettest.RefSum(icmp[:20], 0)))
	r.prot.ReceiveMulti(outMeta(), outFrame(icmp))
	wire, _ := r.drive(t)
	if want := (9000 - 20 + (mtu-20)&^7 - 1) / ((mtu - 20) &^ 7); len(wire) != want {
		t.Fatalf("%d fragments, want %d", len(wire), want)
	}
	var payload []byte
	for i, f := range wire {
		p := r.open(t, f)
		fo := binary.BigEndian.Uint16(p[6:])
		if int(fo&0x1fff)*8 != len(payload) || (fo&0x2000 != 0) != (i < len(wire)-1) || packettest.RefSum(p[:20], 0) != 0xffff || p[8] != 63 {
			t.Fatalf("fragment %d: header %x", i, p[:20])
		}
		payload = append(payload, p[20:]...)
	}
	if !bytes.Equal(payload, icmp[20:]) {
		t.Fatal("fragments do not reassemble")
	}

	// IPv6, not TCP or UDP: Packet Too Big back to the sender.
	v6, _ := packettest.L4Packet(true, 58, 6000)
	r.prot.ReceiveMulti(outMeta(), ether(lanMAC, senderMAC, 0x86dd, v6))
	if wire, prot := r.drive(t); len(wire) != 0 || len(prot) != 1 || r.w.stats.PTBSent.Load() != 1 {
		t.Fatalf("v6 chain: %d/%d sent, ptb %d", len(wire), len(prot), r.w.stats.PTBSent.Load())
	}

	// Too long a chain (over 64 frames) and an inbound chain.
	r.prot.ReceiveMulti(outMeta(), outFrame(make([]byte, 65*1800)))
	r.wire.ReceiveMulti(inMeta(), make([]byte, 3000))
	if wire, prot := r.drive(t); len(wire)+len(prot) != 0 || r.w.stats.ChainDrops.Load() != 3 {
		t.Fatalf("dropped chains: %d/%d sent, chain drops %d", len(wire), len(prot), r.w.stats.ChainDrops.Load())
	}
	r.checkFrames(t)
}

// TestZeroAllocsChain: a 64 KiB super-packet, from the RX ring to 47
// sealed segments on the TX ring and back to the pool, allocates nothing.
func TestZeroAllocsChain(t *testing.T) {
	r := newSGRig(t)
	f := outFrame(superTCP(false, 65535, 0x18, 1))
	meta := outMeta()
	allocs := testing.AllocsPerRun(50, func() {
		r.prot.ReceiveMulti(meta, f)
		_, _ = r.w.Step()
		r.wire.Transmit(0, nil)
		_, _ = r.w.Step()
	})
	if allocs != 0 {
		t.Fatalf("a super-packet costs %.1f allocations", allocs)
	}
	if r.w.stats.Segments.Load() < 50*40 {
		t.Fatalf("only %d segments made", r.w.stats.Segments.Load())
	}
	r.checkFrames(t)
}

// TestSegmentSingleFrameGSO: a TCP packet longer than the protected link's
// MTU in one frame is a small GSO packet and is segmented; one between the
// inner MTU and the link MTU is really too big and gets the ICMP error.
func TestSegmentSingleFrameGSO(t *testing.T) {
	r := newRig(t, 0, nil)
	r.w.protMTU = 1480 // as if the host's link were a little smaller than the wire
	mtu := r.sas.InnerMTU(outIdx)
	gso := superTCP(false, 1700, 0x19, 7) // FIN, PSH, ACK
	r.prot.Receive(outMeta(), outFrame(gso))
	wire, prot := r.drive(t)
	if len(wire) != 2 || len(prot) != 0 || r.w.stats.GSOFrames.Load() != 1 {
		t.Fatalf("gso frame: %d/%d sent, gso frames %d (stats %v)", len(wire), len(prot), r.w.stats.GSOFrames.Load(), statsOf(r.w))
	}
	a, b := r.open(t, wire[0]), r.open(t, wire[1])
	if len(a) != mtu || len(a)+len(b)-52 != len(gso) || a[20+13] != 0x10 || b[20+13] != 0x19 || !packettest.L4Verifies(a) || !packettest.L4Verifies(b) {
		t.Fatalf("segments of %d and %d bytes, flags %#x %#x", len(a), len(b), a[33], b[33])
	}
	tooBig := superTCP(false, 1470, 0x10, 7)
	r.prot.Receive(outMeta(), outFrame(tooBig))
	if wire, prot := r.drive(t); len(wire) != 0 || len(prot) != 1 || r.w.stats.PTBSent.Load() != 1 {
		t.Fatalf("too big: %d/%d sent, ptb %d", len(wire), len(prot), r.w.stats.PTBSent.Load())
	}
	r.checkFrames(t)
}

// TestChainHeldAndDrained: a chain cut by small RX batches is held between
// steps (FrameAccount.Held, not Balanced), completes later, and a chain
// still incomplete when the worker stops goes back to the pool.
func TestChainHeldAndDrained(t *testing.T) {
	r := newSGRig(t)
	r.w.rx = r.w.rx[:8] // 8 descriptors per batch
	ip := superTCP(false, 20000, 0x10, 1)
	r.prot.ReceiveMulti(outMeta(), outFrame(ip))
	if _, err := r.w.Step(); err != nil {
		t.Fatal(err)
	}
	if a := r.w.Frames(); a.Held != 8 || a.Balanced() {
		t.Fatalf("after one batch: %+v, want 8 held", a)
	}
	wire, _ := r.drive(t)
	if len(wire) == 0 || r.w.Frames().Held != 0 {
		t.Fatalf("chain not completed: %d sent, %+v", len(wire), r.w.Frames())
	}
	r.checkFrames(t)
	// Stop in the middle of a chain: drain returns the held frames.
	r.prot.ReceiveMulti(outMeta(), outFrame(ip))
	if _, err := r.w.Step(); err != nil {
		t.Fatal(err)
	}
	if r.w.Frames().Held == 0 {
		t.Fatal("nothing held")
	}
	r.w.drain(0)
	r.checkFrames(t)
}

// TestChainsRandom feeds mutated super-packets and single GSO frames
// (random bytes in the IP and TCP headers, random IP lengths): never a
// panic, every frame accounted for, every packet on the wire opens.
func TestChainsRandom(t *testing.T) {
	r := newSGRig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 400
	if testing.Short() {
		n = 100
	}
	for i := range n {
		v6 := rng.IntN(2) == 1
		size := 1500 + rng.IntN(60000)
		if i%4 == 0 {
			size = 1500 + rng.IntN(300) // one frame
		}
		ip := superTCP(v6, size, byte(rng.IntN(256)), rng.Uint32())
		for range 1 + rng.IntN(4) {
			ip[rng.IntN(80)] = byte(rng.IntN(256))
		}
		switch rng.IntN(6) {
		case 0:
			binary.BigEndian.PutUint16(ip[2+2*b2i(v6):], uint16(rng.IntN(70000)))
		case 1: // shorter than the headers
			binary.BigEndian.PutUint16(ip[2+2*b2i(v6):], uint16(rng.IntN(100)))
		}
		et := uint16(0x0800)
		if v6 {
			et = 0x86dd
		}
		f := ether(lanMAC, senderMAC, et, ip)
		if !r.prot.ReceiveMulti(outMeta(), f) {
			t.Fatal("deliver")
		}
		wire, _ := r.drive(t)
		for _, w := range wire {
			r.open(t, w)
		}
		r.checkFrames(t)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSegmentCappedByMSSClamp: a fixed MSS clamp also caps the segments'
// payload, less the 12 bytes of TCP options (RFC 6691).
func TestSegmentCappedByMSSClamp(t *testing.T) {
	r := newSGRig(t)
	r.w.cfg.MSSClamp = 1000
	ip := superTCP(false, 20000, 0x10, 1)
	r.prot.ReceiveMulti(outMeta(), outFrame(ip))
	wire, _ := r.drive(t)
	if want := (20000 - 52 + 987) / 988; len(wire) != want {
		t.Fatalf("%d segments, want %d", len(wire), want)
	}
	for i, f := range wire {
		if p := r.open(t, f); len(p)-52 > 988 || (i < len(wire)-1 && len(p)-52 != 988) {
			t.Fatalf("segment %d carries %d bytes", i, len(p)-52)
		}
	}
	r.checkFrames(t)
}
