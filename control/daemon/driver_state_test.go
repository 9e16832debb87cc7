package daemon

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/control/seqstate"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/worker"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// The driver with a durable sequence state, on a real card (loaded, not attached: root only) and
// a state directory of the test's own.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stateRig is one life of a gateway's driver: a card, the workers' table and the state.
type stateRig struct {
	card  *loader.Card
	sas   *worker.SATable
	state *seqstate.Store
	d     *driver
}

func newStateRig(t *testing.T, dir string, min uint64) *stateRig {
	t.Helper()
	needRoot(t)
	card, err := loader.Load(loader.Config{Policies: 64, SAs: 16, FlowCache: 1024, Logger: quiet})
	if err != nil {
		t.Fatalf("load card: %v", err)
	}
	t.Cleanup(func() { card.Close() })
	sas, err := worker.NewSATable(16, 1500)
	if err != nil {
		t.Fatal(err)
	}
	st, err := seqstate.Open(seqstate.Options{Dir: dir, MinReservation: min, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r := &stateRig{card: card, sas: sas, state: st}
	t.Cleanup(r.close)
	r.d = newDriver(card, sas, st, []string{"lan", "wan"}, func(a netip.Addr) bool { return a == gwAddr }, quiet)
	return r
}

// close ends this life as the daemon does: the state persists and lets go of the directory.
func (r *stateRig) close() {
	if r.state != nil {
		_ = r.state.Close()
		r.state = nil
	}
}

var (
	gwAddr   = netip.MustParseAddr("198.18.0.1")
	peerAddr = netip.MustParseAddr("198.18.0.2")
)

// entry is an SA at index idx: outbound (to the peer) or inbound (to this gateway), with key k.
func entry(idx uint32, spi uint32, dir ipsec.Dir, k byte, window uint32) *sadb.SAEntry {
	key := make(sadb.Key, 20)
	for i := range key {
		key[i] = k + byte(i)*7
	}
	src, dst := gwAddr, peerAddr
	if dir == ipsec.DirIn {
		src, dst = peerAddr, gwAddr
	}
	return &sadb.SAEntry{Index: idx, SA: sadb.SA{Name: "sa", SPI: spi, Proto: ipsec.ProtoESP, Dir: &dir, Src: src, Dst: dst,
		Mode: ipsec.ModeTunnel, ReplayWindow: window, AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: key, Bits: 128}}}
}

var lanCheck = ipsec.CheckList{{Selector: ipsec.Selector{Src: netip.MustParsePrefix("198.18.2.0/24"),
	Dst: netip.MustParsePrefix("198.18.1.0/24")}, Accept: true}}

func offer(e *sadb.SAEntry) *offload.SAOffload {
	o := &offload.SAOffload{Iface: "wan", Index: e.Index, SA: e}
	if *e.Dir == ipsec.DirIn {
		o.InCheck = lanCheck
	}
	return o
}

// seal encapsulates one inner packet with sa and returns the ESP packet.
func seal(t *testing.T, sa *esp.SA) ([]byte, error) {
	t.Helper()
	in := make([]byte, 48)
	in[0], in[8], in[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(in[2:], uint16(len(in)))
	copy(in[12:], []byte{198, 18, 2, 1})
	copy(in[16:], []byte{198, 18, 1, 1})
	buf := make([]byte, esp.Headroom+len(in)+esp.Tailroom)
	copy(buf[esp.Headroom:], in)
	s, e, err := sa.Encap(buf, esp.Headroom, len(in))
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[s:e]...), nil
}

func open(sa *esp.SA, pkt []byte) error {
	buf := make([]byte, esp.Headroom+len(pkt))
	copy(buf[esp.Headroom:], pkt)
	_, _, err := sa.Decap(buf, esp.Headroom, len(pkt))
	return err
}

// espOff is where the ESP header of an IPv4 packet starts (after UDP with encapsulation).
func espOff(pkt []byte) int {
	if pkt[9] == unix.IPPROTO_UDP {
		return 28
	}
	return 20
}

func espSeq(pkt []byte) uint32 { return binary.BigEndian.Uint32(pkt[espOff(pkt)+4:]) }
func espIV(pkt []byte) uint64  { return binary.BigEndian.Uint64(pkt[espOff(pkt)+8:]) }

const fsImmutableFL = 0x10 // FS_IMMUTABLE_FL, linux/fs.h

// immutable sets or clears the directory's immutable flag (chattr +i): even root can then create
// no file in it, so every state write fails as on a full or broken disk.
func immutable(t *testing.T, dir string, on bool) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("read the flags of %s (the test needs chattr support): %v", dir, err)
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		t.Fatalf("set the flags of %s: %v", dir, err)
	}
	if on {
		t.Cleanup(func() { immutable(t, dir, false) })
	}
}

