package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/manager"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
)

// daemonConfig is the configuration of the daemon the CLI tests talk to.
const daemonConfig = `instance: clitest
interfaces: {protected: lan0, wire: wan0}
policies:
  - {name: lan-out, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, proto: any, priority: 100, action: protect, sa: gw1-to-gw2}
  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, priority: 10, action: bypass}
sas:
  - name: gw1-to-gw2
    spi: 0x00001001
    src: 198.18.0.1
    dst: 198.19.0.1
    reqid: 1
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "0x0102030405060708090a0b0c0d0e0f1011121314", icv_bits: 128}
    lifetime: {soft_bytes: 1000, hard_bytes: 2000}
`

const testKey = "0xa102030405060708090a0b0c0d0e0f1011121314"

// testKey2 is a second SA's key: the SAD refuses two SAs under one AEAD key.
const testKey2 = "0xb202030405060708090a0b0c0d0e0f1011121314"

// cliDaemon is a control plane on a fake card serving the API on a socket in a private directory.
type cliDaemon struct {
	socket, configPath string
	m                  *manager.Manager
	card               *fakecard.Card
}

func startDaemon(t *testing.T) *cliDaemon {
	t.Helper()
	return startDaemonWith(t, filepath.Join(t.TempDir(), "run", "api.sock"), daemonConfig)
}

// startDaemonAt starts a daemon on the test configuration at socket (another daemon's socket path
// once that one stopped: a restart).
func startDaemonAt(t *testing.T, socket string) *cliDaemon {
	t.Helper()
	return startDaemonWith(t, socket, daemonConfig)
}

// startDaemonWith starts a control plane on a fake card for the configuration text, serving the
// API at socket.
func startDaemonWith(t *testing.T, socket, text string) *cliDaemon {
	t.Helper()
	dir := t.TempDir()
	d := &cliDaemon{socket: socket, configPath: filepath.Join(dir, "gw.yaml")}
	if err := os.WriteFile(d.configPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(d.configPath)
	if err != nil {
		t.Fatal(err)
	}
	d.card = fakecard.New("lan0", "wan0")
	d.m, err = manager.New(cfg, d.card, manager.Options{Socket: d.socket, NoPoller: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { d.m.Close(); cancel() })
	if err := d.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d.sync(t)
	return d
}

func (d *cliDaemon) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// cli runs the binary's command line against the daemon and returns exit code, stdout and stderr.
func (d *cliDaemon) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--socket", d.socket}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// ok runs a command that must succeed.
func (d *cliDaemon) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := d.cli(t, args...)
	if code != 0 {
		t.Fatalf("xdpsec %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs a command that must fail with code and a message containing want.
func (d *cliDaemon) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	c, out, errOut := d.cli(t, args...)
	if c != code || !strings.Contains(errOut, want) {
		t.Fatalf("xdpsec %s: exit %d (want %d), stderr %q (want …%s…), stdout %q",
			strings.Join(args, " "), c, code, errOut, want, out)
	}
}

func TestSACommands(t *testing.T) {
	d := startDaemon(t)
	add := strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x2002 reqid 1 mode tunnel " +
		"aead rfc4106(gcm(aes)) " + testKey + " 128 replay-window 64 limit byte-hard 5000 name rekeyed offload dev wan0")
	d.ok(t, add...)
	d.sync(t)

	out := d.ok(t, "sa", "list")
	for _, want := range []string{"spi 0x00001001", "spi 0x00002002", "name rekeyed owner cli index 2 state mature direction out",
		"[key hidden]", "wan0 offloaded", "lan0 offloaded (held in the card's table shared with wan0)", "[list wan0]"} {
		if !strings.Contains(out, want) {
			t.Errorf("sa list lacks %q:\n%s", want, out)
		}
	}
	// The card's tables serve both interfaces: an SA whose list leaves out the wire is refused on both.
	d.ok(t, strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x3003 reqid 3 mode tunnel "+
		"aead rfc4106(gcm(aes)) "+testKey2+" 128 name lan-only offload dev lan0")...)
	d.sync(t)
	if out := d.ok(t, "sa", "get", "lan-only"); !strings.Contains(out, "lan0 refused (not_in_offload_list: ") ||
		!strings.Contains(out, "wan0 refused (not_in_offload_list: ") {
		t.Errorf("sa without the wire interface in its list:\n%s", out)
	}
	d.ok(t, "sa", "del", "lan-only")
	if strings.Contains(out, testKey) {
		t.Fatal("sa list printed a key without --show-keys")
	}
	if out := d.ok(t, "sa", "list", "--show-keys"); !strings.Contains(out, testKey) {
		t.Fatalf("--show-keys did not print the key:\n%s", out)
	}
	d.card.Traffic(2, 3, 300, time.Now())
	if err := d.m.Poller().Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	out = d.ok(t, "sa", "list", "-s")
	for _, want := range []string{"lifetime config:", "limit: soft (INF)(bytes), hard 5000(bytes)",
		"300(bytes), 3(packets)", "replay 0 integrity 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("sa list -s lacks %q:\n%s", want, out)
		}
	}
	var views []api.SAView
	if err := json.Unmarshal([]byte(d.ok(t, "sa", "list", "-o", "json")), &views); err != nil || len(views) != 2 {
		t.Fatalf("sa list -o json: %v %d", err, len(views))
	}
	if views[0].AEAD == nil || views[0].AEAD.Key != nil {
		t.Fatal("json listing leaked a key")
	}

	out = d.ok(t, "sa", "get", "rekeyed")
	if !strings.Contains(out, "spi 0x00002002") || !strings.Contains(out, "lifetime current:") {
		t.Fatalf("sa get:\n%s", out)
	}
	d.ok(t, "sa", "get", "src", "198.18.0.1", "dst", "198.19.0.1", "proto", "esp", "spi", "0x1001")

	upd := append(strings.Fields("sa update"), add[2:]...)
	upd = append(upd, "limit", "byte-hard", "9000")
	d.ok(t, upd...)
	if out := d.ok(t, "sa", "get", "rekeyed", "-o", "json"); !strings.Contains(out, `"hard_bytes": 9000`) {
		t.Fatalf("update not applied:\n%s", out)
	}

	d.ok(t, "sa", "del", "dst", "198.19.0.1", "proto", "esp", "spi", "0x2002")
	d.sync(t)
	if out := d.ok(t, "sa", "list"); strings.Contains(out, "0x00002002") {
		t.Fatal("deleted SA still listed")
	}
	if out := d.ok(t, "sa", "flush"); !strings.Contains(out, "deleted 1 SAs") {
		t.Fatalf("flush: %s", out)
	}
	d.sync(t)
	if out := d.ok(t, "sa", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("after flush: %s", out)
	}
}

