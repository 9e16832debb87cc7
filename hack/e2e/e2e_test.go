package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// The tunnels: IPv4 with AES-GCM-128, IPv6 with ChaCha20-Poly1305.
var tunnels = []testbed.Tunnel{
	{Name: "v4", Alg: testbed.AlgAESGCM, SPI: 0x1000},
	{Name: "v6", IPv6: true, Alg: testbed.AlgChaCha, SPI: 0x2000},
}

// transferSize is the TCP transfer through each tunnel, by the SPI of its gw1→gw2 SA.
var transferSize = map[uint32]uint64{0x1000: 128 << 20, 0x2000: 16 << 20}

// multiBuffer selects the multi-buffer variant (XDPSEC_E2E_MULTIBUF=1).
var multiBuffer = os.Getenv("XDPSEC_E2E_MULTIBUF") == "1"

// marker is written into the payload every 4 KiB; it must never appear on the wire.
var marker = []byte("XDPSEC-E2E-PLAINTEXT-MARKER-5f3a9c")

func TestEndToEnd(t *testing.T) {
	testutil.RequireRoot(t, "the end-to-end test builds namespaces and loads XDP and AF_XDP")
	testutil.RequireTools(t, "ip", "ping", "tcpdump")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	tb, err := testbed.New(ctx, testbed.Options{Tag: "e2e", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	var nsNames []string
	for _, n := range append(testbed.Nodes, testbed.SW) {
		nsNames = append(nsNames, tb.NetNS(n))
	}
	t.Cleanup(func() { _ = tb.Close() })
	// The hosts keep their default offloads: what they send carries CHECKSUM_PARTIAL checksums,
	// as a gateway host's own traffic through a veth does, and the workers complete them.
	// XDPSEC_E2E_MULTIBUF=1 runs the gateways with dataplane.multi_buffer and the protected sides
	// in generic XDP mode: the hosts keep TSO, and gw1/gw2 segment their GSO super-packets.
	var dp testbed.Dataplane
	if multiBuffer {
		dp = testbed.Dataplane{MultiBuffer: true, ProtectedXDPMode: "generic"}
	}
	gws, err := pair.Start(ctx, tb, pair.Options{Tunnels: tunnels, Log: log, HostOffloads: true, Dataplane: dp})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = gws.Close()
		}
	})
	for _, d := range []*daemon.Daemon{gws.GW1, gws.GW2} {
		t.Logf("%s: protected %s (%s XDP), wire %s (%s XDP), %d queue(s), AF_XDP %s, multi-buffer %v", d.Info.Instance,
			d.Info.Protected.Name, d.Info.Protected.Mode, d.Info.Wire.Name, d.Info.Wire.Mode, d.Info.Queues, d.Info.SocketMode,
			d.Info.MultiBuffer)
	}
	progIDs := programIDs(t, gws.GW1, gws.GW2)
	pins := []string{gws.GW1.Info.PinDir, gws.GW2.Info.PinDir}

	// Warm up: the first packets to a host may meet an unresolved neighbour (dropped and
	// counted, while the cache resolves it), before the capture and the counter baseline. What is
	// lost there is counted and bounded (testbed.MaxWarmUpLoss); after it, no echo may be lost.
	for _, c := range []struct {
		from testbed.Node
		dst  netip.Addr
	}{{testbed.H1, testbed.H2Addr4}, {testbed.H1, testbed.H2Addr6}, {testbed.H2, testbed.H1Addr4}, {testbed.H2, testbed.H1Addr6}} {
		lost, err := tb.WarmUp(ctx, c.from, c.dst)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("warm-up %s → %s: %d first echo(es) lost while the gateways resolved their next hops", c.from, c.dst, lost)
	}

	pcapFile := filepath.Join(t.TempDir(), "wire.pcap")
	capture := startCapture(ctx, t, tb, pcapFile)
	before := snapshot(gws)
	sock0 := map[string]uint64{"gw1": ringDrops(gws.GW1), "gw2": ringDrops(gws.GW2)}

	t.Run("ping", func(t *testing.T) {
		for _, c := range []struct {
			from testbed.Node
			dst  netip.Addr
		}{{testbed.H1, testbed.H2Addr4}, {testbed.H1, testbed.H2Addr6}, {testbed.H2, testbed.H1Addr4}, {testbed.H2, testbed.H1Addr6}} {
			if err := tb.Ping(ctx, c.from, c.dst, 5); err != nil {
				t.Errorf("ping %s from %s: %v", c.dst, c.from, err)
			}
		}
		// 3000-byte echoes without DF: the sender fragments at 1500, and the gateway must
		// fragment the 1500-byte first fragment again, before encryption, to fit the tunnel.
		f0 := gws.GW1.WorkerStats()["fragments"] + gws.GW2.WorkerStats()["fragments"]
		if r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, 3, testbed.PingOptions{Size: 3000, NoDF: true}); err != nil || r.Received != 3 {
			t.Errorf("ping with 3000-byte fragmented echoes: %d of 3 answered (%v)", r.Received, err)
		}
		f1 := gws.GW1.WorkerStats()["fragments"] + gws.GW2.WorkerStats()["fragments"]
		// Each 3028-byte echo leaves its host as fragments of 1500, 1500 and 68 bytes; the gateway
		// cuts each 1500-byte one in two to fit the tunnel's inner MTU: 4 per echo, 24 in all.
		if f1-f0 != 24 {
			t.Errorf("the gateways made %d fragments for 3 echo requests and 3 replies, want 24", f1-f0)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		for _, c := range []struct {
			dst  netip.Addr
			spi  uint32
			size int64
		}{{testbed.H2Addr4, tunnels[0].SPI, int64(transferSize[tunnels[0].SPI])},
			{testbed.H2Addr6, tunnels[1].SPI, int64(transferSize[tunnels[1].SPI])}} {
			start := time.Now()
			sent, got, n, pmtu, err := transfer(ctx, tb, c.dst, c.size)
			if err != nil {
				t.Fatalf("transfer to %s: %v", c.dst, err)
			}
			el := time.Since(start)
			t.Logf("TCP to %s: %d bytes in %v (%.2f Gbit/s), sender's path MTU %d", c.dst, n, el.Round(time.Millisecond),
				float64(n)*8/el.Seconds()/1e9, pmtu)
			if n != c.size || sent != got {
				t.Errorf("transfer to %s: received %d of %d bytes, checksum match %v", c.dst, n, c.size, sent == got)
			}
			// 1500-byte MTUs everywhere, no MSS clamping: the sender learnt the tunnel's inner MTU
			// from the gateway's ICMP error, exactly.
			if want := saCounters(gws.GW1, c.spi, "out").InnerMTU; pmtu != want || want >= 1500 || want < 1280 {
				t.Errorf("sender's path MTU to %s is %d, want the SA's inner MTU %d: the gateway's ICMP too-big did not reach it",
					c.dst, pmtu, want)
			}
		}
		if n := gws.GW1.WorkerStats()["ptb_sent"]; n == 0 {
			t.Error("gw1 sent no ICMP fragmentation-needed / packet-too-big")
		}
		if n := gws.GW1.WorkerStats()["checksums_completed"]; n == 0 {
			t.Error("gw1 completed no CHECKSUM_PARTIAL checksum: h1's offloads were not exercised")
		}
	})

	// Let in-flight packets land: wait until every SA's receiver has opened what its sender sealed
	// (or the difference is within what its socket dropped), then compare the counters with the capture.
	var after map[string]map[uint32]dirCount
	var sockDrops map[string]uint64
	testutil.Eventually(10*time.Second, func() bool {
		after = snapshot(gws)
		sockDrops = map[string]uint64{"gw1": ringDrops(gws.GW1) - sock0["gw1"], "gw2": ringDrops(gws.GW2) - sock0["gw2"]}
		return landed(before, after, sockDrops)
	})
	drops := capture.stop(t)
	wire := readCapture(t, pcapFile)

	t.Run("capture", func(t *testing.T) {
		t.Logf("capture: %d ESP packets, %d ARP/ND, %d missed by tcpdump, largest ESP packet %d bytes",
			wire.esp, wire.linkLocal, drops, wire.maxLen)
		// The checks below hold for an empty capture too: it must hold at least the 128 MiB
		// transfer's full-size segments.
		if min := (128 << 20) / 1500; wire.perSPI[tunnels[0].SPI] < min {
			t.Fatalf("the capture holds %d ESP packets of SPI 0x%x, fewer than the %d the IPv4 transfer needs",
				wire.perSPI[tunnels[0].SPI], tunnels[0].SPI, min)
		}
		for _, p := range wire.plain {
			t.Errorf("not ESP on the wire: %s", p)
		}
		if wire.marker > 0 {
			t.Errorf("the plaintext marker appears in %d packets on the wire", wire.marker)
		}
		for spi, n := range wire.reordered {
			t.Errorf("SPI 0x%x: %d sequence numbers not above their predecessor", spi, n)
		}
		// The inner MTU is the largest packet whose ESP packet fits: full-size segments make
		// ESP packets of exactly the wire MTU.
		if wire.maxLen != 1500 {
			t.Errorf("largest ESP packet %d bytes: want full-size packets of the 1500-byte wire MTU", wire.maxLen)
		}
	})
	t.Run("counters", func(t *testing.T) {
		for _, tun := range tunnels {
			for _, dir := range saDirs(tun) {
				sealed := after[dir.from][dir.spi].out - before[dir.from][dir.spi].out
				opened := after[dir.to][dir.spi].in - before[dir.to][dir.spi].in
				sealedB := after[dir.from][dir.spi].outBytes - before[dir.from][dir.spi].outBytes
				openedB := after[dir.to][dir.spi].inBytes - before[dir.to][dir.spi].inBytes
				seen := wire.perSPI[dir.spi]
				t.Logf("SPI 0x%x %s→%s: sealed %d, on the wire %d, opened %d (%s's wire socket dropped %d)",
					dir.spi, dir.from, dir.to, sealed, seen, opened, dir.to, sockDrops[dir.to])
				if sealed == 0 {
					t.Errorf("SPI 0x%x: %s sealed nothing", dir.spi, dir.from)
				}
				// What the sender counts is what went on the wire: exactly, unless tcpdump itself
				// lost packets (it says how many).
				if uint64(seen) > sealed || sealed-uint64(seen) > uint64(drops) {
					t.Errorf("SPI 0x%x: the capture holds %d packets (tcpdump missed %d), %s sealed %d",
						dir.spi, seen, drops, dir.from, sealed)
				}
				// The transfer's payload went h1 → h2 through this SA: its byte counter holds it,
				// with the inner IP and TCP headers (under 5 % more for full-size segments).
				if dir.from == "gw1" {
					if size := transferSize[tun.SPI]; sealedB < size || sealedB > size+size/20+1<<20 {
						t.Errorf("SPI 0x%x: %s sealed %d plaintext bytes for a %d-byte transfer", dir.spi, dir.from, sealedB, size)
					}
				}
				// Without a loss on the way, both ends count the same plaintext bytes.
				if sealed == opened && sealedB != openedB {
					t.Errorf("SPI 0x%x: %s sealed %d bytes, %s opened %d", dir.spi, dir.from, sealedB, dir.to, openedB)
				}
				// Every packet sealed is opened, unless the receiver's AF_XDP ring overflowed
				// (the kernel counts those, per socket, not per SA): then the difference must
				// be within what it counted.
				if lost := sealed - opened; opened > sealed || (lost != 0 && lost > sockDrops[dir.to]) {
					t.Errorf("SPI 0x%x: %s sealed %d packets, %s opened %d, its socket dropped %d",
						dir.spi, dir.from, sealed, dir.to, opened, sockDrops[dir.to])
				}
			}
		}
	})
	t.Run("inject", func(t *testing.T) {
		if wire.last == nil || wire.old == nil {
			t.Fatal("no ESP frames of SPI 0x1000 captured to inject")
		}
		inject(ctx, t, tb, gws, wire)
	})

	// Teardown: nothing may stay behind.
	closed = true
	if err := gws.Close(); err != nil {
		t.Errorf("close gateways: %v", err)
	}
	for _, id := range progIDs {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			p.Close()
			t.Errorf("XDP program %d still loaded after the gateways stopped", id)
		}
	}
	for _, p := range pins {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("pin directory %s left behind", p)
		}
	}
	if err := tb.Close(); err != nil {
		t.Errorf("tear down testbed: %v", err)
	}
	for _, n := range nsNames {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("namespace %s left behind", n)
		}
	}
	// A namespace still held by a process or a handle keeps its links (and their XDP programs)
	// although its name is gone.
	for _, l := range tb.Leftovers() {
		t.Errorf("left behind: %s", l)
	}
}

