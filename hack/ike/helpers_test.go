//go:build ike

package ike

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

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/hack/ike/ikebed"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func needRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "namespaces, XDP, AF_XDP and charon")
}

func TestMain(m *testing.M) {
	code := m.Run()
	ikebed.Cleanup()
	os.Exit(code)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last: %s)", d, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ikeSAs returns the SAs owner ike holds in a daemon.
func ikeSAs(t testing.TB, gw *ikebed.Gateway) []api.SAView {
	t.Helper()
	c := api.NewClient(gw.Socket)
	defer c.Close()
	l, err := c.ListSAsOf(context.Background(), sadb.Only(sadb.OwnerIKE), false)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ikePolicies(t testing.TB, gw *ikebed.Gateway) []api.PolicyView {
	t.Helper()
	c := api.NewClient(gw.Socket)
	defer c.Close()
	l, err := c.ListPoliciesOf(context.Background(), sadb.Only(sadb.OwnerIKE))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func spiSet(l []api.SAView) map[uint32]string {
	m := map[uint32]string{}
	for _, v := range l {
		d := "-"
		if v.Dir != nil {
			d = v.Dir.String()
		}
		m[v.SPI] = d
	}
	return m
}

// pingLoss runs n pings from h1 to dst at interval and returns how many were not answered.
func pingLoss(ctx context.Context, tb *testbed.Testbed, dst netip.Addr, n int, interval time.Duration) (int, string, error) {
	out, err := tb.Run(ctx, testbed.H1, "ping", "-n", "-q", "-c", fmt.Sprint(n), "-i", fmt.Sprintf("%.3f", interval.Seconds()),
		"-W", "1", dst.String())
	var sent, recv int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(strings.TrimSpace(l), "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	if sent == 0 {
		return n, out, fmt.Errorf("ping: %v: %s", err, out)
	}
	return sent - recv, out, nil
}

// marker is written into every 4 KiB of a transfer; it must never be seen on the wire.
var marker = []byte("XDPSEC-IKE-PLAINTEXT-MARKER-7c1e")

// transfer sends size pseudo-random bytes from h1 to dst over TCP and returns both ends' SHA-256.
func transfer(ctx context.Context, tb *testbed.Testbed, dst netip.Addr, size int64) (sent, got [32]byte, err error) {
	conn, res, err := tb.DialSink(dst, 2*time.Minute)
	if err != nil {
		return
	}
	defer conn.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{9})
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
	if err = conn.(*net.TCPConn).CloseWrite(); err != nil {
		return
	}
	select {
	case r := <-res:
		if r.N != size && r.Err == nil {
			r.Err = fmt.Errorf("received %d of %d bytes", r.N, size)
		}
		return sent, r.Sum, r.Err
	case <-ctx.Done():
		return sent, got, ctx.Err()
	}
}

func startCapture(ctx context.Context, t testing.TB, tb *testbed.Testbed, file string) *testbed.Capture {
	t.Helper()
	return startCaptureSnap(ctx, t, tb, file, 0)
}

// startCaptureSnap captures the wire between the gateways, the first snap bytes of each packet (0:
// whole packets).
func startCaptureSnap(ctx context.Context, t testing.TB, tb *testbed.Testbed, file string, snap int) *testbed.Capture {
	t.Helper()
	c, err := tb.StartCapture(ctx, file, snap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// wire is what a capture of the gw1–gw2 link held.
type wire struct {
	esp, espInUDP, ike, linkLocal int
	plain                         []string // anything else
	marker                        int
	// per SPI: every (sequence number, IV) seen, to find repeats; and the number of packets
	seqs    map[uint32]map[uint32]int
	ivs     map[uint32]map[uint64]int
	perSPI  map[uint32]int
	repeats []string
}

// readWire classifies every frame of a capture and records, per SPI, each sequence number and
// each 8-byte IV (the AEAD suites' explicit IV) it carried.
func readWire(t testing.TB, file string) *wire {
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
	w := &wire{seqs: map[uint32]map[uint32]int{}, ivs: map[uint32]map[uint64]int{}, perSPI: map[uint32]int{}}
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
		w.frame(data)
	}
	return w
}

func (w *wire) frame(data []byte) {
	if len(data) < 14 {
		w.plain = append(w.plain, "runt")
		return
	}
	var proto byte
	var l4 int
	switch binary.BigEndian.Uint16(data[12:]) {
	case 0x0806:
		w.linkLocal++
		return
	case 0x0800:
		if len(data) < 34 {
			w.plain = append(w.plain, "truncated IPv4")
			return
		}
		proto, l4 = data[23], 14+int(data[14]&0xf)*4
	case 0x86dd:
		if len(data) < 54 {
			w.plain = append(w.plain, "truncated IPv6")
			return
		}
		proto, l4 = data[20], 54
		if proto == 58 && data[54] >= 130 && data[54] <= 143 { // ND, MLD
			w.linkLocal++
			return
		}
	default:
		w.plain = append(w.plain, fmt.Sprintf("ethertype 0x%04x", binary.BigEndian.Uint16(data[12:])))
		return
	}
	switch {
	case proto == 50 && len(data) >= l4+16:
		w.esp++
		w.espHeader(data[l4:])
	case proto == 17 && len(data) >= l4+8:
		sport, dport := binary.BigEndian.Uint16(data[l4:]), binary.BigEndian.Uint16(data[l4+2:])
		switch {
		case sport == 500 && dport == 500:
			w.ike++
		case (sport == 4500 || dport == 4500) && len(data) >= l4+12 && binary.BigEndian.Uint32(data[l4+8:]) == 0:
			w.ike++ // non-ESP marker: IKE
		case (sport == 4500 || dport == 4500) && len(data) >= l4+24:
			w.espInUDP++
			w.espHeader(data[l4+8:])
		default:
			w.plain = append(w.plain, fmt.Sprintf("UDP %d → %d", sport, dport))
		}
	default:
		w.plain = append(w.plain, fmt.Sprintf("IP protocol %d, %d bytes", proto, len(data)))
	}
}

func (w *wire) espHeader(esp []byte) {
	spi, seq := binary.BigEndian.Uint32(esp), binary.BigEndian.Uint32(esp[4:])
	iv := binary.BigEndian.Uint64(esp[8:])
	if w.seqs[spi] == nil {
		w.seqs[spi], w.ivs[spi] = map[uint32]int{}, map[uint64]int{}
	}
	w.perSPI[spi]++
	if w.seqs[spi][seq]++; w.seqs[spi][seq] == 2 {
		w.repeats = append(w.repeats, fmt.Sprintf("spi %08x: sequence number %d twice", spi, seq))
	}
	if w.ivs[spi][iv]++; w.ivs[spi][iv] == 2 {
		w.repeats = append(w.repeats, fmt.Sprintf("spi %08x: IV %016x twice", spi, iv))
	}
}

// charonDir is where a charon of the test keeps its files: under the test's directory, named after
// the gateway, kept in build/ when the test fails.
func charonDir(t testing.TB, base string, n testbed.Node) string {
	return filepath.Join(base, string(n))
}

// keepLogs copies the charons' logs to build/ike-test/<test>/ when the test failed (or
// XDPSEC_IKE_KEEP=1).
func keepLogs(t testing.TB, cs ...*ikebed.Charon) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("XDPSEC_IKE_KEEP") != "1" {
			return
		}
		root, err := ikebed.Root()
		if err != nil {
			return
		}
		dir := filepath.Join(root, "build", "ike-test", t.Name())
		_ = os.MkdirAll(dir, 0o755)
		for _, c := range cs {
			if c != nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(c.Dir)+".log"), []byte(c.Log()), 0o644)
			}
		}
		t.Logf("charon logs kept in %s", dir)
	})
}