func TestSAErrors(t *testing.T) {
	d := startDaemon(t)
	dup := strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 aead rfc4106(gcm(aes)) " + testKey + " 128")
	d.fails(t, exitFailure, "already exists", dup...)
	d.fails(t, exitUsage, "spi SPI is required", "sa", "add", "src", "198.18.0.1", "dst", "198.19.0.1")
	d.fails(t, exitUsage, `unknown keyword "bogus"`, "sa", "add", "bogus")
	d.fails(t, exitUsage, `"nowhere" is not an IPv4 or IPv6 address`, "sa", "add", "src", "nowhere")
	short := strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 spi 0x3003 aead rfc4106(gcm(aes)) 0x0102 128")
	d.fails(t, exitFailure, "aead.key", short...)
	d.fails(t, exitFailure, "not found", "sa", "get", "nosuch")
	d.fails(t, exitFailure, "not found", "sa", "del", "nosuch")
	chg := strings.Fields("sa update src 198.18.0.1 dst 198.19.0.1 spi 0x1001 aead rfc4106(gcm(aes)) " + testKey + " 128")
	d.fails(t, exitFailure, "cannot be changed", chg...)
	d.fails(t, exitUsage, "name the SA", "sa", "del", "spi", "5", "src", "198.18.0.1")
	d.fails(t, exitFailure, `no interface "eth9" in this instance (lan0, wan0)`, strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 "+
		"proto esp spi 0x4004 aead rfc4106(gcm(aes)) "+testKey+" 128 offload dev eth9")...)
	var out, errOut bytes.Buffer
	code := run([]string{"--socket", filepath.Join(t.TempDir(), "none.sock"), "sa", "list"}, strings.NewReader(""), &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "is `xdpsec run` running?") {
		t.Fatalf("no daemon: exit %d, %q", code, errOut.String())
	}
}