// inject sends, from the wire tap towards gw2, five ESP packets each with an unknown SPI, a
// flipped ICV bit and a replayed sequence number, while h1 pings h2; each kind must be dropped
// and counted under its reason and the ping must not lose a packet.
func inject(ctx context.Context, t *testing.T, tb *testbed.Testbed, gws *pair.Pair, wire *wireStats) {
	sa0 := saCounters(gws.GW2, tunnels[0].SPI, "in")
	card0, err := gws.GW2.Card().ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	const echoes = 40
	pingDone := make(chan error, 1)
	go func() {
		r, err := tb.PingCount(ctx, testbed.H1, testbed.H2Addr4, echoes, testbed.PingOptions{Interval: 50 * time.Millisecond})
		if err == nil && (r.Sent != echoes || r.Received != echoes) {
			err = fmt.Errorf("%d of %d echoes answered: %s", r.Received, echoes, r.Output)
		}
		pingDone <- err
	}()
	// Inject while the echoes flow: once gw2 has opened the first ones.
	testutil.WaitFor(t, 10*time.Second, "gw2 to open the ping's first echoes", func() bool {
		return saCounters(gws.GW2, tunnels[0].SPI, "in").Packets >= sa0.Packets+3
	})
	var frames [][]byte
	for i := 0; i < 5; i++ {
		unknown := bytes.Clone(wire.last)
		binary.BigEndian.PutUint32(unknown[wire.lastESP:], 0xdead0001+uint32(i))
		badICV := bytes.Clone(wire.last)
		// A sequence number ahead of the window passes the replay check; the ICV then fails.
		binary.BigEndian.PutUint32(badICV[wire.lastESP+4:], wire.lastSeq+100000+uint32(i))
		badICV[len(badICV)-1] ^= 0x01
		frames = append(frames, unknown, badICV, bytes.Clone(wire.old))
	}
	if err := sendFrames(tb, testbed.SW, testbed.SWGW2, frames); err != nil {
		t.Fatal(err)
	}
	if err := <-pingDone; err != nil {
		t.Errorf("ping during injection: %v", err)
	}
	// The last echoes reached gw2's wire queue after the injected frames: once the SA has counted all
	// 40, gw2 has handled the frames too (the workers add to the counters after each batch).
	testutil.Eventually(5*time.Second, func() bool {
		return saCounters(gws.GW2, tunnels[0].SPI, "in").Packets >= sa0.Packets+echoes
	})
	sa1 := saCounters(gws.GW2, tunnels[0].SPI, "in")
	card1, err := gws.GW2.Card().ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gw2 after injection: replay %d→%d, integrity %d→%d, InNoStates %d→%d", sa0.ReplayErrors, sa1.ReplayErrors,
		sa0.IntegrityErrors, sa1.IntegrityErrors, card0["InNoStates"], card1["InNoStates"])
	if d := sa1.ReplayErrors - sa0.ReplayErrors; d != 5 {
		t.Errorf("replayed packets counted %d times, want 5", d)
	}
	if d := sa1.IntegrityErrors - sa0.IntegrityErrors; d != 5 {
		t.Errorf("packets with a flipped ICV bit counted %d times, want 5", d)
	}
	if d := card1["InNoStates"] - card0["InNoStates"]; d != 5 {
		t.Errorf("packets with an unknown SPI counted %d times under InNoStates, want 5", d)
	}
	if d := sa1.Packets - sa0.Packets; d != echoes {
		t.Errorf("the SA opened %d packets during the injection, want the %d echo requests", d, echoes)
	}
}

