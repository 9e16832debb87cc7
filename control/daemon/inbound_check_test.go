package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// The post-decryption check on the real card and workers (RFC 4301 §5.2): a higher-priority inbound
// DISCARD applies to what arrives through the tunnel, and withdrawing an SA's inbound policy stops
// its decrypted traffic; both counted as policy failures on the SA.

// saIndex is the card index of the SA named name.
func saIndex(t *testing.T, d *Daemon, name string) uint32 {
	t.Helper()
	for _, sa := range d.SAs() {
		if sa.Name == name {
			return sa.Index
		}
	}
	t.Fatalf("%s: no sa %q", d.Info.Instance, name)
	return 0
}

func policyFailures(d *Daemon, idx uint32) uint64 {
	return d.Card().WorkerStats().Read(idx).Errors[loader.WorkerErrPolicy]
}

// pings sends n echo requests from node to dst, 0.1 s apart, and returns how many were answered.
func pings(ctx context.Context, t *testing.T, tb *testbed.Testbed, from testbed.Node, dst netip.Addr, n int) int {
	t.Helper()
	out, _ := tb.Run(ctx, from, "ping", "-n", "-q", "-c", fmt.Sprint(n), "-i", "0.1", "-W", "1", dst.String())
	var sent, got int
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(l, "%d packets transmitted, %d received", &sent, &got)
		}
	}
	if sent != n {
		t.Fatalf("ping %s from %s: sent %d of %d:\n%s", dst, from, sent, n, out)
	}
	return got
}

// waitFailures waits until the SA's policy failures reach want (ping returns once its last echo
// request is answered or timed out, but the worker's count may lag a little) and fails unless they
// are exactly want.
func waitFailures(t *testing.T, d *Daemon, idx uint32, want uint64) {
	t.Helper()
	testutil.Eventually(5*time.Second, func() bool { return policyFailures(d, idx) >= want })
	if got := policyFailures(d, idx); got != want {
		t.Fatalf("%s: %d policy failures on sa %d, want %d", d.Info.Instance, got, idx, want)
	}
}

func TestInboundDiscardAppliesToTunnel(t *testing.T) {
	needRoot(t)
	tb, gw1, _ := startPair(t, testbed.DefaultTunnels)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3) // neighbours resolved
	_ = tb.Ping(ctx, testbed.H2, testbed.H1Addr4, 3)
	in := saIndex(t, gw1, "v4-gw2-to-gw1") // what gw1 decrypts from h2
	m := gw1.Manager()

	// h2's echo requests to h1 are discarded after decryption by a policy above the tunnel's own;
	// h1's echo replies (ICMP type 0) and everything else still pass.
	discard := sadb.Policy{Name: "no-echo-from-lan2", Dir: ipsec.DirIn, Priority: 50, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Src: testbed.LAN2Prefix4, Dst: netip.PrefixFrom(testbed.H1Addr4, 32), Proto: ipsec.ProtoICMP,
			SrcPorts: ipsec.Port(8)}}
	if _, err := m.AddPolicy(discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	base := policyFailures(gw1, in)
	if got := pings(ctx, t, tb, testbed.H2, testbed.H1Addr4, 5); got != 0 {
		t.Errorf("h2 → h1: %d of 5 echo requests answered through a DISCARD", got)
	}
	waitFailures(t, gw1, in, base+5)
	if got := pings(ctx, t, tb, testbed.H1, testbed.H2Addr4, 5); got != 5 {
		t.Errorf("h1 → h2: %d of 5 answered; the DISCARD is for echo requests only", got)
	}
	waitFailures(t, gw1, in, base+5)

	// Reprioritised below the tunnel's policy, the DISCARD no longer applies.
	discard.Priority = 150
	if _, err := m.UpdatePolicy(discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pings(ctx, t, tb, testbed.H2, testbed.H1Addr4, 5); got != 5 {
		t.Errorf("h2 → h1 with the DISCARD below the tunnel's policy: %d of 5 answered", got)
	}
	waitFailures(t, gw1, in, base+5)
	checkCard(ctx, t, gw1)
}

// TestInboundPolicyWithdrawal: deleting gw1's inbound policy of the IPv4 tunnel leaves its SA in the
// card with an empty check list: what it decrypts is dropped and counted, and nothing reaches h1;
// the policy back, traffic flows again. Turning it into a bypass does the same.
func TestInboundPolicyWithdrawal(t *testing.T) {
	needRoot(t)
	tb, gw1, _ := startPair(t, testbed.DefaultTunnels)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = tb.Ping(ctx, testbed.H1, testbed.H2Addr4, 3)
	_ = tb.Ping(ctx, testbed.H2, testbed.H1Addr4, 3)
	in := saIndex(t, gw1, "v4-gw2-to-gw1")
	m := gw1.Manager()
	pol, err := m.Store().GetPolicy(sadb.PolicyRef{Name: "v4-in"})
	if err != nil {
		t.Fatal(err)
	}
	for _, withdraw := range []struct {
		name string
		do   func() error
	}{
		{"delete", func() error { _, err := m.DeletePolicy(sadb.PolicyRef{Name: "v4-in"}); return err }},
		{"bypass", func() error {
			p := pol.Policy
			p.Action, p.Tmpl = ipsec.ActionBypass, nil
			_, err := m.UpdatePolicy(p)
			return err
		}},
	} {
		t.Run(withdraw.name, func(t *testing.T) {
			if err := withdraw.do(); err != nil {
				t.Fatal(err)
			}
			if err := m.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			base := policyFailures(gw1, in)
			if got := pings(ctx, t, tb, testbed.H2, testbed.H1Addr4, 5); got != 0 {
				t.Errorf("%d of 5 echo requests reached h1 through an SA whose policy was withdrawn", got)
			}
			waitFailures(t, gw1, in, base+5)
			if e := gw1.drv.sas.Lookup(in); e == nil || len(e.Check) != 0 {
				t.Fatalf("the workers' entry of the SA: %+v, want one with an empty check list", e)
			}
			// The policy back as it was: traffic flows.
			if withdraw.name == "delete" {
				_, err = m.AddPolicy(pol.Policy)
			} else {
				_, err = m.UpdatePolicy(pol.Policy)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := pings(ctx, t, tb, testbed.H2, testbed.H1Addr4, 5); got != 5 {
				t.Errorf("with the policy back: %d of 5 answered", got)
			}
			waitFailures(t, gw1, in, base+5)
			checkCard(ctx, t, gw1)
		})
	}
}

// checkCard runs `xdpsec check`: the card equals the SAD/SPD.
func checkCard(ctx context.Context, t *testing.T, d *Daemon) {
	t.Helper()
	rep, err := d.Manager().Check(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("%s: check: %+v %v", d.Info.Instance, rep, err)
	}
}
