//go:build linux

package xsk_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/loader/xsk"
	"github.com/xdpsec/xdpsec/loader/xsk/xsktest"
)

// frameLedger tracks which frames a test has handed to the kernel, so that
// it can check at the end that every frame is back on a fill ring or free.
type frameLedger struct {
	t      *testing.T
	total  int
	inFill map[uint64]bool
	inTX   map[uint64]bool
}

func newLedger(t *testing.T, total int) *frameLedger {
	return &frameLedger{t: t, total: total, inFill: map[uint64]bool{}, inTX: map[uint64]bool{}}
}

func (l *frameLedger) fill(s *xsk.Socket, pool *xsk.FramePool, max int) {
	buf := make([]uint64, min(max, s.Fill.Free()))
	n := pool.GetN(buf)
	p := s.Fill.Produce(buf[:n])
	for _, a := range buf[:p] {
		l.inFill[a] = true
	}
	for _, a := range buf[p:n] {
		pool.Put(a)
	}
}

func (l *frameLedger) received(u *xsk.UMEM, d xsk.Desc) {
	base := u.FrameBase(d.Addr)
	if !l.inFill[base] {
		l.t.Fatalf("received into frame %#x that was not on a fill ring", base)
	}
	delete(l.inFill, base)
}

func (l *frameLedger) check(pool *xsk.FramePool) {
	l.t.Helper()
	if len(l.inTX) != 0 {
		l.t.Fatalf("%d frames still in flight on TX", len(l.inTX))
	}
	all := slices.Clone(pool.Free())
	for a := range l.inFill {
		all = append(all, a)
	}
	slices.Sort(all)
	if len(all) != l.total || len(slices.Compact(all)) != l.total {
		l.t.Fatalf("frames: %d free + %d on fill rings, want %d, each once", pool.Len(), len(l.inFill), l.total)
	}
}

