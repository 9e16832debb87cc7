package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

// Issue 8's proofs that no nonce and no sequence number is used twice under one key, on the wire,
// across a reload that changes an SA's settings under traffic and across restarts of a gateway
// (SIGTERM, then kill -9): a capture on the gw1–gw2 link, every ESP packet in it decrypted
// independently with the configuration's keys, no (SPI, sequence number) and no (SPI, IV) twice.

var v4Tunnel = []testbed.Tunnel{{Name: "v4", Alg: testbed.AlgAESGCM, SPI: 0x1000}}

func needE2E(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "the end-to-end test needs namespaces, XDP and AF_XDP")
	testutil.RequireTools(t, "ip", "ping", "tcpdump")
}

// gatewayFiles writes the testbed's two configurations (each with its own state_dir) to files.
func gatewayFiles(t *testing.T, tb *testbed.Testbed) (gw1, gw2 string) {
	t.Helper()
	y1, y2, err := tb.GatewayConfigs(v4Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gw1, gw2 = filepath.Join(dir, "gw1.yaml"), filepath.Join(dir, "gw2.yaml")
	for _, f := range [][2]string{{gw1, y1}, {gw2, y2}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return gw1, gw2
}

// newTestbed builds the testbed with the wire tap (the hosts' checksum offload off, so that ping is
// all the traffic) and writes both gateways' configuration files.
func newTestbed(ctx context.Context, t *testing.T) (tb *testbed.Testbed, gw1, gw2 string) {
	t.Helper()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "e2e", WireTap: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	if err := tb.HostChecksumOffloadOff(ctx); err != nil {
		t.Fatal(err)
	}
	gw1, gw2 = gatewayFiles(t, tb)
	return tb, gw1, gw2
}

// startFromFile starts gw in-process from its configuration file (so that ReloadFile re-reads it).
func startFromFile(ctx context.Context, t *testing.T, tb *testbed.Testbed, gw testbed.Node, path string) *daemon.Daemon {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := tb.NsHandle(gw)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := daemon.Start(ctx, cfg, daemon.Options{NetNS: ns, NoAPI: true, Log: log.With("gw", string(gw))})
	if err != nil {
		t.Fatalf("start %s: %v", gw, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// espKeys are the ESP parameters of every SA of a configuration file, by SPI, for independent
// decryption (replay checking off: the test counts repeats itself).
func espKeys(t *testing.T, path string) map[uint32]esp.Params {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32]esp.Params{}
	for i := range cfg.SAs {
		p, err := cfg.SAs[i].ESPParams()
		if err != nil {
			t.Fatal(err)
		}
		p.ReplayWindow, p.Seq = 0, 0
		p.AEAD.Key = slices.Clone(p.AEAD.Key)
		out[p.SPI] = p
	}
	return out
}

// espAudit is what a capture holds of ESP, per SPI.
type espAudit struct {
	packets      map[uint32]int
	authFailed   map[uint32]int
	seqTwice     map[uint32]int
	ivTwice      map[uint32]int
	notIncreased map[uint32]int           // sequence numbers not above their predecessor's
	ttls         map[uint32]map[uint8]int // outer TTLs seen
	firstTTL     map[uint32][]uint8       // outer TTL of each packet, in order
}

// audit reads a pcap of the wire and decrypts every ESP packet with the SA of its SPI.
func audit(t *testing.T, file string, keys map[uint32]esp.Params) *espAudit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	a := &espAudit{packets: map[uint32]int{}, authFailed: map[uint32]int{}, seqTwice: map[uint32]int{}, ivTwice: map[uint32]int{},
		notIncreased: map[uint32]int{}, ttls: map[uint32]map[uint8]int{}, firstTTL: map[uint32][]uint8{}}
	sas := map[uint32]*esp.SA{}
	for spi, p := range keys {
		sa, err := esp.New(p)
		if err != nil {
			t.Fatal(err)
		}
		sas[spi] = sa
	}
	seenSeq, seenIV, last := map[[2]uint64]bool{}, map[[2]uint64]bool{}, map[uint32]uint32{}
	buf := make([]byte, esp.Headroom+9000)
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read capture: %v", err)
		}
		if len(data) < 14+20+16 || binary.BigEndian.Uint16(data[12:]) != 0x0800 || data[14+9] != 50 {
			continue // ARP, neighbour discovery: the main end-to-end test looks at those
		}
		ip := data[14:]
		l3 := int(ip[0]&0xf) * 4
		spi, seq := binary.BigEndian.Uint32(ip[l3:]), binary.BigEndian.Uint32(ip[l3+4:])
		iv := binary.BigEndian.Uint64(ip[l3+8:])
		a.packets[spi]++
		if a.ttls[spi] == nil {
			a.ttls[spi] = map[uint8]int{}
		}
		a.ttls[spi][ip[8]]++
		a.firstTTL[spi] = append(a.firstTTL[spi], ip[8])
		if k := [2]uint64{uint64(spi), uint64(seq)}; seenSeq[k] {
			a.seqTwice[spi]++
		} else {
			seenSeq[k] = true
		}
		if k := [2]uint64{uint64(spi), iv}; seenIV[k] {
			a.ivTwice[spi]++
		} else {
			seenIV[k] = true
		}
		if prev, ok := last[spi]; ok && seq <= prev {
			a.notIncreased[spi]++
		}
		last[spi] = seq
		sa := sas[spi]
		n := int(binary.BigEndian.Uint16(ip[2:]))
		if sa == nil || n > len(ip) || n > len(buf)-esp.Headroom {
			a.authFailed[spi]++
			continue
		}
		copy(buf[esp.Headroom:], ip[:n])
		if _, _, err := sa.Decap(buf, esp.Headroom, n); err != nil {
			a.authFailed[spi]++
		}
	}
	return a
}

// check fails the test on any repeat, any packet that does not authenticate, any sequence number
// out of order, and a capture with fewer than min packets of spi.
func (a *espAudit) check(t *testing.T, spi uint32, min int) {
	t.Helper()
	t.Logf("SPI 0x%x: %d ESP packets, outer TTLs %v", spi, a.packets[spi], a.ttls[spi])
	if a.packets[spi] < min {
		t.Errorf("SPI 0x%x: %d ESP packets captured, want at least %d", spi, a.packets[spi], min)
	}
	for what, m := range map[string]map[uint32]int{"do not authenticate": a.authFailed, "repeat a sequence number": a.seqTwice,
		"repeat an IV": a.ivTwice, "are not above their predecessor": a.notIncreased} {
		if m[spi] != 0 {
			t.Errorf("SPI 0x%x: %d packets %s", spi, m[spi], what)
		}
	}
}

// editSA rewrites the SA block of name in a configuration file: set adds (or replaces) lines.
func editSA(t *testing.T, path, name string, set map[string]string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	start := slices.Index(lines, "  - name: "+name+"\n")
	if start < 0 {
		t.Fatalf("no sa %s in %s", name, path)
	}
	end := start + 1
	for end < len(lines) && strings.HasPrefix(lines[end], "    ") {
		end++
	}
	block := slices.Clone(lines[start+1 : end])
	for field, value := range set {
		line := "    " + field + ": " + value + "\n"
		if i := slices.IndexFunc(block, func(l string) bool { return strings.HasPrefix(l, "    "+field+":") }); i >= 0 {
			block[i] = line
		} else {
			block = append(block, line)
		}
	}
	out := slices.Concat(lines[:start+1], block, lines[end:])
	if err := os.WriteFile(path, []byte(strings.Join(out, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsSequence: reloads that change only non-key settings of the tunnel's SAs (outer
// TTL, DF, TFC padding, replay window, reqid), on both gateways, while h1 pings h2 every 20 ms:
// the SAs are updated in place (same SA, no replacement), no echo is lost, and the capture holds no
// repeated (SPI, IV) or (SPI, sequence number), only packets that authenticate, sequence numbers
// that keep rising through the reloads, and the new TTL after them.
func TestReloadKeepsSequence(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tb, f1, f2 := newTestbed(ctx, t)
	keys := espKeys(t, f1)
	gw1 := startFromFile(ctx, t, tb, testbed.GW1, f1)
	gw2 := startFromFile(ctx, t, tb, testbed.GW2, f2)
	_ = tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3) // neighbours resolved
	serial := func(d *daemon.Daemon, name string) uint64 {
		e, err := d.Manager().Store().GetSA(sadb.Ref{Name: name}, false)
		if err != nil {
			t.Fatal(err)
		}
		return e.Serial
	}
	s1, s2 := serial(gw1, "v4-gw1-to-gw2"), serial(gw2, "v4-gw1-to-gw2")

	pcapFile := filepath.Join(t.TempDir(), "wire.pcap")
	capture := startCapture(ctx, t, tb, pcapFile, "--immediate-mode") // every packet in the file when it stops
	const echoes = 250                                                // 5 s at 20 ms
	pingDone := make(chan string, 1)
	go func() {
		out, _ := tb.Run(ctx, testbed.H1, "ping", "-n", "-q", "-i", "0.02", "-c", fmt.Sprint(echoes), "-W", "1", testbed.H2Addr4.String())
		pingDone <- out
	}()
	reload := func(d *daemon.Daemon, want ...string) {
		t.Helper()
		res, err := d.Manager().ReloadFile()
		if err != nil || !slices.Equal(res.SAsUpdated, want) || len(res.SAsReplaced)+len(res.SAsAdded)+len(res.SAsDeleted) != 0 {
			t.Fatalf("%s: reload %+v %v, want %v updated in place", d.Info.Instance, res, err, want)
		}
	}
	// Between reloads, traffic: 25 more echoes (half a second at 20 ms) through gw1's outbound SA.
	flowed := func(what string) {
		t.Helper()
		packets := func() uint64 {
			v, err := gw1.Manager().GetSA(sadb.Ref{Name: "v4-gw1-to-gw2"}, false)
			if err != nil {
				t.Fatal(err)
			}
			return v.Cur.Packets
		}
		from := packets()
		if !testutil.Eventually(10*time.Second, func() bool { return packets() >= from+25 }) {
			t.Fatalf("%s: fewer than 25 packets through v4-gw1-to-gw2 in 10 s (from %d, now %d)", what, from, packets())
		}
	}
	flowed("before the first reloads")
	editSA(t, f1, "v4-gw1-to-gw2", map[string]string{"ttl": "9", "df": "set", "tfc_pad": "200"})
	editSA(t, f2, "v4-gw1-to-gw2", map[string]string{"replay_window": "192"})
	reload(gw1, "v4-gw1-to-gw2")
	reload(gw2, "v4-gw1-to-gw2")
	flowed("between the reloads")
	editSA(t, f1, "v4-gw1-to-gw2", map[string]string{"ttl": "17", "reqid": "5"})
	editSA(t, f2, "v4-gw2-to-gw1", map[string]string{"ttl": "33"})
	reload(gw1, "v4-gw1-to-gw2")
	reload(gw2, "v4-gw2-to-gw1")
	out := <-pingDone
	time.Sleep(200 * time.Millisecond) // the last echo reply's ESP packet reaches the capture
	drops := capture.stop(t)
	if !strings.Contains(out, fmt.Sprintf("%d packets transmitted, %d received", echoes, echoes)) {
		t.Errorf("echoes lost across the reloads:\n%s", out)
	}
	if s1 != serial(gw1, "v4-gw1-to-gw2") || s2 != serial(gw2, "v4-gw1-to-gw2") {
		t.Error("a reload replaced an SA instead of updating it")
	}
	if drops > 0 {
		t.Errorf("tcpdump missed %d packets: the capture cannot show every packet", drops)
	}
	a := audit(t, pcapFile, keys)
	for _, spi := range []uint32{0x1000, 0x1001} {
		a.check(t, spi, echoes)
		if a.packets[spi] != echoes { // every echo request one way, every reply the other
			t.Errorf("SPI 0x%x: %d ESP packets on the wire for %d echoes", spi, a.packets[spi], echoes)
		}
	}
	// The settings took effect, in order, on the same sequence of numbers.
	if !slices.Equal(compact(a.firstTTL[0x1000]), []uint8{64, 9, 17}) || !slices.Equal(compact(a.firstTTL[0x1001]), []uint8{64, 33}) {
		t.Errorf("outer TTLs on the wire, in order: gw1→gw2 %v, gw2→gw1 %v; want [64 9 17] and [64 33]",
			compact(a.firstTTL[0x1000]), compact(a.firstTTL[0x1001]))
	}
}

func compact(v []uint8) []uint8 { return slices.Compact(slices.Clone(v)) }

// gateway is `xdpsec run` of gw1 as a process of its own.
type gateway struct {
	cmd  *exec.Cmd
	logs *testbed.LockedBuffer
	done chan struct{}
}

// runGateway starts `xdpsec run` and waits until it runs. The process is not tied to a context
// (that would kill it with SIGKILL and leave its pins): the test's cleanup stops it with SIGTERM.
func runGateway(t *testing.T, bin, cfg, netns string) *gateway {
	t.Helper()
	g := &gateway{cmd: exec.Command(bin, "run", "--config", cfg, "--netns", netns, "--no-api"),
		logs: &testbed.LockedBuffer{}, done: make(chan struct{})}
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.done:
		case <-time.After(20 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.done
		}
	})
	for end := time.Now().Add(30 * time.Second); !strings.Contains(g.logs.String(), "gateway running"); time.Sleep(20 * time.Millisecond) {
		select {
		case <-g.done:
			t.Fatalf("xdpsec run exited:\n%s", g.logs.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("xdpsec run did not start:\n%s", g.logs.String())
		}
	}
	return g
}

// stop signals the gateway and waits for the process to end.
func (g *gateway) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = g.cmd.Process.Signal(sig)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("xdpsec run did not end within 20 s of %v:\n%s", sig, g.logs.String())
	}
	if sig == syscall.SIGTERM && g.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("exit %d after SIGTERM:\n%s", g.cmd.ProcessState.ExitCode(), g.logs.String())
	}
}

