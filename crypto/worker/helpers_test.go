//go:build linux

package worker

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

var (
	wireIf, protIf = 7, 3
	gwMAC          = [6]byte{0x02, 0, 0, 0, 0, 0x01} // our wire-side MAC
	peerGwMAC      = [6]byte{0x02, 0, 0, 0, 0, 0x02} // next hop on the wire
	hostMAC        = [6]byte{0x02, 0, 0, 0, 0, 0x03} // inner destination on the protected side
	lanMAC         = [6]byte{0x02, 0, 0, 0, 0, 0x04} // our protected-side MAC
	senderMAC      = [6]byte{0x02, 0, 0, 0, 0, 0x05} // a host behind us sending outbound traffic

	outerSrc = netip.MustParseAddr("198.18.0.1")
	outerDst = netip.MustParseAddr("198.19.0.1")
	innerSrc = netip.MustParseAddr("198.18.1.10")
	innerDst = netip.MustParseAddr("198.18.2.20")
	gcmKey   = []byte("0123456789abcdefSALT") // AES-128 key ‖ salt
)

// staticResolver resolves everything inside one prefix to hostMAC.
type staticResolver struct {
	prefix netip.Prefix
	calls  int
}

func (r *staticResolver) NextHop(dst netip.Addr) (int, [6]byte, [6]byte, bool) {
	r.calls++
	if !r.prefix.Contains(dst) {
		return 0, [6]byte{}, [6]byte{}, false
	}
	return protIf, lanMAC, hostMAC, true
}

// testPMTU is a minimal PMTU for plumbing tests: PacketTooBig wraps the
// packet in an IPv4 + ICMP "fragmentation needed" header (no checksum),
// FragmentIPv4 cuts at 8-byte multiples and copies the header.
type testPMTU struct{ ptb, frags int }

func (p *testPMTU) PacketTooBig(buf []byte, off, n, mtu int) (int, int, bool) {
	p.ptb++
	start := off - 28
	h := buf[start:off]
	clear(h)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(28+min(n, 548)))
	h[8] = 64
	h[9] = 1
	copy(h[12:16], buf[off+16:off+20]) // from the original destination's side
	copy(h[16:20], buf[off+12:off+16]) // to the sender
	h[20], h[21] = 3, 4
	binary.BigEndian.PutUint16(h[26:], uint16(mtu))
	return start, off + min(n, 548), true
}

func (p *testPMTU) FragmentIPv4(dst, pkt []byte, mtu, offset int) (int, int) {
	p.frags++
	ihl := int(pkt[0]&0xf) * 4
	payload := pkt[ihl:binary.BigEndian.Uint16(pkt[2:])]
	room := (mtu - ihl) &^ 7
	n := min(room, len(payload)-offset)
	copy(dst, pkt[:ihl])
	copy(dst[ihl:], payload[offset:offset+n])
	binary.BigEndian.PutUint16(dst[2:], uint16(ihl+n))
	fo := uint16(offset / 8)
	next := offset + n
	if next < len(payload) {
		fo |= 0x2000
	} else {
		next = 0
	}
	binary.BigEndian.PutUint16(dst[6:], fo)
	dst[10], dst[11] = 0, 0
	binary.BigEndian.PutUint16(dst[10:], ^uint16(packettest.RefSum(dst[:ihl], 0)))
	return ihl + n, next
}

func newSA(t testing.TB, spi uint32, src, dst netip.Addr, window uint32) *esp.SA {
	t.Helper()
	sa, err := esp.New(esp.Params{
		SPI: spi, Src: src, Dst: dst, Mode: ipsec.ModeTunnel,
		AEAD:         esp.AEADAlg{Name: "rfc4106(gcm(aes))", Key: gcmKey},
		ReplayWindow: window,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// rig is a worker on in-memory sockets with the kernel doubles that serve
// them: prot is the protected side, wire the wire side.
type rig struct {
	w          *Worker
	sas        *SATable
	stats      *StatsTable
	prot, wire *xsk.MemKernel
	res        *staticResolver
	pmtu       *testPMTU
	peerIn     *esp.SA // decrypts what the worker seals, as the peer gateway would
}

const (
	outIdx   = 1 // outbound SA index
	inIdx    = 2 // inbound SA index
	spiOut   = 0x1001
	rigFrame = 2048
)

func newRig(t testing.TB, window uint32, check ipsec.CheckList) *rig {
	t.Helper()
	return newRigSized(t, window, check, 256, 32)
}

// newRigSized is newRig with frames UMEM frames and rings of ring entries.
func newRigSized(t testing.TB, window uint32, check ipsec.CheckList, frames, ring uint32) *rig {
	t.Helper()
	u, err := xsk.NewUMEM(xsk.UMEMConfig{FrameCount: frames, FrameSize: rigFrame})
	if err != nil {
		t.Fatal(err)
	}
	pools, _ := u.Pools(1)
	sc := xsk.SocketConfig{FillSize: ring, CompletionSize: ring, RXSize: ring, TXSize: ring}
	ps, pk, err := u.NewMemSocket(sc)
	if err != nil {
		t.Fatal(err)
	}
	ws, wk, err := u.NewMemSocket(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close(); ws.Close(); u.Close() })
	pk.SetNeedWakeup(false, true)
	wk.SetNeedWakeup(false, true)

	sas, err := NewSATable(16, 1500)
	if err != nil {
		t.Fatal(err)
	}
	if check == nil {
		check = lanCheck()
	}
	// The worker's outbound SA and, with the same key, its inbound one: a
	// packet it seals can be fed back in as if it came from the peer.
	if err := sas.Install(outIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, 0), Dir: ipsec.DirOut, OuterDst: outerDst}); err != nil {
		t.Fatal(err)
	}
	if err := sas.Install(inIdx, &Entry{SA: newSA(t, spiOut, outerSrc, outerDst, window), Dir: ipsec.DirIn, Check: check}); err != nil {
		t.Fatal(err)
	}
	r := &rig{sas: sas, stats: NewStatsTable(16), prot: pk, wire: wk,
		res:    &staticResolver{prefix: netip.MustParsePrefix("198.18.2.0/24")},
		pmtu:   &testPMTU{},
		peerIn: newSA(t, spiOut, outerSrc, outerDst, 0),
	}
	r.w, err = New(Config{Protected: ps, Wire: ws, Pool: pools[0], SAs: sas, SAStats: r.stats,
		Resolver: r.res, PMTU: r.pmtu, ProtectedIfindex: protIf, WireIfindex: wireIf, CPU: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.w.Close() })
	// Prime the fill rings.
	if _, err := r.w.Step(); err != nil {
		t.Fatal(err)
	}
	return r
}

