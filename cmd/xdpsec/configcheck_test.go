package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

const ccKey = "0x000102030405060708090a0b0c0d0e0fcafebabe"

// manyProblems holds one of each kind of problem `config check` finds, on the lines the test
// expects them (the line numbers are part of the test).
var manyProblems = `instance: gw1
interfaces: {protected: xs-cc-lan, wire: xs-cc-wan}
capacities: {policies: 4, sas: 4}
dataplane: {umem_frames: 1000}
policies:
  - {name: lan-out, dir: out, src: 198.18.1.0/33, dst: 198.18.2.0/24, action: protect, sa: gw1-to-gw2}
  - {name: lan-in, dir: in, src: 198.18.2.0/24, dst: 198.18.1.0/24, action: protect, sa: gw2-to-gw9}
  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, priority: 10, action: bypass}
  - {name: p4, dir: out, src: 198.18.1.0/24, dst: 198.18.4.0/24, action: protect, sa: s4}
  - {name: p5, dir: out, src: 198.18.1.0/24, dst: 198.18.5.0/24, action: protect, sa: s5}
  - {name: p6, dir: out, src: 198.18.1.0/24, dst: 198.18.6.0/24, action: protect, sa: lan-only}
sas:
  - name: gw1-to-gw2
    spi: 0x1001
    src: 198.19.0.1
    dst: 198.19.0.2
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "0x0102"}
  - {name: s4, spi: 0x1004, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, aead: {alg: aes-gcm-128, key: "` + ccKeyN(1) + `"}}
  - {name: s5, spi: 0x1005, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, tfc_pad: 4000, aead: {alg: aes-gcm-128, key: "` + ccKeyN(2) + `"}}
  - {name: lan-only, spi: 0x1006, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, offload: [xs-cc-lan], aead: {alg: aes-gcm-128, key: "` + ccKeyN(3) + `"}}
  - {name: extra, spi: 0x1007, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, aead: {alg: aes-gcm-128, key: "` + ccKeyN(4) + `"}}
`

// wantProblem is one expected finding: where (line 0: the file as a whole), how bad, and words of
// its message.
type wantProblem struct {
	line                 int
	section, name, field string
	severity             string
	words                string
}

// ccKeyN is a key of its own for the n-th SA of a file: the SAD refuses two SAs under one AEAD key.
func ccKeyN(n int) string { return fmt.Sprintf("%s%02x", ccKey[:len(ccKey)-2], n) }

func (w wantProblem) key() string {
	return fmt.Sprintf("%d/%s/%s/%s/%s", w.line, w.section, w.name, w.field, w.severity)
}

func writeConfig(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkProblems runs `config check -o json` and compares every finding with want, exactly: each
// at its line and field, nothing more. It returns the text output of the same check.
func checkProblems(t *testing.T, path string, want []wantProblem, args ...string) string {
	t.Helper()
	code, out, errOut := cliRun(append([]string{"config", "check", "-c", path, "-o", "json"}, args...)...)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s\nstderr: %s", err, out, errOut)
	}
	errs := 0
	for _, w := range want {
		if w.severity == "error" {
			errs++
		}
	}
	wantCode := exitOK
	if errs > 0 {
		wantCode = exitFailure
	}
	if code != wantCode || rep.OK != (errs == 0) || rep.Errors != errs || rep.Warnings != len(want)-errs || rep.File != path {
		t.Errorf("exit %d ok %v errors %d warnings %d file %q; want exit %d, %d errors, %d warnings, file %q",
			code, rep.OK, rep.Errors, rep.Warnings, rep.File, wantCode, errs, len(want)-errs, path)
	}
	var got []string
	for _, p := range rep.Problems {
		got = append(got, wantProblem{p.Line, p.Section, p.Name, p.Field, p.Severity, ""}.key()+" "+p.Message)
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(g string) bool { return strings.HasPrefix(g, w.key()+" ") && strings.Contains(g, w.words) })
		if i < 0 {
			t.Errorf("no finding %s …%s…", w.key(), w.words)
			continue
		}
		got = slices.Delete(got, i, i+1)
	}
	for _, g := range got {
		t.Errorf("unexpected finding %s", g)
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	code, text, _ := cliRun(append([]string{"config", "check", "-c", path}, args...)...)
	if code != wantCode {
		t.Errorf("text output: exit %d, want %d", code, wantCode)
	}
	return text
}

