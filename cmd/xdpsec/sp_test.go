package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/api"
)

func TestSPCommands(t *testing.T) {
	d := startDaemon(t)
	d.ok(t, strings.Fields("sp add src 198.18.3.0/24 dst 198.18.4.0/24 proto tcp dport 80 dir out priority 50 "+
		"tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel name web")...)
	d.ok(t, strings.Fields("sp add dst 198.18.9.0/24 dir out action block")...)
	d.sync(t)
	out := d.ok(t, "sp", "list")
	for _, want := range []string{"src 198.18.3.0/24 dst 198.18.4.0/24 proto tcp dport 80",
		"dir out priority 50 action protect name web", "tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel",
		"action discard", "lan0 offloaded", "sa gw1-to-gw2"} {
		if !strings.Contains(out, want) {
			t.Errorf("sp list lacks %q:\n%s", want, out)
		}
	}
	// SPD order: out before in, as the card numbers them; within a direction the lower priority first
	// (block 0, web 50, lan-out 100).
	var l []api.PolicyView
	if err := json.Unmarshal([]byte(d.ok(t, "sp", "list", "-o", "json")), &l); err != nil || len(l) != 4 {
		t.Fatalf("sp list -o json: %v %d", err, len(l))
	}
	if l[0].Priority != 0 || l[1].Name != "web" || l[2].Name != "lan-out" || l[3].Name != "ike" {
		t.Fatalf("order: %s %s %s %s", l[0].Name, l[1].Name, l[2].Name, l[3].Name)
	}
	d.ok(t, strings.Fields("sp update src 198.18.3.0/24 dst 198.18.4.0/24 proto tcp dport 80 dir out priority 60 tmpl reqid 1 name web")...)
	if out := d.ok(t, "sp", "list"); !strings.Contains(out, "priority 60 action protect name web") {
		t.Fatalf("update not applied:\n%s", out)
	}
	d.ok(t, strings.Fields("sp del dir out dst 198.18.9.0/24")...)
	d.ok(t, "sp", "del", "web")
	if out := d.ok(t, "sp", "flush"); !strings.Contains(out, "deleted 2 policies") {
		t.Fatalf("flush: %s", out)
	}
	d.sync(t)
	if rep := d.ok(t, "check"); !strings.HasPrefix(rep, "ok:") {
		t.Fatalf("check after flush: %s", rep)
	}
}

func TestSPErrors(t *testing.T) {
	d := startDaemon(t)
	d.fails(t, exitFailure, "already exists", strings.Fields("sp add src 198.18.1.0/24 dst 198.18.2.0/24 dir out priority 5 tmpl reqid 9")...)
	d.fails(t, exitUsage, "dir in|out|fwd is required", strings.Fields("sp add src 198.18.1.0/24")...)
	d.fails(t, exitUsage, "needs tmpl", strings.Fields("sp add src 198.18.1.0/24 dir out action protect")...)
	d.fails(t, exitFailure, "different address families", strings.Fields("sp add src 198.18.1.0/24 dst 2001:2::/48 dir out")...)
	d.fails(t, exitFailure, "ports need proto", strings.Fields("sp add src 198.18.1.0/24 dport 80 dir out")...)
	d.fails(t, exitFailure, "not found", "sp", "del", "nosuch")
	d.fails(t, exitFailure, `no interface "eth9"`, strings.Fields("sp add dst 198.18.9.0/24 dir out action block offload dev eth9")...)
	d.fails(t, exitUsage, "requires at least 1 arg", "sp", "add")
}