// lanCheck is the inbound SA's check list: it serves one policy, 198.18.1.0/24 → 198.18.2.0/24,
// any protocol.
func lanCheck() ipsec.CheckList {
	return ipsec.CheckList{{Selector: ipsec.Selector{
		Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
		SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts,
	}, Accept: true}}
}

type metaOpt struct {
	dir     ipsec.Dir
	sa      uint32
	flags   uint16
	egress  uint32
	badMag  bool
	l3Off   uint8
	version uint8
}

func metaBytes(o metaOpt) []byte {
	b := make([]byte, bpf.MetaSize)
	ne := binary.NativeEndian
	ne.PutUint16(b[0:], bpf.MetaMagic)
	if o.badMag {
		ne.PutUint16(b[0:], 0xdead)
	}
	b[2] = bpf.MetaVersion
	if o.version != 0 {
		b[2] = o.version
	}
	b[3] = byte(o.dir)
	ne.PutUint32(b[4:], o.sa)
	ne.PutUint16(b[10:], o.flags)
	b[12] = 14
	if o.l3Off != 0 {
		b[12] = o.l3Off
	}
	ne.PutUint32(b[16:], o.egress)
	copy(b[20:26], gwMAC[:])
	copy(b[26:32], peerGwMAC[:])
	return b
}

func outMeta() []byte {
	return metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: uint32(wireIf)})
}

func inMeta() []byte { return metaBytes(metaOpt{dir: ipsec.DirIn, sa: inIdx}) }

// ipv4UDP builds an IPv4/UDP packet of ipLen bytes.
func ipv4UDP(ipLen int, src, dst netip.Addr, sport, dport uint16, df bool, ttl byte) []byte {
	p := make([]byte, ipLen)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(p[4:], 0x1234)
	if df {
		binary.BigEndian.PutUint16(p[6:], 0x4000)
	}
	p[8] = ttl
	p[9] = 17
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:], s4[:])
	copy(p[16:], d4[:])
	binary.BigEndian.PutUint16(p[10:], ^uint16(packettest.RefSum(p[:20], 0)))
	binary.BigEndian.PutUint16(p[20:], sport)
	binary.BigEndian.PutUint16(p[22:], dport)
	binary.BigEndian.PutUint16(p[24:], uint16(ipLen-20))
	for i := 28; i < ipLen; i++ {
		p[i] = byte(i)
	}
	return p
}

func ether(dst, src [6]byte, etype uint16, ip []byte) []byte {
	f := make([]byte, 14+len(ip))
	copy(f[0:], dst[:])
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], etype)
	copy(f[14:], ip)
	return f
}

// outFrame is an Ethernet frame from a LAN host to the gateway.
func outFrame(ip []byte) []byte { return ether(lanMAC, senderMAC, 0x0800, ip) }

// sent runs the worker once and collects what the kernel doubles transmit.
func (r *rig) step(t testing.TB) (wire, prot [][]byte) {
	t.Helper()
	if _, err := r.w.Step(); err != nil {
		t.Fatal(err)
	}
	r.wire.Transmit(0, func(d xsk.Desc, pkt []byte) { wire = append(wire, append([]byte(nil), pkt...)) })
	r.prot.Transmit(0, func(d xsk.Desc, pkt []byte) { prot = append(prot, append([]byte(nil), pkt...)) })
	// Reap the completions and refill.
	if _, err := r.w.Step(); err != nil {
		t.Fatal(err)
	}
	return wire, prot
}

func (r *rig) checkFrames(t testing.TB) {
	t.Helper()
	if a := r.w.Frames(); !a.Balanced() || r.w.stats.FrameErrors.Load() != 0 {
		t.Fatalf("frames not accounted for: %+v (frame errors %d)", a, r.w.stats.FrameErrors.Load())
	}
}