type dirCount struct{ out, in, outBytes, inBytes uint64 }

// saDir is one direction of a tunnel: the SPI of its SA, the gateway that seals, the one that opens.
type saDir struct {
	spi      uint32
	from, to string
}

func saDirs(tun testbed.Tunnel) []saDir {
	return []saDir{{tun.SPI, "gw1", "gw2"}, {tun.SPI + 1, "gw2", "gw1"}}
}

// landed reports whether, between two snapshots, every packet a gateway sealed was opened by its
// peer or dropped by the peer's wire socket (the kernel counts those per socket, not per SA).
func landed(before, after map[string]map[uint32]dirCount, sockDrops map[string]uint64) bool {
	for _, tun := range tunnels {
		for _, d := range saDirs(tun) {
			sealed := after[d.from][d.spi].out - before[d.from][d.spi].out
			opened := after[d.to][d.spi].in - before[d.to][d.spi].in
			if opened > sealed || sealed-opened > sockDrops[d.to] {
				return false
			}
		}
	}
	return true
}

// snapshot reads every SA's packet counter on both gateways: gateway → SPI → counts.
func snapshot(p *pair.Pair) map[string]map[uint32]dirCount {
	out := map[string]map[uint32]dirCount{}
	for name, d := range map[string]*daemon.Daemon{"gw1": p.GW1, "gw2": p.GW2} {
		m := map[uint32]dirCount{}
		for _, sa := range d.SAs() {
			c := m[sa.SPI]
			if sa.Dir == "out" {
				c.out, c.outBytes = sa.Packets, sa.Bytes
			} else {
				c.in, c.inBytes = sa.Packets, sa.Bytes
			}
			m[sa.SPI] = c
		}
		out[name] = m
	}
	return out
}

