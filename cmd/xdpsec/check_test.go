package main

import (
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/ipsec"
)

func TestCheck(t *testing.T) {
	d := startDaemon(t)
	if out := d.ok(t, "check"); !strings.Contains(out, "ok: the card matches 1 SAs and 2 policies") {
		t.Fatalf("check: %s", out)
	}
	if out := d.ok(t, "check", "-o", "json"); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("check json: %s", out)
	}
	// A stray entry in the card (not put there by the engine) must be found.
	d.card.InstallPolicy(&offload.PolicyOffload{Iface: "lan0", Policy: ipsec.Policy{ID: 77, Dir: ipsec.DirOut,
		Selector: ipsec.Selector{Src: mustPrefix("198.18.7.0/24"), Dst: mustPrefix("198.18.8.0/24"),
			SrcPorts: ipsec.AnyPorts, DstPorts: ipsec.AnyPorts}, Action: ipsec.ActionBypass, SA: ipsec.NoSA}})
	code, out, _ := d.cli(t, "check")
	if code != exitFailure || !strings.Contains(out, "policy 77 on lan0: in the card") {
		t.Fatalf("check with drift: exit %d\n%s", code, out)
	}
}