// TestConfigCheckReportsEverything seeds one file with a problem of each kind the check finds —
// the file's mode, a bad value, a short key, an unknown SA, missing interfaces, a bad dataplane
// setting, more policies than capacities.policies, an SA beyond capacities.sas, an offload list
// without the wire interface, a tfc_pad no packet fits, an SA no policy uses — and expects each one,
// located, and nothing else.
func TestConfigCheckReportsEverything(t *testing.T) {
	path := writeConfig(t, manyProblems, 0o644)
	text := checkProblems(t, path, []wantProblem{
		{0, "", "", "", "error", "mode 0644 lets group and others read its keys"},
		{2, "", "", "interfaces.protected", "warning", `no interface "xs-cc-lan" on this machine`},
		{2, "", "", "interfaces.wire", "warning", `no interface "xs-cc-wan" on this machine`},
		{4, "", "", "dataplane.umem_frames", "error", "power of two"},
		{6, "policy", "lan-out", "src", "error", `prefix "198.18.1.0/33"`},
		{7, "policy", "lan-in", "sa", "error", `unknown sa "gw2-to-gw9"`},
		{11, "policy", "p6", "", "error", "xdpsec run would refuse to start: add policy: no free index: the SPD holds its maximum of 3 policies (capacities.policies 4 holds 3 policies"},
		{18, "sa", "gw1-to-gw2", "aead.key", "error", "got 2: wrong key length"},
		{20, "sa", "s5", "tfc_pad", "error", "4000: no packet fits: padded to it, an ESP packet of this SA has at least"},
		{21, "sa", "lan-only", "", "error", "the card would refuse it: on xs-cc-lan, xs-cc-wan: not_in_offload_list"},
		{22, "sa", "extra", "", "warning", "no policy uses it (by name)"},
		{22, "sa", "extra", "", "error", "the card would refuse it: on xs-cc-lan, xs-cc-wan: table_full: sa index 4 is beyond the card's 4 slots (capacities.sas 4 holds 3 SAs)"},
	})
	for _, want := range []string{
		path + ": unsafe configuration file: mode 0644",
		path + ":2: warning: interfaces.protected: no interface",
		path + `:6: policy "lan-out": src: invalid value: prefix "198.18.1.0/33"`,
		path + `:18: sa "gw1-to-gw2": aead.key: `,
		path + `:22: warning: sa "extra": no policy uses it`,
		path + ": 9 errors, 3 warnings\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, ccKey[2:len(ccKey)-2]) {
		t.Error("the check printed a key")
	}
}

func TestConfigCheckGoodFile(t *testing.T) {
	path := writeConfig(t, readmeConfig(t), 0o600)
	// Interfaces this machine lacks are warnings: the file can be checked before it is deployed.
	text := checkProblems(t, path, []wantProblem{
		{2, "", "", "interfaces.protected", "warning", `no interface "gw1-lan"`},
		{2, "", "", "interfaces.wire", "warning", `no interface "gw1-wan"`},
	})
	if !strings.HasSuffix(text, path+": ok, 2 warnings\n") {
		t.Errorf("text output:\n%s", text)
	}
}

func TestConfigCheckUsage(t *testing.T) {
	if code, _, errOut := cliRun("config", "check"); code != exitUsage || !strings.Contains(errOut, "-c FILE") {
		t.Errorf("without -c: exit %d, %q", code, errOut)
	}
	code, out, _ := cliRun("config", "check", "-c", filepath.Join(t.TempDir(), "none.yaml"))
	if code != exitFailure || !strings.Contains(out, "none.yaml: open: no such file or directory") {
		t.Errorf("missing file: exit %d, %q", code, out)
	}
	// A file that is not YAML stops at its first error, and says where.
	path := writeConfig(t, "sas: [\n", 0o600)
	if code, out, _ := cliRun("config", "check", "-c", path); code != exitFailure || !strings.Contains(out, path+":1: not valid YAML") {
		t.Errorf("not YAML: exit %d, %q", code, out)
	}
}

// With --netns the interfaces are looked up in that namespace: present, they give no warning, and
// the wire MTU decides whether tfc_pad leaves room for a packet; an SA towards one of the
// gateway's addresses that no policy serves is inbound, and refused.
func TestConfigCheckNetns(t *testing.T) {
	testutil.RequireRoot(t, "creates a network namespace with the configuration's interfaces")
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	ns := "xs-cfgchk-" + hex.EncodeToString(rnd[:])
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("-n", ns, "link", "add", "xs-cc-lan", "type", "veth", "peer", "name", "xs-cc-wan")
	ip("-n", ns, "link", "set", "xs-cc-wan", "mtu", "1400")
	ip("-n", ns, "addr", "add", "198.19.0.1/24", "dev", "xs-cc-wan")
	path := writeConfig(t, `interfaces: {protected: xs-cc-lan, wire: xs-cc-wan}
policies:
  - {name: out, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: padded}
sas:
  - {name: padded, spi: 0x1001, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, tfc_pad: 1360, aead: {alg: aes-gcm-128, key: "`+ccKeyN(5)+`"}}
  - {name: to-us, spi: 0x2001, src: 198.19.0.2, dst: 198.19.0.1, mode: tunnel, aead: {alg: aes-gcm-128, key: "`+ccKeyN(6)+`"}}
`, 0o600)
	checkProblems(t, path, []wantProblem{
		// 20 (outer IPv4) + 8 (ESP header) + 8 (IV) + 1360 + 2 (padding to 4 bytes) + 2 (trailer) + 16 (ICV)
		{5, "sa", "padded", "tfc_pad", "error", "1360: no packet fits: padded to it, an ESP packet of this SA has at least 1416 bytes, more than the MTU 1400 of xs-cc-wan"},
		{6, "sa", "to-us", "", "warning", "no policy uses it"},
		{6, "sa", "to-us", "", "error", "the card would refuse it: on xs-cc-lan, xs-cc-wan: no_inbound_policy"},
	}, "--netns", ns)
	if code, _, errOut := cliRun("config", "check", "-c", path, "--netns", ns+"-none"); code != exitFailure ||
		!strings.Contains(errOut, "open network namespace "+ns+"-none") {
		t.Errorf("unknown namespace: exit %d, %q", code, errOut)
	}
}