// ringDrops is what the gateway's wire-side AF_XDP sockets lost before a worker saw it.
func ringDrops(d *daemon.Daemon) uint64 {
	st := d.SocketStats()["wire"]
	return st.RXRingFull + st.RXDropped
}

func saCounters(d *daemon.Daemon, spi uint32, dir string) daemon.SAInfo {
	for _, sa := range d.SAs() {
		if sa.SPI == spi && sa.Dir == dir {
			return sa
		}
	}
	return daemon.SAInfo{}
}

func programIDs(t *testing.T, ds ...*daemon.Daemon) []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, d := range ds {
		for _, p := range []*ebpf.Program{d.Card().Objects().XdpsecOut, d.Card().Objects().XdpsecIn} {
			info, err := p.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, ok := info.ID()
			if !ok {
				t.Fatal("program has no ID")
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// transfer sends size bytes of pseudo-random data with the marker every 4 KiB from h1 to dst in
// h2 over TCP, and returns both ends' SHA-256, the bytes received and the sender's path MTU.
func transfer(ctx context.Context, tb *testbed.Testbed, dst netip.Addr, size int64) (sent, got [32]byte, n int64, pmtu int, err error) {
	conn, res, err := tb.DialSink(dst, 2*time.Minute)
	if err != nil {
		return
	}
	defer conn.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		_, _ = rng.Read(chunk)
		for i := 0; i+len(marker) <= len(chunk); i += 4096 {
			copy(chunk[i:], marker)
		}
		h.Write(chunk)
		if _, err = conn.Write(chunk); err != nil {
			return
		}
		left -= int64(len(chunk))
	}
	sent = [32]byte(h.Sum(nil))
	pmtu = pathMTU(conn, dst.Is6())
	if err = conn.(*net.TCPConn).CloseWrite(); err != nil {
		return
	}
	select {
	case r := <-res:
		return sent, r.Sum, r.N, pmtu, r.Err
	case <-ctx.Done():
		return sent, got, 0, pmtu, ctx.Err()
	}
}

func pathMTU(c net.Conn, v6 bool) int {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0
	}
	mtu := 0
	_ = rc.Control(func(fd uintptr) {
		if v6 {
			mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
		} else {
			mtu, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU)
		}
	})
	return mtu
}