// reapCompletions moves completed TX frames back to the pool until none are
// in flight or the deadline passes, kicking the kernel as it asks.
func (l *frameLedger) reapCompletions(s *xsk.Socket, pool *xsk.FramePool, deadline time.Time) {
	comp := make([]uint64, 64)
	for len(l.inTX) > 0 && time.Now().Before(deadline) {
		if _, err := s.Kick(); err != nil {
			l.t.Fatal(err)
		}
		n := s.Completion.Consume(comp)
		for _, a := range comp[:n] {
			base := s.UMEM().FrameBase(a)
			if !l.inTX[base] {
				l.t.Fatalf("completion for frame %#x not in flight", base)
			}
			delete(l.inTX, base)
			pool.Put(a)
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func openSocket(tb testing.TB, ns *xsktest.NS, u *xsk.UMEM, cfg xsk.SocketConfig) *xsk.Socket {
	tb.Helper()
	var s *xsk.Socket
	if err := ns.Do(func() (err error) { s, err = u.Open(cfg); return err }); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// newUMEM creates a UMEM of frames frames, closed when the test ends, and
// returns it with its one frame pool.
func newUMEM(tb testing.TB, frames uint32) (*xsk.UMEM, *xsk.FramePool) {
	tb.Helper()
	u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: frames})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { u.Close() })
	pools, err := u.Pools(1)
	if err != nil {
		tb.Fatal(err)
	}
	return u, pools[0]
}

func register(t *testing.T, r *xsktest.Redirect, s *xsk.Socket) {
	t.Helper()
	if err := r.Map.Put(uint32(s.QueueID()), uint32(s.FD())); err != nil {
		t.Fatalf("put socket in xskmap: %v", err)
	}
}

// TestVethRXTX binds a socket to one end of a veth pair, receives frames the
// peer sends (with the redirect program's metadata right before each), and
// transmits them back to the peer.
func TestVethRXTX(t *testing.T) {
	xsktest.RequireRoot(t) // here, not only in the subtests: a parent of skipped subtests reports PASS
	for _, c := range []struct {
		name string
		cfg  xsk.SocketConfig
	}{
		{"need-wakeup", xsk.SocketConfig{}},
		{"no-need-wakeup+busy-poll", xsk.SocketConfig{NoNeedWakeup: true, BusyPoll: true}},
	} {
		t.Run(c.name, func(t *testing.T) { testVethRXTX(t, c.cfg) })
	}
}

func testVethRXTX(t *testing.T, cfg xsk.SocketConfig) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "xsk")
	v := xsktest.AddVeth(t, ns, "xs-a", ns, "xs-b")
	const magic = 0x5eca1fed
	meta := make([]byte, 8)
	binary.NativeEndian.PutUint32(meta, magic)
	binary.NativeEndian.PutUint32(meta[4:], ^uint32(magic))
	redir := xsktest.AttachRedirect(t, ns, v.Index, meta)

	u, pool := newUMEM(t, 256)
	cfg.Ifindex = v.Index
	cfg.FillSize, cfg.CompletionSize, cfg.RXSize, cfg.TXSize = 64, 64, 64, 64
	s := openSocket(t, ns, u, cfg)
	t.Logf("bound in %v mode", s.Mode())
	if s.Mode() != xsk.ModeCopy {
		t.Errorf("veth gave %v, expected copy mode", s.Mode())
	}
	register(t, redir, s)
	led := newLedger(t, 256)
	led.fill(s, pool, 64)

	peer := xsktest.OpenPacketPort(t, ns, v.PeerIdx)
	const count = 40
	for i := range count {
		if err := peer.Send(xsktest.UDPFrame(100+i, v.MAC, v.PeerMAC, uint32(i), 0x42)); err != nil {
			t.Fatal(err)
		}
	}

	var got []xsk.Desc
	descs := make([]xsk.Desc, 16)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < count && time.Now().Before(deadline) {
		n := s.RX.Consume(descs)
		for _, d := range descs[:n] {
			if xsktest.IsTestUDP(u.Bytes(d.Addr, d.Len)) {
				got = append(got, d)
			} else {
				led.received(u, d)
				pool.Put(d.Addr)
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if len(got) != count {
		t.Fatalf("received %d of %d frames", len(got), count)
	}
	for i, d := range got {
		led.received(u, d)
		if off := d.Addr - u.FrameBase(d.Addr); off != uint64(u.RXOffset()) {
			t.Errorf("packet at frame offset %d, want %d", off, u.RXOffset())
		}
		pkt := u.Bytes(d.Addr, d.Len)
		want := xsktest.UDPFrame(100+i, v.MAC, v.PeerMAC, uint32(i), 0x42)
		if !bytes.Equal(pkt, want) {
			t.Fatalf("frame %d differs:\n got %x\nwant %x", i, pkt, want)
		}
		meta := u.Frame(d.Addr)[u.RXOffset()-8 : u.RXOffset()]
		if binary.NativeEndian.Uint32(meta) != magic || binary.NativeEndian.Uint32(meta[4:]) != ^uint32(magic) {
			t.Fatalf("metadata before the packet is %x, want the program's magic", meta)
		}
		// Send it back with swapped MACs.
		copy(pkt[0:6], v.PeerMAC[:])
		copy(pkt[6:12], v.MAC[:])
	}
	for len(got) > 0 {
		n := s.TX.Produce(got)
		for _, d := range got[:n] {
			led.inTX[u.FrameBase(d.Addr)] = true
		}
		got = got[n:]
		if _, err := s.Kick(); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	for i := range count {
		n, err := peer.RecvUDP(buf, 5*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("peer received %d of %d frames (err %v)", i, count, err)
		}
		want := xsktest.UDPFrame(100+i, v.PeerMAC, v.MAC, uint32(i), 0x42)
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("peer frame %d differs:\n got %x\nwant %x", i, buf[:n], want)
		}
	}
	led.reapCompletions(s, pool, time.Now().Add(5*time.Second))
	led.check(pool)
	st, err := s.Statistics()
	if err != nil {
		t.Fatal(err)
	}
	if st.RXDropped != 0 || st.RXInvalidDescs != 0 || st.TXInvalidDescs != 0 {
		t.Errorf("kernel counted drops: %+v", st)
	}
}

// TestVethSharedUMEM forwards frames between two veth pairs through one
// UMEM: received on socket 1, transmitted without a copy on socket 2, which
// shares the UMEM and has fill and completion rings of its own.
func TestVethSharedUMEM(t *testing.T) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "xskshared")
	v1 := xsktest.AddVeth(t, ns, "xs-a1", ns, "xs-b1")
	v2 := xsktest.AddVeth(t, ns, "xs-a2", ns, "xs-b2")
	r1 := xsktest.AttachRedirect(t, ns, v1.Index, nil)
	r2 := xsktest.AttachRedirect(t, ns, v2.Index, nil)

	u, pool := newUMEM(t, 512)
	cfg := xsk.SocketConfig{FillSize: 128, CompletionSize: 128, RXSize: 128, TXSize: 128}
	cfg.Ifindex = v1.Index
	s1 := openSocket(t, ns, u, cfg)
	cfg.Ifindex = v2.Index
	s2 := openSocket(t, ns, u, cfg)
	if s1.Mode() != s2.Mode() {
		t.Fatalf("modes differ: %v and %v", s1.Mode(), s2.Mode())
	}
	register(t, r1, s1)
	register(t, r2, s2)
	led := newLedger(t, 512)
	led.fill(s1, pool, 128)
	led.fill(s2, pool, 128)

	in := xsktest.OpenPacketPort(t, ns, v1.PeerIdx)
	out := xsktest.OpenPacketPort(t, ns, v2.PeerIdx)
	const count = 300 // more than a fill ring holds: frames must come back and be reused
	descs := make([]xsk.Desc, 64)
	comp := make([]uint64, 64)
	forwarded, sent := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for forwarded < count && time.Now().Before(deadline) {
		for sent < count && sent-forwarded < 64 {
			if err := in.Send(xsktest.UDPFrame(1514, v1.MAC, v1.PeerMAC, uint32(sent), byte(sent))); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		n := s1.RX.Consume(descs)
		kept := descs[:0]
		for _, d := range descs[:n] {
			led.received(u, d)
			if !xsktest.IsTestUDP(u.Bytes(d.Addr, d.Len)) {
				pool.Put(d.Addr)
				continue
			}
			kept = append(kept, d)
		}
		n = len(kept)
		for i, d := range kept {
			pkt := u.Bytes(d.Addr, d.Len)
			copy(pkt[0:6], v2.PeerMAC[:])
			copy(pkt[6:12], v2.MAC[:])
			led.inTX[u.FrameBase(descs[i].Addr)] = true
		}
		for off := 0; off < n; {
			off += s2.TX.Produce(descs[off:n])
			if _, err := s2.Kick(); err != nil {
				t.Fatal(err)
			}
		}
		forwarded += n
		nc := s2.Completion.Consume(comp)
		for _, a := range comp[:nc] {
			delete(led.inTX, u.FrameBase(a))
			pool.Put(a)
		}
		led.fill(s1, pool, 128)
		if n == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if forwarded != count {
		t.Fatalf("forwarded %d of %d", forwarded, count)
	}
	buf := make([]byte, 2048)
	for i := range count {
		n, err := out.RecvUDP(buf, 5*time.Second)
		if err != nil || n == 0 {
			t.Fatalf("far side received %d of %d (err %v)", i, count, err)
		}
		if n != 1514 || binary.BigEndian.Uint32(buf[42:]) != uint32(i) || buf[100] != byte(i) {
			t.Fatalf("far side frame %d: len %d seq %d", i, n, binary.BigEndian.Uint32(buf[42:]))
		}
	}
	led.reapCompletions(s2, pool, time.Now().Add(5*time.Second))
	led.check(pool)
}

// TestStopperWakesPoll checks that a poller blocked on idle sockets returns
// when its stopper fires from another goroutine.
func TestStopperWakesPoll(t *testing.T) {
	stop, err := xsk.NewStopper()
	if err != nil {
		t.Fatal(err)
	}
	defer stop.Close()
	p := xsk.NewPoller(stop)
	if stopped, err := p.Wait(0); err != nil || stopped {
		t.Fatalf("Wait before Stop: stopped=%v err=%v", stopped, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		stop.Stop()
	}()
	start := time.Now()
	stopped, err := p.Wait(5000)
	if err != nil || !stopped {
		t.Fatalf("Wait: stopped=%v err=%v", stopped, err)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("Wait did not return on Stop")
	}
	// Stop stays signalled.
	if stopped, _ := p.Wait(0); !stopped {
		t.Fatal("stop did not stay signalled")
	}
}

// TestVethModes: veth has no zero-copy, so asking for it fails clearly,
// ModeAuto falls back to copy, and a socket sharing the UMEM cannot ask for
// another mode than the first got.
func TestVethModes(t *testing.T) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "xskmode")
	v1 := xsktest.AddVeth(t, ns, "xs-a1", ns, "xs-b1")
	v2 := xsktest.AddVeth(t, ns, "xs-a2", ns, "xs-b2")
	xsktest.AttachRedirect(t, ns, v1.Index, nil)
	xsktest.AttachRedirect(t, ns, v2.Index, nil)
	u, _ := newUMEM(t, 64)
	small := xsk.SocketConfig{FillSize: 16, CompletionSize: 16, RXSize: 16, TXSize: 16}
	zc := small
	zc.Ifindex, zc.Mode = v1.Index, xsk.ModeZeroCopy
	if err := ns.Do(func() error {
		s, err := u.Open(zc)
		if err == nil {
			s.Close()
		}
		return err
	}); err == nil {
		t.Fatal("zero-copy on veth succeeded")
	} else {
		t.Logf("zero-copy refused as expected: %v", err)
	}
	auto := small
	auto.Ifindex = v1.Index
	s1 := openSocket(t, ns, u, auto)
	if s1.Mode() != xsk.ModeCopy || u.ZeroCopy() {
		t.Fatalf("auto mode gave %v", s1.Mode())
	}
	zc.Ifindex = v2.Index
	if err := ns.Do(func() error { _, err := u.Open(zc); return err }); err == nil {
		t.Fatal("shared socket asking for zero-copy on a copy-mode umem succeeded")
	}
	big := small
	big.Ifindex, big.FillSize = v2.Index, 64
	if err := ns.Do(func() error { _, err := u.Open(big); return err }); err == nil {
		t.Fatal("fill ring of all the frames accepted")
	}
}

// TestVethSG binds a multi-buffer socket (XDP_USE_SG) behind a frags-aware
// redirect program and receives 9,000-byte frames: each arrives as a chain
// of descriptors, all but the last flagged PktContd, the metadata before
// the first, the bytes in order; a frame that fits one frame is a chain of
// one. Every frame comes back to the ledger.
func TestVethSG(t *testing.T) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "xsksg")
	v := xsktest.AddVeth(t, ns, "xs-a", ns, "xs-b")
	ns.SetMTU(t, "xs-a", 9000)
	ns.SetMTU(t, "xs-b", 9000)
	meta := make([]byte, 8)
	binary.NativeEndian.PutUint32(meta, 0x5eca1fed)
	redir := xsktest.AttachRedirectFrags(t, ns, v.Index, meta)

	const frames = 256
	u, pool := newUMEM(t, frames)
	s := openSocket(t, ns, u, xsk.SocketConfig{Ifindex: v.Index, FillSize: 128, CompletionSize: 64, RXSize: 128, TXSize: 64, SG: true})
	if !s.SG() {
		t.Fatal("socket does not report SG")
	}
	register(t, redir, s)
	led := newLedger(t, frames)
	led.fill(s, pool, 128)

	peer := xsktest.OpenPacketPort(t, ns, v.PeerIdx)
	sizes := []int{8958, 1000, 4000}
	for i, n := range sizes {
		if err := peer.Send(xsktest.UDPFrame(n, v.MAC, v.PeerMAC, uint32(i), byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	room := int(u.FrameSize() - u.RXOffset())
	descs := make([]xsk.Desc, 16)
	var chain []byte
	var links int
	got := 0
	deadline := time.Now().Add(5 * time.Second)
	for got < len(sizes) && time.Now().Before(deadline) {
		n := s.RX.Consume(descs)
		if n == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		for _, d := range descs[:n] {
			led.received(u, d)
			if off := d.Addr - u.FrameBase(d.Addr); off != uint64(u.RXOffset()) {
				t.Errorf("descriptor at frame offset %d, want %d", off, u.RXOffset())
			}
			if links == 0 && binary.NativeEndian.Uint32(u.Frame(d.Addr)[u.RXOffset()-8:]) != 0x5eca1fed {
				t.Error("no metadata before a chain's first descriptor")
			}
			if d.Options&xsk.PktContd != 0 && int(d.Len) != room {
				t.Errorf("continued descriptor of %d bytes, want a full frame of %d", d.Len, room)
			}
			chain = append(chain, u.Bytes(d.Addr, d.Len)...)
			links++
			pool.Put(d.Addr)
			if d.Options&xsk.PktContd != 0 {
				continue
			}
			if !xsktest.IsTestUDP(chain) {
				chain, links = chain[:0], 0
				continue
			}
			want := xsktest.UDPFrame(sizes[got], v.MAC, v.PeerMAC, uint32(got), byte(got+1))
			if !bytes.Equal(chain, want) {
				t.Fatalf("packet %d (%d bytes) differs after reassembly from %d descriptors", got, len(want), links)
			}
			if wantLinks := (len(want) + room - 1) / room; links != wantLinks {
				t.Errorf("packet %d of %d bytes in %d descriptors, want %d", got, len(want), links, wantLinks)
			}
			chain, links = chain[:0], 0
			got++
		}
	}
	if got != len(sizes) {
		t.Fatalf("received %d of %d packets", got, len(sizes))
	}
	led.check(pool)
	if st, err := s.Statistics(); err != nil || st.RXDropped != 0 || st.RXInvalidDescs != 0 {
		t.Errorf("kernel counters %+v (err %v)", st, err)
	}
}

// TestVethSharedSG: SG is the UMEM's first socket's choice; a socket sharing
// the UMEM must ask for the same, and then reports it.
func TestVethSharedSG(t *testing.T) {
	xsktest.RequireRoot(t)
	ns := xsktest.NewNS(t, "xsksgsh")
	v1 := xsktest.AddVeth(t, ns, "xs-a1", ns, "xs-b1")
	v2 := xsktest.AddVeth(t, ns, "xs-a2", ns, "xs-b2")
	u, _ := newUMEM(t, 256)
	cfg := xsk.SocketConfig{Ifindex: v1.Index, FillSize: 32, CompletionSize: 32, RXSize: 32, TXSize: 32, SG: true}
	s1 := openSocket(t, ns, u, cfg)
	cfg.Ifindex, cfg.SG = v2.Index, false
	if err := ns.Do(func() error {
		s, err := u.Open(cfg)
		if err == nil {
			s.Close()
		}
		return err
	}); err == nil {
		t.Fatal("a socket without SG shared an SG umem")
	}
	cfg.SG = true
	s2 := openSocket(t, ns, u, cfg)
	if !s1.SG() || !s2.SG() {
		t.Fatalf("SG: first %v, shared %v", s1.SG(), s2.SG())
	}
	// The kernel agrees: the shared socket receives a 9000-byte frame as a chain.
	ns.SetMTU(t, "xs-a2", 9000)
	ns.SetMTU(t, "xs-b2", 9000)
	register(t, xsktest.AttachRedirectFrags(t, ns, v2.Index, nil), s2)
	pools, _ := u.Pools(1)
	led := newLedger(t, 256)
	led.fill(s2, pools[0], 32)
	peer := xsktest.OpenPacketPort(t, ns, v2.PeerIdx)
	want := xsktest.UDPFrame(8958, v2.MAC, v2.PeerMAC, 1, 9)
	if err := peer.Send(want); err != nil {
		t.Fatal(err)
	}
	var got []byte
	descs := make([]xsk.Desc, 8)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n := s2.RX.Consume(descs)
		for _, d := range descs[:n] {
			led.received(u, d)
			got = append(got, u.Bytes(d.Addr, d.Len)...)
			pools[0].Put(d.Addr)
			if d.Options&xsk.PktContd == 0 {
				if xsktest.IsTestUDP(got) {
					if !bytes.Equal(got, want) {
						t.Fatal("chain differs from the frame sent")
					}
					led.check(pools[0])
					return
				}
				got = got[:0]
			}
		}
		if n == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatal("the shared SG socket received no chain")
}
