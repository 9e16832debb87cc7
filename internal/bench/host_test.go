//go:build linux

package bench

import (
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

func TestEthtoolField(t *testing.T) {
	out := "Channel parameters for gwb-in:\nPre-set maximums:\nRX:\t\t4\nTX:\t\t4\nCombined:\tn/a\n" +
		"Current hardware settings:\nRX:\t\t2\nTX:\t\t1\nOther:\t\tn/a\nCombined:\tn/a\n"
	_, cur, _ := strings.Cut(out, "Current hardware settings:")
	for _, c := range []struct{ in, name, want string }{
		{cur, "RX", "2"}, {cur, "TX", "1"}, {cur, "Combined", "n/a"}, {out, "RX", "4"},
		{"Features for x:\ngeneric-receive-offload: off [fixed]\n", "generic-receive-offload", "off [fixed]"},
	} {
		if got, ok := ethtoolField(c.in, c.name); !ok || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
	if got, ok := ethtoolField(cur, "Missing"); ok {
		t.Errorf("a missing field read as %q", got)
	}
}

func TestGatewayQueues(t *testing.T) {
	state := func(q ...int) hostState {
		var h hostState
		nodes := []testbed.Node{testbed.H1, testbed.GW1, testbed.GW1, testbed.GW2, testbed.GW2, testbed.H2}
		for i, n := range nodes {
			h = append(h, devState{port: testbed.Port{Node: n, Role: testbed.PortRoles[i], Dev: "d" + testbed.PortRoles[i]},
				rx: q[i], tx: q[i], combined: -1})
		}
		return h
	}
	if n, err := state(8, 2, 2, 2, 2, 1).gatewayQueues(); err != nil || n != 2 {
		t.Errorf("hosts' queues do not matter: %d, %v; want 2", n, err)
	}
	combined := state(1, 0, 0, 0, 0, 1)
	for i := range combined {
		combined[i].rx, combined[i].combined = -1, 4 // a NIC with combined channels only
	}
	if n, err := combined.gatewayQueues(); err != nil || n != 4 {
		t.Errorf("combined channels: %d, %v; want 4", n, err)
	}
	if _, err := state(1, 2, 2, 1, 2, 1).gatewayQueues(); err == nil || !strings.Contains(err.Error(), "gw2-wan dgw2-wan: 1") ||
		!strings.Contains(err.Error(), "--queues") {
		t.Errorf("different queue counts: %v; want an error naming them and --queues", err)
	}
}