// TestReservationBeforeInstall: an outbound SA whose first reservation cannot reach the disk is
// refused (seq_state, retried by the engine) and is neither in the workers' table nor in the card;
// once the disk takes it, the SA is installed with a durable ceiling.
func TestReservationBeforeInstall(t *testing.T) {
	dir := t.TempDir() + "/state"
	r := newStateRig(t, dir, 1<<10)
	immutable(t, dir, true)
	out := entry(1, 0x1001, ipsec.DirOut, 1, 64)
	err := r.d.InstallSA(offer(out))
	if reason, detail := offload.ReasonOf(err); reason != offload.ReasonSeqState || !strings.Contains(detail, "reserve") {
		t.Fatalf("install with an unwritable state: %v (reason %s)", err, reason)
	}
	if r.sas.Lookup(1) != nil {
		t.Fatal("the SA reached the workers' table without a reservation")
	}
	if _, err := r.card.GetSA(1); !errors.Is(err, loader.ErrNotFound) {
		t.Fatalf("the SA reached the card without a reservation: %v", err)
	}
	// An inbound SA needs no write before its first packet: it is installed.
	if err := r.d.InstallSA(offer(entry(2, 0x2002, ipsec.DirIn, 2, 64))); err != nil {
		t.Fatalf("inbound install: %v", err)
	}
	immutable(t, dir, false)
	if err := r.d.InstallSA(offer(out)); err != nil {
		t.Fatalf("install once the state is writable: %v", err)
	}
	sa := r.sas.Lookup(1).SA
	if c := sa.Ceiling(); c < 1<<10 || c == esp.NoCeiling {
		t.Fatalf("installed with ceiling %d, want a durable reservation of at least %d", c, 1<<10)
	}
}

