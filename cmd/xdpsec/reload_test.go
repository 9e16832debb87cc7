package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/sadb"
)

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestReload(t *testing.T) {
	d := startDaemon(t)
	before, err := d.m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Change only the policy's priority and add an SA; the existing SA must not be touched.
	cfg := strings.Replace(daemonConfig, "priority: 100", "priority: 90", 1) + `  - name: extra
    spi: 0x00001002
    src: 198.18.0.1
    dst: 198.19.0.9
    mode: tunnel
    aead: {alg: "rfc4106(gcm(aes))", key: "0x0102030405060708090a0b0c0d0e0f1011121315", icv_bits: 128}
`
	if err := os.WriteFile(d.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := d.ok(t, "reload")
	for _, want := range []string{"sas added: extra", "policies updated: lan-out", "sas unchanged: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q:\n%s", want, out)
		}
	}
	after, _ := d.m.Store().GetSA(sadb.Ref{Name: "gw1-to-gw2"}, false)
	if after.Index != before.Index || after.Gen != before.Gen || after.Serial != before.Serial {
		t.Fatalf("unchanged SA was touched: %+v → %+v", before, after)
	}
	d.sync(t)
	if out := d.ok(t, "check"); !strings.HasPrefix(out, "ok:") {
		t.Fatalf("check after reload: %s", out)
	}
	if err := os.WriteFile(d.configPath, []byte("sas: [{name: broken}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A broken file changes nothing and says why.
	d.fails(t, exitFailure, `sa "broken": spi: missing field`, "reload")
	if err := os.WriteFile(d.configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := d.ok(t, "reload", "-o", "json"); !strings.Contains(out, `"sas_unchanged": 2`) {
		t.Fatalf("json reload of an unchanged file: %s", out)
	}
}
