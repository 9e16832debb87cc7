package config

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/xdpsec/xdpsec/ipsec"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/crypto/esp"
)

// Keys used by the tests; their hex must never show up in any printed form.
const (
	gcmKey    = "0x000102030405060708090a0b0c0d0e0fcafebabe"
	chachaKey = "0x808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f00000007"
	cbcKey    = "0x2122232425262728292a2b2c2d2e2f30"
	hmacKey   = "0x4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60"
)

// docExample returns the YAML example of docs/config.md, so the
// documentation cannot drift from what the parser accepts.
func docExample(t *testing.T) []byte {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Full example\n\n```yaml\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("docs/config.md has no ```yaml block under \"## Full example\"")
	}
	return m[1]
}

func TestDocExample(t *testing.T) {
	c, err := Parse("config.md", docExample(t))
	if err != nil {
		t.Fatalf("the documented example does not parse:\n%v", err)
	}
	if err := c.RequireDataplane(); err != nil {
		t.Fatal(err)
	}
	if c.Instance != "gw1" || c.Interfaces.Wire != "gw1-wan" || len(c.SAs) != 4 || len(c.Policies) != 8 {
		t.Fatalf("unexpected content: %+v", c)
	}
	sa := c.SA("gw1-to-gw2")
	if sa.SPI != 0x1001 || !sa.ESN || sa.Window() != 128 || sa.Lifetime.HardAddSeconds != 3600 ||
		sa.AEAD.Key.Len() != 20 || sa.Dst.String() != "198.19.0.2" || sa.Offload[0] != "gw1-wan" {
		t.Fatalf("gw1-to-gw2 decoded wrong: %+v", sa)
	}
	v6 := c.SA("gw1-to-gw2-v6")
	if v6.SPI != 4098 || v6.Encap == nil || v6.Encap.Sport != 4500 || v6.TTL != 32 || v6.TFCPad != 256 {
		t.Fatalf("gw1-to-gw2-v6 decoded wrong: %+v", v6)
	}
	if enc := c.SA("gw2-to-gw1-v6").Encap; enc.Sport != 4500 || enc.Dport != 4500 {
		t.Fatalf("encap ports not defaulted: %+v", enc)
	}
	p := c.Policy("high-ports")
	if p.Proto.Proto != ipsec.ProtoTCP || p.Dport.PortRange != ipsec.Ports(1024, 65535) || !p.Sport.IsAny() {
		t.Fatalf("high-ports decoded wrong: %+v", p)
	}
	if ping := c.Policy("no-ping"); ping.ICMPType == nil || *ping.ICMPType != 8 || ping.ICMPCode != nil {
		t.Fatalf("no-ping decoded wrong: %+v", ping)
	}
	if c.Daemon.PollInterval.Duration != time.Second || c.Daemon.Metrics != "127.0.0.1:9585" {
		t.Fatalf("daemon decoded wrong: %+v", c.Daemon)
	}
	for i := range c.SAs {
		p, err := c.SAs[i].ESPParams()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := esp.New(p); err != nil {
			t.Fatalf("esp.New(%s): %v", c.SAs[i].Name, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("min.yaml", []byte(`
sas:
  - {name: a, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: transport,
     enc: {alg: "cbc(aes)", key: "`+cbcKey+`"}, auth: {alg: "hmac(sha256)", key: "`+hmacKey+`"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	sa := c.SAs[0]
	if c.Instance != DefaultInstance || c.Capacities.SAs != DefaultSAs || c.Capacities.FlowCache != DefaultFlowCache ||
		c.Dataplane.UMEMFrames != DefaultUMEMFrames || c.Dataplane.XDPMode != XDPAuto ||
		c.Daemon.Socket != "/run/xdpsec/xdpsec.sock" || c.OnExit != OnExitGuard || c.DefaultVerdict.In.Action != ipsec.ActionBypass || c.DefaultVerdict.Out.Action != ipsec.ActionBypass ||
		sa.Window() != DefaultReplayWindow || sa.TTL != DefaultTTL || sa.DF != DFCopy || sa.Auth.TruncBits != 128 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	// Issue 3: by default the card has room for at least 16,384 policies and 65,536 SAs.
	if c.Capacities.Policies < 16384 || c.Capacities.SAs < 65536 {
		t.Fatalf("default capacities %d policies, %d SAs: want at least 16,384 and 65,536",
			c.Capacities.Policies, c.Capacities.SAs)
	}
	if err := c.SetInstance("gw9"); err != nil || c.Daemon.Socket != "/run/xdpsec/gw9.sock" {
		t.Fatalf("SetInstance: %v, socket %s", err, c.Daemon.Socket)
	}
	if err := c.SetInstance("../x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetInstance(../x) = %v", err)
	}
	if err := c.RequireDataplane(); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "interfaces.protected") {
		t.Fatalf("RequireDataplane = %v, want missing interfaces", err)
	}
	zero, err := Parse("w.yaml", []byte(`
sas:
  - {name: a, spi: 300, src: "2001:2::1", dst: "2001:2::2", mode: tunnel, replay_window: 0,
     aead: {alg: aes-gcm-128, key: "`+gcmKey+`"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if zero.SAs[0].Window() != 0 || zero.SAs[0].AEAD.ICVBits != 128 {
		t.Fatal("replay_window: 0 must disable the window, not fall back to the default")
	}
}

// The valid SA every error case starts from (by name, so cases can reference it).
const okSA = `{name: ok, spi: 0x1001, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: "rfc4106(gcm(aes))", key: "` + gcmKey + `"}}`

func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		is   error
		want []string // substrings of the message, beside the file name
	}{
		{"syntax", "sas: [", ErrSyntax, []string{"bad.yaml"}},
		{"empty", "", ErrInvalid, []string{"empty"}},
		{"two documents", "instance: a\n---\ninstance: b\n", ErrInvalid, []string{"more than one"}},
		{"unknown top field", "instnce: gw1\n", ErrUnknownField, []string{"bad.yaml:1:", `"instnce"`}},
		{"unknown sa field", "sas:\n  - name: x\n    spii: 0x1001\n", ErrUnknownField, []string{"bad.yaml:3:", `sa "x"`, `"spii"`}},
		{"unknown nested field", "sas:\n  - name: x\n    aead:\n      alg: aes-gcm\n      keys: 0x00\n", ErrUnknownField, []string{"bad.yaml:5:", `sa "x"`, "aead", `"keys"`}},
		{"unknown policy field", "policies:\n  - name: p\n    dirr: in\n", ErrUnknownField, []string{"bad.yaml:3:", `policy "p"`}},
		{"bad spi", "sas:\n  - name: x\n    spi: 0xzz\n", ErrInvalid, []string{"bad.yaml:3:", `sa "x"`, "spi"}},
		{"spi too big", "sas:\n  - name: x\n    spi: 4294967296\n", ErrInvalid, []string{"bad.yaml:3:", "spi"}},
		{"reserved spi", "sas:\n  - " + strings.Replace(okSA, "0x1001", "255", 1), ErrInvalid, []string{`sa "ok"`, "spi", "reserved"}},
		{"bad key hex", "sas:\n  - name: x\n    aead: {alg: aes-gcm, key: 0xqq}\n", ErrInvalid, []string{"bad.yaml:3:", `sa "x"`, "key"}},
		{"odd key", "sas:\n  - name: x\n    aead: {alg: aes-gcm, key: 0x123}\n", ErrInvalid, []string{"odd number"}},
		{"key without 0x", "sas:\n  - name: x\n    aead: {alg: aes-gcm, key: \"0102\"}\n", ErrInvalid, []string{"want 0x"}},
		{"bad address", "sas:\n  - name: x\n    src: 198.18.0.300\n", ErrInvalid, []string{"bad.yaml:3:", "198.18.0.300"}},
		{"bad mode", "sas:\n  - name: x\n    mode: tunel\n", ErrInvalid, []string{"bad.yaml:3:", `"tunel"`, "tunnel or transport"}},
		{"bad on_exit", "on_exit: leave\n", ErrInvalid, []string{"bad.yaml:1:", "on_exit", `"leave"`, "want guard, detach"}},
		{"wrong type", "sas:\n  - name: x\n    esn: maybe\n", ErrInvalid, []string{"bad.yaml:3:", `sa "x"`, "esn", "true or false"}},
		{"number out of range", "sas:\n  - name: x\n    ttl: 300\n", ErrInvalid, []string{"bad.yaml:3:", "ttl", "0-255"}},
		{"missing name", "sas:\n  - {spi: 0x1001, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: aes-gcm, key: \"" + gcmKey + "\"}}\n",
			ErrMissing, []string{"sa #1", "name"}},
		{"missing spi", "sas:\n  - {name: x, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: aes-gcm, key: \"" + gcmKey + "\"}}\n",
			ErrMissing, []string{`sa "x"`, "spi"}},
		{"missing dst", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, mode: tunnel, aead: {alg: aes-gcm, key: \"" + gcmKey + "\"}}\n",
			ErrMissing, []string{`sa "x"`, "dst"}},
		{"missing mode", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, aead: {alg: aes-gcm, key: \"" + gcmKey + "\"}}\n",
			ErrMissing, []string{`sa "x"`, "mode"}},
		{"missing algorithm", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel}\n",
			ErrMissing, []string{`sa "x"`, "aead"}},
		{"enc without auth", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: \"cbc(aes)\", key: \"" + cbcKey + "\"}}\n",
			ErrMissing, []string{`sa "x"`, "auth", "integrity"}},
		{"aead and enc", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: aes-gcm, key: \"" + gcmKey + "\"}, enc: {alg: \"cbc(aes)\", key: \"" + cbcKey + "\"}}\n",
			ErrConflict, []string{`sa "x"`, "aead"}},
		{"unknown aead", "sas:\n  - " + strings.Replace(okSA, "rfc4106(gcm(aes))", "gcm(aes)", 1), ErrUnknownAlgorithm, []string{`sa "ok"`, "aead.alg", "gcm(aes)"}},
		{"unknown enc", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: \"cbc(des)\", key: \"" + cbcKey + "\"}, auth: {alg: \"hmac(sha256)\", key: \"" + hmacKey + "\"}}\n",
			ErrUnknownAlgorithm, []string{`sa "x"`, "enc.alg"}},
		{"unknown auth", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: \"cbc(aes)\", key: \"" + cbcKey + "\"}, auth: {alg: \"hmac(md5)\", key: \"" + hmacKey + "\"}}\n",
			ErrUnknownAlgorithm, []string{`sa "x"`, "auth.alg"}},
		{"gcm key length", "sas:\n  - " + strings.Replace(okSA, "cafebabe", "", 1), ErrKeyLength, []string{`sa "ok"`, "aead.key", "got 16"}},
		{"gcm alias key length", "sas:\n  - " + strings.Replace(strings.Replace(okSA, "rfc4106(gcm(aes))", "aes-gcm-256", 1), "cafebabe", "", 1), ErrKeyLength, []string{"aead.key"}},
		{"chacha key length", "sas:\n  - " + strings.Replace(okSA, "rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)", 1), ErrKeyLength, []string{"aead.key", "36"}},
		{"cbc key length", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: \"cbc(aes)\", key: \"0x0102\"}, auth: {alg: \"hmac(sha256)\", key: \"" + hmacKey + "\"}}\n",
			ErrKeyLength, []string{`sa "x"`, "enc.key"}},
		{"hmac key length", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: \"cbc(aes)\", key: \"" + cbcKey + "\"}, auth: {alg: \"hmac(sha256)\", key: \"" + cbcKey + "\"}}\n",
			ErrKeyLength, []string{`sa "x"`, "auth.key"}},
		{"icv bits", "sas:\n  - " + strings.Replace(okSA, `"}}`, `", icv_bits: 64}}`, 1), ErrInvalid, []string{"aead.icv_bits"}},
		{"replay window", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, replay_window: 8", 1), ErrInvalid, []string{`sa "ok"`, "replay_window"}},
		{"seq needs esn", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, seq: 4294967296", 1), ErrInvalid, []string{"seq", "esn"}},
		{"sa family mismatch", "sas:\n  - " + strings.Replace(okSA, "dst: 198.18.0.2", `dst: "2001:2::2"`, 1), ErrFamilyMismatch, []string{`sa "ok"`, "dst"}},
		{"tfc in transport", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: transport, tfc_pad: 100", 1), ErrInvalid, []string{"tfc_pad"}},
		{"lifetime soft above hard", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, lifetime: {soft_packets: 10, hard_packets: 5}", 1), ErrInvalid, []string{"lifetime.soft_packets"}},
		{"bad sa name", "sas:\n  - " + strings.Replace(okSA, "name: ok", `name: "a b"`, 1), ErrInvalid, []string{"name"}},
		{"duplicate sa name", "sas:\n  - " + okSA + "\n  - " + strings.Replace(okSA, "0x1001", "0x1002", 1), ErrDuplicate, []string{"bad.yaml:3:", `sa "ok"`, "already defined"}},
		{"duplicate spi dst", "sas:\n  - " + okSA + "\n  - " + strings.Replace(okSA, "name: ok", "name: ok2", 1), ErrDuplicate, []string{"bad.yaml:3:", `sa "ok2"`, "spi", "0x00001001"}},
		{"encap type", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, encap: {type: espinudp-nonike}", 1), ErrInvalid, []string{"espinudp"}},
		{"offload unknown iface", "interfaces: {protected: lan0, wire: wan0}\nsas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, offload: [eth9]", 1), ErrInvalid, []string{`sa "ok"`, "offload", "eth9"}},
		{"offload twice", "interfaces: {protected: lan0, wire: wan0}\nsas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, offload: [wan0, wan0]", 1), ErrDuplicate, []string{"offload"}},

		{"encap without type", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: tunnel, encap: {sport: 4500}", 1), ErrMissing, []string{`sa "ok"`, "encap.type"}},
		{"yaml null as algorithm", "sas:\n  - {name: x, spi: 300, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, enc: {alg: null}, auth: {alg: \"hmac(sha256)\", key: \"" + hmacKey + "\"}}\n",
			ErrMissing, []string{`sa "x"`, "enc.alg"}},
		{"not a mapping", "- a\n- b\n", ErrInvalid, []string{"bad.yaml:1:", "want a mapping"}},
		{"sas not a list", "sas: {name: x}\n", ErrInvalid, []string{"bad.yaml:1:", "want a list"}},
		{"key as a list", "sas:\n  - name: x\n    aead: {alg: aes-gcm, key: [1, 2]}\n", ErrInvalid, []string{"bad.yaml:3:", "key: want a single value"}},
		{"bad instance", "instance: ../etc\n", ErrInvalid, []string{"bad.yaml:1:", "instance"}},
		{"one interface", "interfaces: {protected: lan0}\n", ErrMissing, []string{"interfaces.wire"}},
		{"same interfaces", "interfaces: {protected: lan0, wire: lan0}\n", ErrConflict, []string{"interfaces.wire"}},
		{"bad interface name", "interfaces: {protected: lan0, wire: averyveryverylongname}\n", ErrInvalid, []string{"interfaces.wire"}},
		{"capacity", "capacities: {sas: 99999999}\n", ErrInvalid, []string{"capacities.sas"}},
		{"umem frames", "dataplane: {umem_frames: 1000}\n", ErrInvalid, []string{"dataplane.umem_frames", "power of two"}},
		{"frame size", "dataplane: {frame_size: 1500}\n", ErrInvalid, []string{"dataplane.frame_size"}},
		{"xdp mode", "dataplane: {xdp_mode: offload}\n", ErrInvalid, []string{"xdp_mode"}},
		{"socket", "daemon: {socket: run/x.sock}\n", ErrInvalid, []string{"daemon.socket"}},
		{"metrics", "daemon: {metrics: 9585}\n", ErrInvalid, []string{"daemon.metrics"}},
		{"poll interval", "daemon: {poll_interval: soon}\n", ErrInvalid, []string{"duration"}},
		{"verdict", "default_verdict: {in: reject}\n", ErrInvalid, []string{"bad.yaml:1:", `"reject"`, "bypass or discard"}},
		{"verdict protect", "default_verdict: {out: protect}\n", ErrInvalid, []string{"default_verdict.out", "bypass or discard"}},

		{"policy unknown sa", "sas:\n  - " + okSA + "\npolicies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: nope}\n",
			ErrUnknownSA, []string{"bad.yaml:4:", `policy "p"`, "sa", `"nope"`}},
		{"policy protect without sa", "policies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect}\n",
			ErrMissing, []string{`policy "p"`, "sa"}},
		{"policy bypass with sa", "sas:\n  - " + okSA + "\npolicies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass, sa: ok}\n",
			ErrConflict, []string{`policy "p"`, "sa"}},
		{"policy reqid mismatch", "sas:\n  - " + okSA + "\npolicies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: ok, reqid: 7}\n",
			ErrConflict, []string{"reqid"}},
		{"policy sa both directions", "sas:\n  - " + okSA + "\npolicies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: ok}\n  - {name: q, dir: in, src: 198.18.2.0/24, dst: 198.18.1.0/24, action: protect, sa: ok}\n",
			ErrConflict, []string{`policy "q"`, "one direction"}},
		{"policy transport family", "sas:\n  - " + strings.Replace(okSA, "mode: tunnel", "mode: transport", 1) + "\npolicies:\n  - {name: p, dir: out, src: \"2001:2:1::/64\", dst: \"2001:2:2::/64\", action: protect, sa: ok}\n",
			ErrFamilyMismatch, []string{`policy "p"`, "transport"}},
		{"policy family", "policies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: \"2001:2::/48\", action: bypass}\n",
			ErrFamilyMismatch, []string{`policy "p"`, "dst"}},
		{"policy host bits", "policies:\n  - {name: p, dir: out, src: 198.18.1.5/24, dst: 198.18.2.0/24, action: bypass}\n",
			ErrInvalid, []string{"bad.yaml:2:", `policy "p"`, "198.18.1.0/24"}},
		{"policy bad prefix", "policies:\n  - {name: p, dir: out, src: 198.18.1.0/33, dst: 198.18.2.0/24, action: bypass}\n",
			ErrInvalid, []string{"198.18.1.0/33"}},
		{"policy missing src", "policies:\n  - {name: p, dir: out, dst: 198.18.2.0/24, action: bypass}\n", ErrMissing, []string{`policy "p"`, "src"}},
		{"policy missing dir", "policies:\n  - {name: p, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass}\n", ErrMissing, []string{"dir"}},
		{"policy missing action", "policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24}\n", ErrMissing, []string{"action"}},
		{"policy bad name", "policies:\n  - {name: \"-p\", dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass}\n", ErrInvalid, []string{"name", `"-p"`}},
		{"policy icmp code out of range", "policies:\n  - {name: p, proto: icmp, icmp_code: 256}\n", ErrInvalid, []string{"bad.yaml:2:", `policy "p"`, "0-255"}},
		{"policy bad dir", "policies:\n  - {name: p, dir: fwd}\n", ErrInvalid, []string{`"fwd"`}},
		{"policy bad action", "policies:\n  - {name: p, action: allowed}\n", ErrInvalid, []string{`"allowed"`}},
		{"policy bad proto", "policies:\n  - {name: p, proto: tcpp}\n", ErrInvalid, []string{`"tcpp"`}},
		{"policy port backwards", "policies:\n  - {name: p, proto: tcp, dport: 2000-1000}\n", ErrInvalid, []string{"backwards"}},
		{"policy port syntax", "policies:\n  - {name: p, proto: tcp, dport: 80-}\n", ErrInvalid, []string{"1000-2000"}},
		{"policy port 0", "policies:\n  - {name: p, proto: tcp, dport: 0}\n", ErrInvalid, []string{"omit"}},
		{"policy port too big", "policies:\n  - {name: p, proto: tcp, dport: 70000}\n", ErrInvalid, []string{"70000"}},
		{"policy ports without proto", "policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass, dport: 53}\n",
			ErrInvalid, []string{`policy "p"`, "dport", "no ports"}},
		{"policy icmp type with udp", "policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, proto: udp, icmp_type: 8, action: bypass}\n",
			ErrInvalid, []string{"icmp_type"}},
		{"policy icmp with ipv6", "policies:\n  - {name: p, dir: in, src: \"2001:2::/48\", dst: \"2001:2::/48\", proto: icmp, action: bypass}\n",
			ErrFamilyMismatch, []string{"proto", "ipv6-icmp"}},
		{"policy icmpv6 with ipv4", "policies:\n  - {name: p, dir: in, src: 198.18.0.0/15, dst: 198.18.0.0/15, proto: ipv6-icmp, action: bypass}\n",
			ErrFamilyMismatch, []string{"proto"}},
		{"duplicate policy name", "policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass}\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass}\n",
			ErrDuplicate, []string{"bad.yaml:3:", "already defined"}},
		{"duplicate selector", "policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass}\n  - {name: q, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: discard}\n",
			ErrDuplicate, []string{`policy "q"`, "priority", `policy "p"`}},
		{"policy offload", "interfaces: {protected: lan0, wire: wan0}\npolicies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: bypass, offload: [eth1]}\n",
			ErrInvalid, []string{`policy "p"`, "offload"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("bad.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; parsed %+v", c)
			}
			if c != nil {
				t.Error("a Config came back with an error")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			for _, w := range append(tc.want, "bad.yaml") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, k := range []string{gcmKey, chachaKey, cbcKey, hmacKey} {
				if strings.Contains(err.Error(), k[2:]) {
					t.Errorf("error message shows a key: %q", err)
				}
			}
		})
	}
}

// shortKeySA is SA "a" with a 2-byte AES-GCM key, in block style: six lines, the key on the last.
const shortKeySA = `  - name: a
    spi: 0x1001
    src: 198.18.0.1
    dst: 198.18.0.2
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "0x0102"}
`

// All problems come back at once, each located.
func TestErrorsCollected(t *testing.T) {
	_, err := Parse("gw.yaml", []byte(`instance: gw1
sas:
`+shortKeySA+`  - name: b
    spi: 12
    src: 198.18.0.1
    dst: "2001:2::1"
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "`+gcmKey+`"}
policies:
  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: c}
`))
	errs := located(t, err)
	got := fmt.Sprint(len(errs))
	for _, e := range errs {
		got += fmt.Sprintf(" %d/%s/%s/%s", e.Line, e.Section, e.Name, e.Field)
	}
	want := `3 8/sa/"a"/aead.key 12/sa/"b"/dst 16/policy/"p"/sa`
	if got != want {
		t.Fatalf("got %s\nwant %s\nerror:\n%v", got, want, err)
	}
	// Type errors are collected too, not only the first, each naming its field even on a line that
	// holds several; the fields they broke are not reported again as missing, while the fields
	// really missing are.
	_, err = Parse("gw.yaml", []byte("sas:\n  - {name: a, spi: x}\n  - {name: b, mode: y, esn: z}\n"))
	got = ""
	for _, ce := range located(t, err) {
		got += fmt.Sprintf("%d/%s/%v ", ce.Line, ce.Field, errors.Is(ce, ErrMissing))
	}
	want = "2/spi/false 2/src/true 2/dst/true 2/mode/true 2/aead/true " +
		"3/mode/false 3/esn/false 3/spi/true 3/src/true 3/dst/true 3/aead/true "
	if got != want {
		t.Fatalf("got  %s\nwant %s\nerror:\n%v", got, want, err)
	}
}

// located splits a joined error into its *Error values, failing on any other.
func located(t *testing.T, err error) []*Error {
	t.Helper()
	var errs []*Error
	for _, e := range unjoin(err) {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		errs = append(errs, ce)
	}
	return errs
}

// A value that does not parse hides nothing else in the file (issue 11: a bad prefix used to hide
// a short key and an unknown SA), not even on its own line, and is reported once.
func TestBadValueHidesNothing(t *testing.T) {
	_, err := Parse("gw.yaml", []byte(`sas:
`+shortKeySA+`policies:
  - {name: p, dir: out, src: 198.18.1.0/33, dst: 198.18.2.0/24, action: protect, sa: nope}
  - {name: q, dir: sideways, src: 198.18.1.0/24, dst: 198.18.2.0/24, proto: tcpx, dport: 80, action: protect, sa: a}
  - {name: r, dir: in, src: 198.18.2.0/24, dst: 198.18.1.0/24, action: passthrough, sa: gone}
`))
	var got []string
	for _, ce := range located(t, err) {
		got = append(got, fmt.Sprintf("%d %s %s: %v", ce.Line, ce.Name, ce.Field, ce.Err))
	}
	want := []string{
		`7 "a" aead.key: rfc4106(gcm(aes)) needs`,
		`9 "p" src: invalid value: prefix "198.18.1.0/33"`,
		`9 "p" sa: unknown sa "nope"`,
		`10 "q" dir: invalid value: dir "sideways"`,
		`10 "q" proto: invalid value: proto "tcpx"`,
		`11 "r" action: invalid value: action "passthrough"`,
		`11 "r" sa: unknown sa "gone"`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d: got %q, want it to begin %q", i, got[i], want[i])
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(good, docExample(t), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != good {
		t.Fatalf("File = %q", c.File)
	}
	if _, err := Load(filepath.Join(dir, "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sas:\n  - {name: x, spi: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: ") {
		t.Fatalf("error does not start with the file and line: %v", err)
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	c, err := Parse("config.md", docExample(t))
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, sa := range c.SAs {
		for _, k := range sa.Keys() {
			secrets = append(secrets, hex.EncodeToString(k.Bytes()), string(k.Bytes()), fmt.Sprint(k.Bytes()))
		}
	}
	sa := c.SAs[0]
	var outs []string
	for _, v := range []any{c, *c, sa, &sa, sa.AEAD, *sa.AEAD, sa.AEAD.Key, c.SAs[3].Auth, c.SAs} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), string(y))
	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("key material printed: %s", out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(sa.AEAD.Key), "20-byte key redacted") {
		t.Fatalf("placeholder missing: %v", sa.AEAD.Key)
	}
	if r := sa.AEAD.Key.Reveal(); r != "0x000102030405060708090a0b0c0d0e0fcafebabe" {
		t.Fatalf("Reveal = %q", r)
	}
}

func TestWipe(t *testing.T) {
	c, err := Parse("config.md", docExample(t))
	if err != nil {
		t.Fatal(err)
	}
	copyOfSA := c.SAs[3] // shares the key bytes
	var mem [][]byte     // the key memory itself, to look at after the wipe
	for _, sa := range c.SAs {
		for _, k := range sa.Keys() {
			mem = append(mem, k.Bytes())
		}
	}
	c.Wipe()
	for _, sa := range append(c.SAs, copyOfSA) {
		for _, k := range sa.Keys() {
			if k.Len() != 0 || k.Bytes() != nil {
				t.Fatalf("sa %s: key still readable after Wipe", sa.Name)
			}
		}
	}
	for i, m := range mem {
		if !bytes.Equal(m, make([]byte, len(m))) {
			t.Fatalf("key %d: its memory was not zeroed", i)
		}
	}
	c.Wipe() // twice is harmless
}

// A key with a bad digit: the error says where, and shows none of the key's characters.
func TestKeyErrorHidesDigits(t *testing.T) {
	const key = "0x8f3e9d2c7b1a6f5e4d3cg2b1a09f8e7d" // the 23rd character is a 'g'
	y := "sas:\n  - {name: x, spi: 0x1001, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, " +
		"aead: {alg: aes-gcm-128, key: " + key + "}}\n"
	_, err := Parse("gw.yaml", []byte(y))
	if err == nil || !strings.Contains(err.Error(), "character 23 is not a hex digit") {
		t.Fatalf("error %v does not name the position", err)
	}
	for i := 2; i+2 <= len(key); i++ {
		if w := key[i : i+2]; strings.Contains(err.Error(), w) {
			t.Errorf("the error %q shows key characters %q", err, w)
		}
	}
}

func TestESPParams(t *testing.T) {
	c, err := Parse("p.yaml", []byte(`
sas:
  - name: t
    spi: 0x1001
    src: 198.18.0.1
    dst: 198.18.0.2
    mode: transport
    enc:  {alg: "ecb(cipher_null)"}
    auth: {alg: "hmac(sha256)", key: "`+hmacKey+`"}
    esn: true
    seq: 4294967300
    replay_window: 64
    encap: {type: espinudp, sport: 4501}
    df: set
    ttl: 9
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.SAs[0].ESPParams()
	if err != nil {
		t.Fatal(err)
	}
	if p.SPI != 0x1001 || p.Mode != ipsec.ModeTransport || p.Enc.Name != "ecb(cipher_null)" || len(p.Enc.Key) != 0 ||
		len(p.Auth.Key) != 32 || p.Auth.TruncBits != 128 || !p.ESN || p.Seq != 4294967300 || p.ReplayWindow != 64 ||
		p.UDPEncap == nil || p.UDPEncap.SrcPort != 4501 || p.UDPEncap.DstPort != 4500 || p.DF != esp.DFSet || p.TTL != 9 ||
		p.Src.String() != "198.18.0.1" {
		t.Fatalf("wrong params: %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSelector(t *testing.T) {
	c, err := Parse("config.md", docExample(t))
	if err != nil {
		t.Fatal(err)
	}
	ping := c.Policy("no-ping").Selector()
	if ping.Proto != 1 || ping.SrcPorts != ipsec.Port(8) || !ping.DstPorts.IsAny() {
		t.Fatalf("icmp selector: %+v", ping)
	}
	hp := c.Policy("high-ports").Selector()
	if hp.DstPorts != ipsec.Ports(1024, 65535) || !hp.SrcPorts.IsAny() {
		t.Fatalf("port selector: %+v", hp)
	}
	for _, p := range c.Policies {
		if err := p.Selector().Validate(); err != nil {
			t.Errorf("policy %s: the SPD refuses the selector: %v", p.Name, err)
		}
	}
}

func TestDiff(t *testing.T) {
	base := string(docExample(t))
	old, err := Parse("old.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	same, err := Parse("same.yaml", []byte(strings.Replace(base, "    seq: 0\n", "    seq: 77\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(old, same); !d.Empty() {
		t.Fatalf("only seq differs, yet the diff is %+v", d)
	}
	edited := base
	for _, r := range [][2]string{
		{"cafebabe", "cafebabf"}, // gw1-to-gw2 key
		{"    replay_window: 1024\n", "    replay_window: 1024\n    lifetime: {hard_packets: 10}\n"}, // gw2-to-gw1 lifetime
		{"  - {name: ike-natt,", "  - {name: ike-nat-t,"},                                            // policy renamed
		{"dport: 1024-65535", "dport: 2048-65535"},                                                   // policy changed
		{"wire: gw1-wan}", "wire: gw1-wan2}"},                                                        // restart
		{"    offload: [gw1-wan]\n", "    offload: [gw1-wan2]\n"},
		{"default_verdict: {in: bypass, out: bypass}", "default_verdict: {in: discard, out: bypass}"},
	} {
		if !strings.Contains(edited, r[0]) {
			t.Fatalf("example lacks %q", r[0])
		}
		edited = strings.Replace(edited, r[0], r[1], 1)
	}
	nw, err := Parse("new.yaml", []byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	d := Diff(old, nw)
	var got []string
	for _, ch := range d.SAs {
		got = append(got, fmt.Sprintf("sa %s %s %v replace=%v", ch.Kind, ch.Name, ch.Fields, ch.Replaces()))
	}
	for _, ch := range d.Policies {
		got = append(got, fmt.Sprintf("sp %s %s %v", ch.Kind, ch.Name, ch.Fields))
	}
	got = append(got, fmt.Sprintf("restart %v verdict %v", d.Restart, d.DefaultVerdict))
	want := []string{
		"sa changed gw1-to-gw2 [aead offload] replace=true",
		"sa changed gw2-to-gw1 [lifetime] replace=false",
		"sp added ike-nat-t []",
		"sp changed high-ports [dport]",
		"sp removed ike-natt []",
		"restart [interfaces] verdict true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d.SAs[0].Old != old.SA("gw1-to-gw2") || d.SAs[0].New != nw.SA("gw1-to-gw2") {
		t.Fatal("Old/New do not point into the configurations")
	}
}

// TestPortsAgreeWithSPD: the config accepts a port on exactly the protocols the SPD (and the card)
// accept one on, so no file passes Parse and then fails in the SPD. A DCCP policy with a port used to.
func TestPortsAgreeWithSPD(t *testing.T) {
	for p := range 256 {
		file := fmt.Sprintf("policies:\n  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, proto: %d, dport: 5000, action: bypass}\n", p)
		c, perr := Parse("p.yaml", []byte(file))
		var serr error
		if perr == nil {
			_, serr = sadb.New(sadb.Options{}).AddPolicy(c.Policies[0].SADB())
		}
		switch proto := ipsec.Proto(p); {
		case proto.HasPorts() && (perr != nil || serr != nil):
			t.Errorf("proto %s with a port: config %v, SPD %v", proto, perr, serr)
		case !proto.HasPorts() && perr == nil:
			t.Errorf("proto %s with a port: the config accepts it (SPD: %v)", proto, serr)
		}
	}
	c, err := Parse("p.yaml", []byte("policies:\n  - {name: p, dir: in, src: 198.18.1.0/24, dst: 198.18.2.0/24, proto: dccp, dport: 5000-5001, action: discard}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := sadb.New(sadb.Options{}).AddPolicy(c.Policies[0].SADB()); err != nil || e.Sel.DstPorts != ipsec.Ports(5000, 5001) {
		t.Fatalf("dccp dport 5000-5001: %+v, %v", e.Sel, err)
	}
}

// TestDiffAgreesWithReload: for every field of an SA, Diff's promise (Replaces) is what a reload
// does: sadb.Compare, which the manager acts on, calls the change a replacement exactly when Diff
// says so, and an in-place change otherwise.
func TestDiffAgreesWithReload(t *testing.T) {
	base := "sas:\n  - name: a\n    spi: 0x1001\n    src: 198.18.0.1\n    dst: 198.18.0.2\n    mode: tunnel\n" +
		"    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x000102030405060708090a0b0c0d0e0f10111213\"}\n"
	for _, tc := range []struct {
		field, edit string
		replace     bool
	}{
		{"spi", "    spi: 0x1002\n", true},
		{"dst", "    dst: 198.18.0.3\n", true},
		{"aead", "    aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x000102030405060708090a0b0c0d0e0f10111214\"}\n", true},
		{"src", "    src: 198.18.0.9\n", false},
		{"mode", "    mode: transport\n", false},
		{"reqid", "    reqid: 7\n", false},
		{"esn", "    esn: true\n", false},
		{"replay_window", "    replay_window: 64\n", false},
		{"encap", "    encap: {type: espinudp}\n", false},
		{"lifetime", "    lifetime: {hard_packets: 10}\n", false},
		{"offload", "    offload: [wan0]\n", false},
		{"ttl", "    ttl: 9\n", false},
		{"df", "    df: set\n", false},
		{"tfc_pad", "    tfc_pad: 128\n", false},
	} {
		t.Run(tc.field, func(t *testing.T) {
			y := base
			key := tc.field + ":"
			if i := strings.Index(y, "    "+key); i >= 0 {
				j := i + strings.Index(y[i:], "\n") + 1
				y = y[:i] + tc.edit + y[j:]
			} else {
				y += tc.edit
			}
			old, err := Parse("old.yaml", []byte(base))
			if err != nil {
				t.Fatal(err)
			}
			nw, err := Parse("new.yaml", []byte(y))
			if err != nil {
				t.Fatalf("%v\n%s", err, y)
			}
			d := Diff(old, nw)
			if len(d.SAs) != 1 || !slices.Equal(d.SAs[0].Fields, []string{tc.field}) {
				t.Fatalf("diff %+v, want one SA with field %s", d.SAs, tc.field)
			}
			a, b := old.SAs[0].SADB(), nw.SAs[0].SADB()
			change, what := sadb.Compare(&a, &b)
			if got := d.SAs[0].Replaces(); got != tc.replace || (change == sadb.Replace) != tc.replace || change == sadb.Unchanged {
				t.Fatalf("Replaces %v, sadb.Compare %v (%s); want replace=%v", got, change, what, tc.replace)
			}
		})
	}
}

func TestMetricsAddr(t *testing.T) {
	for _, c := range []struct {
		addr   string
		public bool
		want   string // "" = allowed
	}{
		{"127.0.0.1:9585", false, ""},
		{"127.0.0.53:9585", false, ""},
		{"[::1]:9585", false, ""},
		{"[::ffff:127.0.0.1]:9585", false, ""},
		{"localhost:9585", false, ""},
		{":9585", false, ""}, // metrics.Serve listens on 127.0.0.1
		{"0.0.0.0:9585", false, "not a loopback address"},
		{"[::]:9585", false, "not a loopback address"},
		{"198.18.0.1:9585", false, "use 127.0.0.1:9585 (or [::1]:9585), or allow other hosts explicitly"},
		{"gw1.example:9585", false, "not a loopback address"},
		{"0.0.0.0:9585", true, ""},
		{"198.18.0.1:9585", true, ""},
		{"9585", false, "want host:port"},
		{"9585", true, "want host:port"},
	} {
		err := CheckMetricsAddr(c.addr, c.public)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s (public %v): %v", c.addr, c.public, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s (public %v): %v, want …%s…", c.addr, c.public, err, c.want)
		}
	}
	// In the file: daemon.metrics_public is the opt-in, and the error names the field.
	base := "instance: t\ndaemon:\n  metrics: 198.18.0.1:9585\n"
	if _, err := Parse("gw.yaml", []byte(base)); err == nil || !strings.Contains(err.Error(), "daemon.metrics") ||
		!errors.Is(err, ErrMetricsNotLoopback) || !errors.Is(err, ErrInvalid) {
		t.Errorf("public address without metrics_public: %v", err)
	}
	if c, err := Parse("gw.yaml", []byte(base+"  metrics_public: true\n")); err != nil || !c.Daemon.MetricsPublic {
		t.Errorf("with metrics_public: %v", err)
	}
}