// TestStopsAtCeiling: when the state cannot renew a reservation, an installed SA sends up to its
// durable ceiling and then drops (esp.ErrSeqUnreserved, counted), and never goes beyond; a write
// that succeeds again lets it go on.
func TestStopsAtCeiling(t *testing.T) {
	dir := t.TempDir() + "/state"
	const min = 1 << 10
	r := newStateRig(t, dir, min)
	if err := r.d.InstallSA(offer(entry(1, 0x1001, ipsec.DirOut, 1, 64))); err != nil {
		t.Fatal(err)
	}
	sa := r.sas.Lookup(1).SA
	ceiling := sa.Ceiling()
	immutable(t, dir, true)
	sent := uint64(0)
	for {
		if _, err := seal(t, sa); err != nil {
			if !errors.Is(err, esp.ErrSeqUnreserved) {
				t.Fatal(err)
			}
			break
		}
		sent++
		if sent%64 == 0 {
			if err := r.state.Step(time.Now()); err == nil && sa.Ceiling() > ceiling {
				t.Fatal("a renewal succeeded on an immutable directory")
			}
		}
		if sent > 4*min {
			t.Fatalf("sent %d packets past a ceiling of %d", sent, ceiling)
		}
	}
	if sa.NextSeq()-1 != ceiling || sent != ceiling {
		t.Fatalf("stopped at %d after %d packets, want exactly the ceiling %d", sa.NextSeq()-1, sent, ceiling)
	}
	if st := r.state.Stats(); st.WriteErrors == 0 || st.Blocked != 1 {
		t.Fatalf("state stats %+v: want write errors and one blocked SA", st)
	}
	immutable(t, dir, false)
	if err := r.state.Step(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := seal(t, sa); err != nil || sa.Ceiling() <= ceiling {
		t.Fatalf("after the disk recovered: %v, ceiling %d", err, sa.Ceiling())
	}
}

// TestRestartContinues: a second life of the driver on the same state continues the outbound SA
// above everything the first life may have sent, with the same IV mask (no (SPI, IV) or (SPI,
// sequence number) twice), and the inbound SA drops what the first life accepted.
func TestRestartContinues(t *testing.T) {
	dir := t.TempDir() + "/state"
	out, in := entry(1, 0x1001, ipsec.DirOut, 1, 64), entry(2, 0x2002, ipsec.DirIn, 2, 64)
	r1 := newStateRig(t, dir, 1<<10)
	for _, e := range []*sadb.SAEntry{out, in} {
		if err := r1.d.InstallSA(offer(e)); err != nil {
			t.Fatal(err)
		}
	}
	// The peer's outbound SA: what arrives on our inbound one.
	peerParams, err := in.ESPParams()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := esp.New(peerParams)
	if err != nil {
		t.Fatal(err)
	}
	seenSeq, seenIV := map[uint32]bool{}, map[uint64]bool{}
	var first, old []byte
	for i := range 100 {
		pkt, err := seal(t, r1.sas.Lookup(1).SA)
		if err != nil {
			t.Fatal(err)
		}
		seenSeq[espSeq(pkt)], seenIV[espIV(pkt)] = true, true
		p2, err := seal(t, peer)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = p2
		}
		old = p2
		if err := open(r1.sas.Lookup(2).SA, p2); err != nil {
			t.Fatal(err)
		}
	}
	mask := r1.sas.Lookup(1).SA.IVMask()
	ceiling := r1.sas.Lookup(1).SA.Ceiling()
	r1.close() // the daemon's Close: inbound marks persisted

	r2 := newStateRig(t, dir, 1<<10)
	for _, e := range []*sadb.SAEntry{out, in} {
		if err := r2.d.InstallSA(offer(e)); err != nil {
			t.Fatal(err)
		}
	}
	sa := r2.sas.Lookup(1).SA
	if sa.IVMask() != mask || sa.NextSeq() <= ceiling {
		t.Fatalf("second life: mask %#x (first %#x), next seq %d (first life's ceiling %d)", sa.IVMask(), mask, sa.NextSeq(), ceiling)
	}
	for range 100 {
		pkt, err := seal(t, sa)
		if err != nil {
			t.Fatal(err)
		}
		if seenSeq[espSeq(pkt)] || seenIV[espIV(pkt)] {
			t.Fatalf("second life repeats seq %d or IV %#x", espSeq(pkt), espIV(pkt))
		}
	}
	for _, p := range [][]byte{first, old} {
		if err := open(r2.sas.Lookup(2).SA, p); !errors.Is(err, esp.ErrReplay) {
			t.Fatalf("a packet of the first life, replayed to the second: %v", err)
		}
	}
	next, err := seal(t, peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := open(r2.sas.Lookup(2).SA, next); err != nil {
		t.Fatalf("the peer's next packet: %v", err)
	}
}

// TestUpdateInPlace: new settings of a held SA continue its engine state (counter, IV mask,
// replay window), reach the workers' table in one swap and the card's entry (encapsulation ports
// for NAT-T rebinding) in place, keeping the card's counters; a change the SA cannot take is
// refused with the field named, and CheckUpdate says so beforehand.
func TestUpdateInPlace(t *testing.T) {
	r := newStateRig(t, t.TempDir()+"/state", 1<<10)
	out, in := entry(1, 0x1001, ipsec.DirOut, 1, 64), entry(2, 0x2002, ipsec.DirIn, 2, 128)
	out.Encap = &sadb.Encap{Type: "espinudp", Sport: 4500, Dport: 4500}
	in.Encap = &sadb.Encap{Type: "espinudp", Sport: 4500, Dport: 4500}
	for _, e := range []*sadb.SAEntry{out, in} {
		if err := r.d.InstallSA(offer(e)); err != nil {
			t.Fatal(err)
		}
	}
	before := r.sas.Lookup(1).SA
	for range 10 {
		if _, err := seal(t, before); err != nil {
			t.Fatal(err)
		}
	}
	r.card.WorkerStats().Add(1, 10, 480) // as the workers count
	peerParams, _ := in.ESPParams()
	peer, _ := esp.New(peerParams)
	var replayed []byte
	for range 5 {
		p, _ := seal(t, peer)
		replayed = p
		if err := open(r.sas.Lookup(2).SA, p); err != nil {
			t.Fatal(err)
		}
	}

	// NAT-T rebinding: the peer's port moved (outbound dport, inbound sport), and a new TTL.
	up := *out
	up.Encap = &sadb.Encap{Type: "espinudp", Sport: 4500, Dport: 4501}
	up.TTL = 9
	if err := r.d.CheckUpdate(1, &up); err != nil {
		t.Fatalf("CheckUpdate: %v", err)
	}
	if err := r.d.InstallSA(offer(&up)); err != nil {
		t.Fatal(err)
	}
	after := r.sas.Lookup(1).SA
	if after == before || after.IVMask() != before.IVMask() || after.NextSeq() != 11 {
		t.Fatalf("update: same SA %v, mask %#x→%#x, next seq %d (want 11)", after == before, before.IVMask(), after.IVMask(), after.NextSeq())
	}
	pkt, err := seal(t, after)
	if err != nil {
		t.Fatal(err)
	}
	if dport := binary.BigEndian.Uint16(pkt[22:]); dport != 4501 || pkt[8] != 9 {
		t.Fatalf("after the update: UDP dport %d, TTL %d", dport, pkt[8])
	}
	if c, err := r.card.GetSA(1); err != nil || c.EncapDstPort != 4501 || c.EncapSrcPort != 4500 {
		t.Fatalf("card after the update: %+v %v", c, err)
	}
	if s := r.card.WorkerStats().Read(1); s.Packets != 10 {
		t.Fatalf("the card's counters of the SA: %d packets, want the 10 before the update", s.Packets)
	}
	// The replaced SA stays usable for a worker that loaded it just before, and shares the counter.
	if pkt, err := seal(t, before); err != nil || espSeq(pkt) != 12 {
		t.Fatalf("the replaced SA right after the update: %v, seq %d", err, espSeq(pkt))
	}

	upIn := *in
	upIn.Encap = &sadb.Encap{Type: "espinudp", Sport: 4501, Dport: 4500}
	upIn.ReplayWindow = 192 // within the ring of a 128 window
	if err := r.d.InstallSA(offer(&upIn)); err != nil {
		t.Fatal(err)
	}
	if c, err := r.card.GetSA(2); err != nil || c.EncapSrcPort != 4501 || c.Dir != ipsec.DirIn {
		t.Fatalf("card after the inbound update: %+v %v", c, err)
	}
	if err := open(r.sas.Lookup(2).SA, replayed); !errors.Is(err, esp.ErrReplay) {
		t.Fatalf("replay after the update: %v", err)
	}

	// Beyond what the running SA can take: refused, the SA left as it was.
	bad := upIn
	bad.ReplayWindow = 1024
	if err := r.d.CheckUpdate(2, &bad); err == nil || !strings.Contains(err.Error(), "replay_window") {
		t.Fatalf("CheckUpdate of a window the ring cannot hold: %v", err)
	}
	keep := r.sas.Lookup(2)
	if r, _ := offload.ReasonOf(r.d.InstallSA(offer(&bad))); r != offload.ReasonUnsupported {
		t.Fatalf("update to a window the ring cannot hold: reason %s", r)
	}
	if r.sas.Lookup(2) != keep {
		t.Fatal("a refused update changed the workers' entry")
	}
}

// TestRetiredKeyRefused: a key the state retired is refused by Admit and by InstallSA, in either
// direction and under another SPI.
func TestRetiredKeyRefused(t *testing.T) {
	r := newStateRig(t, t.TempDir()+"/state", 1<<10)
	out := entry(1, 0x1001, ipsec.DirOut, 1, 64)
	if err := r.d.Admit(&out.SA); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Retire(&out.SA, "hard-expired-bytes"); err != nil {
		t.Fatal(err)
	}
	again := entry(3, 0x3003, ipsec.DirIn, 1, 64) // the same key, another SPI, inbound
	for _, e := range []*sadb.SAEntry{out, again} {
		if err := r.d.Admit(&e.SA); !errors.Is(err, seqstate.ErrRetired) || !strings.Contains(err.Error(), "hard-expired-bytes") {
			t.Fatalf("Admit of a retired key: %v", err)
		}
		if reason, _ := offload.ReasonOf(r.d.InstallSA(offer(e))); reason != offload.ReasonRetired {
			t.Fatalf("InstallSA of a retired key: reason %s", reason)
		}
	}
}