// capture is the testbed's wire capture with the test's failure handling.
type capture struct{ *testbed.Capture }

// startCapture runs tcpdump on the wire tap's port towards gw1, whole packets, a large buffer, and
// any extra arguments.
func startCapture(ctx context.Context, t *testing.T, tb *testbed.Testbed, file string, extra ...string) *capture {
	c, err := tb.StartCapture(ctx, file, 0, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return &capture{c}
}

// stop ends the capture and returns the packets it missed: those the filter received that never
// reached the file.
func (c *capture) stop(t *testing.T) int {
	missed := c.Stop()
	if missed > 0 {
		t.Logf("tcpdump missed %d packets:\n%s", missed, c.Report())
	}
	return missed
}

type wireStats struct {
	esp, linkLocal int
	plain          []string
	marker         int
	maxLen         int
	perSPI         map[uint32]int
	reordered      map[uint32]int
	// For injection: the newest and an old frame of tunnels[0]'s gw1→gw2 SA.
	last, old []byte
	lastESP   int // offset of the ESP header in last
	lastSeq   uint32
}

func readCapture(t *testing.T, file string) *wireStats {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	w := &wireStats{perSPI: map[uint32]int{}, reordered: map[uint32]int{}}
	lastSeq := map[uint32]uint32{}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		if bytes.Contains(data, marker) {
			w.marker++
		}
		if len(data) < 14 {
			w.plain = append(w.plain, fmt.Sprintf("runt frame of %d bytes", len(data)))
			continue
		}
		var proto byte
		var l3, ipLen int
		switch binary.BigEndian.Uint16(data[12:]) {
		case 0x0806: // ARP
			w.linkLocal++
			continue
		case 0x0800:
			if len(data) < 34 {
				w.plain = append(w.plain, "truncated IPv4")
				continue
			}
			proto, l3, ipLen = data[23], 14+int(data[14]&0xf)*4, int(binary.BigEndian.Uint16(data[16:]))
		case 0x86dd:
			if len(data) < 54 {
				w.plain = append(w.plain, "truncated IPv6")
				continue
			}
			proto, l3, ipLen = data[20], 54, 40+int(binary.BigEndian.Uint16(data[18:]))
			// Neighbour discovery and MLD from the gateways' own stacks (ICMPv6 130-143).
			if proto == 58 && len(data) > 54 && data[54] >= 130 && data[54] <= 143 {
				w.linkLocal++
				continue
			}
		default:
			w.plain = append(w.plain, fmt.Sprintf("ethertype 0x%04x", binary.BigEndian.Uint16(data[12:])))
			continue
		}
		if proto != 50 || len(data) < l3+8 {
			w.plain = append(w.plain, fmt.Sprintf("IP protocol %d, %d bytes", proto, len(data)))
			continue
		}
		w.esp++
		w.maxLen = max(w.maxLen, ipLen)
		spi := binary.BigEndian.Uint32(data[l3:])
		seq := binary.BigEndian.Uint32(data[l3+4:])
		if prev, ok := lastSeq[spi]; ok && seq <= prev {
			w.reordered[spi]++
		}
		lastSeq[spi] = seq
		w.perSPI[spi]++
		if spi == tunnels[0].SPI {
			if w.old == nil && seq >= 1 {
				w.old = bytes.Clone(data)
			}
			w.last, w.lastESP, w.lastSeq = bytes.Clone(data), l3, seq
		}
	}
	if len(w.plain) > 20 {
		w.plain = append(w.plain[:20], fmt.Sprintf("… and %d more", len(w.plain)-20))
	}
	return w
}

// sendFrames writes raw Ethernet frames out of dev in node's namespace.
func sendFrames(tb *testbed.Testbed, n testbed.Node, dev string, frames [][]byte) error {
	return tb.InNS(n, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: htons(unix.ETH_P_ALL)}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send frame: %w", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