var reReply = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=(\d+)`)

// TestRestartContinuesSequence: gw1 runs as `xdpsec run`, is stopped with SIGTERM and started
// again, then killed with SIGKILL and started again, with the same configuration and state
// directory, while h1 pings h2 every 20 ms. gw2 keeps running and is never rekeyed. Each time the
// echoes come back within 10 s of the stop; the capture across the three lives holds no repeated
// (SPI, IV) or (SPI, sequence number), sequence numbers that rise from life to life, only packets
// that authenticate, and gw2 counts no replay error: its window accepts gw1's new lives.
func TestRestartContinuesSequence(t *testing.T) {
	needE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := testutil.BuildXdpsec(ctx, t)
	tb, f1, f2 := newTestbed(ctx, t)
	keys := espKeys(t, f1)
	gw2 := startFromFile(ctx, t, tb, testbed.GW2, f2)
	// Whatever happens, this instance's pins go with the test (a process that a failure left
	// killed keeps them).
	t.Cleanup(func() { _ = os.RemoveAll("/sys/fs/bpf/xdpsec/" + tb.Instance(testbed.GW1)) })
	g := runGateway(t, bin, f1, tb.NetNS(testbed.GW1))
	_ = tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3)
	replay0 := saCounters(gw2, 0x1000, "in").ReplayErrors

	pcapFile := filepath.Join(t.TempDir(), "wire.pcap")
	capture := startCapture(ctx, t, tb, pcapFile, "--immediate-mode") // every packet in the file when it stops
	ping := tb.Command(ctx, testbed.H1, "ping", "-D", "-n", "-i", "0.02", "-W", "1", testbed.H2Addr4.String())
	pingOut := &testbed.LockedBuffer{}
	ping.Stdout, ping.Stderr = pingOut, pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ping.Process.Kill() })
	replies := func() []float64 {
		var ts []float64
		for _, l := range strings.Split(pingOut.String(), "\n") {
			if m := reReply.FindStringSubmatch(l); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				ts = append(ts, v)
			}
		}
		return ts
	}
	// after counts the replies stamped after at.
	after := func(at time.Time) (n int, first float64) {
		sec := float64(at.UnixNano()) / 1e9
		for _, v := range replies() {
			if v > sec {
				if n == 0 {
					first = v
				}
				n++
			}
		}
		return n, first - sec
	}
	// waitReplies waits for n echo replies stamped after the old life ended, the first of them
	// within 10 s of the signal that ended it.
	waitReplies := func(what string, signalled, exited time.Time, n int) {
		t.Helper()
		deadline := signalled.Add(10 * time.Second)
		for {
			got, first := after(exited)
			switch back := exited.Add(time.Duration(first * 1e9)); {
			case got == 0 && time.Now().After(deadline), got > 0 && back.After(deadline):
				t.Fatalf("%s: no echo reply within 10 s of the stop\n%s", what, g.logs.String())
			case got >= n:
				t.Logf("%s: the old life ended %.2f s after the signal; echoes back %.2f s later", what,
					exited.Sub(signalled).Seconds(), first)
				return
			case time.Now().After(deadline.Add(5 * time.Second)):
				t.Fatalf("%s: %d echo replies in the new life, want %d", what, got, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Traffic in the first life: 50 echo replies before the first stop.
	testutil.WaitFor(t, 10*time.Second, "50 echo replies in the first life", func() bool {
		n, _ := after(time.Time{})
		return n >= 50
	})
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		signalled := time.Now()
		g.stop(t, sig)
		exited := time.Now()
		g = runGateway(t, bin, f1, tb.NetNS(testbed.GW1))
		waitReplies(sig.String(), signalled, exited, 50) // and a second of traffic in the new life
	}
	_ = ping.Process.Signal(syscall.SIGINT)
	_ = ping.Wait()
	time.Sleep(200 * time.Millisecond)
	drops := capture.stop(t)
	if drops > 0 {
		t.Errorf("tcpdump missed %d packets: the capture cannot show every packet", drops)
	}
	a := audit(t, pcapFile, keys)
	for _, spi := range []uint32{0x1000, 0x1001} {
		a.check(t, spi, 100)
	}
	if d := saCounters(gw2, 0x1000, "in").ReplayErrors - replay0; d != 0 {
		t.Errorf("gw2 dropped %d of gw1's packets as replays: its window did not accept gw1's new lives", d)
	}
	// The last life stops cleanly, and with it the card it adopted from the killed one.
	g.stop(t, syscall.SIGTERM)
	if _, err := os.Stat("/sys/fs/bpf/xdpsec/" + tb.Instance(testbed.GW1)); err == nil {
		t.Errorf("pins of %s left after the last life's SIGTERM", tb.Instance(testbed.GW1))
	}
}
