//go:build linux

package xsk

import (
	"bytes"
	"slices"
	"testing"
)

func newTestUMEM(t *testing.T, frames uint32) *UMEM {
	t.Helper()
	u, err := NewUMEM(UMEMConfig{FrameCount: frames, FrameSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Error(err)
		}
	})
	return u
}

func TestNewUMEMRejects(t *testing.T) {
	for _, cfg := range []UMEMConfig{
		{FrameCount: 8, FrameSize: 3000},
		{FrameCount: 8, FrameSize: 1024},
		{FrameCount: 8, FrameSize: 2048, Headroom: 2000},
	} {
		if u, err := NewUMEM(cfg); err == nil {
			u.Close()
			t.Errorf("NewUMEM(%+v) succeeded", cfg)
		}
	}
}

func TestPoolsDisjoint(t *testing.T) {
	u := newTestUMEM(t, 64)
	pools, err := u.Pools(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, p := range pools {
		if p.Len() != 21 || p.Size() != 21 {
			t.Fatalf("pool has %d/%d frames, want 21", p.Len(), p.Size())
		}
		for _, a := range p.Free() {
			if a%2048 != 0 || a >= 64*2048 || seen[a] {
				t.Fatalf("bad or duplicate frame %#x", a)
			}
			seen[a] = true
		}
	}
	p := pools[0]
	a, _ := p.Get()
	if !p.Put(a + 300) { // an address inside the frame names the frame
		t.Fatal("put refused")
	}
	if got, _ := p.Get(); got != a {
		t.Fatalf("put(a+300) then get = %#x, want %#x", got, a)
	}
	p.Put(a)
	if p.Put(a) {
		t.Fatal("putting a frame into a full pool succeeded")
	}
	if _, err := u.Pools(0); err == nil {
		t.Fatal("Pools(0) succeeded")
	}
}

// TestMemRings runs many laps of every ring through the in-memory kernel:
// fill → receive → RX → TX → completion → pool, checking contents, ring
// wrap-around, full rings, and that every frame is accounted for at the end.
func TestMemRings(t *testing.T) {
	u := newTestUMEM(t, 64)
	pools, _ := u.Pools(1)
	pool := pools[0]
	s, k, err := u.NewMemSocket(SocketConfig{FillSize: 16, CompletionSize: 16, RXSize: 8, TXSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	batch := make([]uint64, 32)
	n := pool.GetN(batch)
	got := s.Fill.Produce(batch[:n])
	if got != 16 {
		t.Fatalf("fill took %d of %d, want the ring size 16", got, n)
	}
	for _, a := range batch[got:n] {
		pool.Put(a)
	}
	if s.Fill.Free() != 0 {
		t.Fatalf("full fill ring reports %d free", s.Fill.Free())
	}

	descs := make([]Desc, 8)
	var sent, received, transmitted int
	meta := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for lap := range 50 {
		// The kernel receives until the RX ring (8) is full.
		for k.Receive(meta, []byte{byte(lap), byte(sent), 0xaa}) {
			sent++
		}
		nrx := s.RX.Consume(descs)
		if nrx != 8 {
			t.Fatalf("lap %d: consumed %d rx descriptors, want 8", lap, nrx)
		}
		for i, d := range descs[:nrx] {
			if d.Addr-u.FrameBase(d.Addr) != uint64(u.RXOffset()) {
				t.Fatalf("rx addr %#x not at the rx offset", d.Addr)
			}
			pkt := u.Bytes(d.Addr, d.Len)
			want := []byte{byte(lap), byte(received + i), 0xaa}
			if !bytes.Equal(pkt, want) {
				t.Fatalf("lap %d: packet %x, want %x", lap, pkt, want)
			}
			if m := u.Frame(d.Addr)[u.RXOffset()-8 : u.RXOffset()]; !bytes.Equal(m, meta) {
				t.Fatalf("meta %x, want %x", m, meta)
			}
			// Grow the packet into the headroom, as encapsulation does.
			descs[i].Addr -= 4
			descs[i].Len += 4
		}
		received += nrx
		if ntx := s.TX.Produce(descs[:nrx]); ntx != nrx {
			t.Fatalf("tx took %d of %d", ntx, nrx)
		}
		transmitted += k.Transmit(0, func(d Desc, pkt []byte) {
			if len(pkt) != 7 || pkt[4] != byte(lap) {
				t.Fatalf("transmitted %x", pkt)
			}
		})
		// Completions come back with the packet's offset; the pool masks it.
		comp := make([]uint64, 16)
		nc := s.Completion.Consume(comp)
		for _, a := range comp[:nc] {
			if !pool.Put(a) {
				t.Fatal("pool overflow")
			}
		}
		// Refill.
		n := pool.GetN(batch[:s.Fill.Free()])
		if p := s.Fill.Produce(batch[:n]); p != n {
			t.Fatalf("refill took %d of %d", p, n)
		}
	}
	if received != sent || transmitted != received || received != 400 {
		t.Fatalf("sent %d received %d transmitted %d", sent, received, transmitted)
	}
	// Accounting: every frame is on the fill ring or free, each once.
	all := append(slices.Clone(pool.Free()), k.FillAddrs()...)
	slices.Sort(all)
	if len(all) != 64 || len(slices.Compact(all)) != 64 {
		t.Fatalf("frames accounted for: %d (unique %d), want 64", len(all), len(slices.Compact(all)))
	}
}

func TestMemKick(t *testing.T) {
	u := newTestUMEM(t, 16)
	s, k, err := u.NewMemSocket(SocketConfig{FillSize: 4, CompletionSize: 4, RXSize: 4, TXSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if did, _ := s.Kick(); did || k.Kicks != 0 {
		t.Fatal("kicked without need-wakeup")
	}
	k.SetNeedWakeup(true, true)
	if did, err := s.Kick(); !did || err != nil || k.Kicks != 1 {
		t.Fatalf("kick with need-wakeup: did=%v err=%v kicks=%d", did, err, k.Kicks)
	}
	if did, _ := s.WakeRX(); !did {
		t.Fatal("no rx wakeup with the fill flag set")
	}
}

func TestKickWithoutNeedWakeup(t *testing.T) {
	u := newTestUMEM(t, 16)
	s, k, err := u.NewMemSocket(SocketConfig{FillSize: 4, CompletionSize: 4, RXSize: 4, TXSize: 4, NoNeedWakeup: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The kernel never sets the flag for such a socket: every Kick must call.
	if did, err := s.Kick(); !did || err != nil || k.Kicks != 1 {
		t.Fatalf("kick without need-wakeup: did=%v err=%v kicks=%d", did, err, k.Kicks)
	}
}

// TestMemReceiveMulti checks the double's multi-buffer delivery: full
// frames flagged PktContd, the last one not, the bytes in order, and all or
// nothing when the fill ring or the RX ring is short.
func TestMemReceiveMulti(t *testing.T) {
	u := newTestUMEM(t, 64)
	pools, _ := u.Pools(1)
	pool := pools[0]
	s, k, err := u.NewMemSocket(SocketConfig{FillSize: 8, CompletionSize: 8, RXSize: 8, TXSize: 8, SG: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.SG() {
		t.Fatal("mem socket does not report SG")
	}
	addrs := make([]uint64, 4)
	pool.GetN(addrs)
	s.Fill.Produce(addrs)
	room := int(u.FrameSize() - u.RXOffset())
	pkt := make([]byte, 3*room+5)
	for i := range pkt {
		pkt[i] = byte(i * 7)
	}
	if k.ReceiveMulti(nil, make([]byte, 4*room+1)) {
		t.Fatal("a 5-frame packet was delivered with 4 frames on the fill ring")
	}
	if k.FillPending() != 4 {
		t.Fatalf("a refused delivery took frames: %d left on the fill ring", k.FillPending())
	}
	if !k.ReceiveMulti([]byte{1, 2, 3, 4}, pkt) {
		t.Fatal("4-frame packet refused")
	}
	descs := make([]Desc, 8)
	n := s.RX.Consume(descs)
	if n != 4 {
		t.Fatalf("%d descriptors, want 4", n)
	}
	var got []byte
	for i, d := range descs[:n] {
		if contd := d.Options&PktContd != 0; contd != (i < 3) {
			t.Errorf("descriptor %d: PktContd %v", i, contd)
		}
		got = append(got, u.Bytes(d.Addr, d.Len)...)
		pool.Put(d.Addr)
	}
	if !bytes.Equal(got, pkt) {
		t.Fatal("chain bytes differ from the packet")
	}
	if m := u.Frame(descs[0].Addr)[u.RXOffset()-4 : u.RXOffset()]; !bytes.Equal(m, []byte{1, 2, 3, 4}) {
		t.Errorf("metadata %x", m)
	}
	if pool.Len() != pool.Size() {
		t.Errorf("pool holds %d of %d frames", pool.Len(), pool.Size())
	}
}
