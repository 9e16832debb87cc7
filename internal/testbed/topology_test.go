package testbed

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

func TestTopologyFromNames(t *testing.T) {
	ns := map[string]string{"h1": "a", "gw1": "b", "gw2": "c", "h2": "d"}
	topo, err := TopologyFromNames(ns, map[string]string{"gw1-wan": "eth1", "h2": "veth9"})
	if err != nil {
		t.Fatal(err)
	}
	if !topo.Adopted || topo.NetNS[H1] != "a" || topo.NetNS[GW1] != "b" || topo.NetNS[GW2] != "c" || topo.NetNS[H2] != "d" {
		t.Errorf("namespaces %v, adopted %v", topo.NetNS, topo.Adopted)
	}
	got := ""
	for _, p := range topo.Path() {
		got += p.Role + "=" + p.Dev + "@" + string(p.Node) + " "
		if p.Addr4.IsValid() || p.Addr6.IsValid() {
			t.Errorf("%s has addresses %v %v before Adopt read them", p.Role, p.Addr4, p.Addr6)
		}
	}
	if want := "h1=h1-eth0@h1 gw1-lan=gw1-lan@gw1 gw1-wan=eth1@gw1 gw2-wan=gw2-wan@gw2 gw2-lan=gw2-lan@gw2 h2=veth9@h2 "; got != want {
		t.Errorf("ports %q, want %q", got, want)
	}

	for _, c := range []struct {
		name      string
		netns     map[string]string
		devs      map[string]string
		wantInErr string
	}{
		{"node missing", map[string]string{"h1": "a", "gw1": "b", "gw2": "c"}, nil, "netns: h2 missing"},
		{"unknown node", map[string]string{"h1": "a", "gw1": "b", "gw2": "c", "h2": "d", "h3": "e"}, nil, `unknown node "h3"`},
		{"shared namespace", map[string]string{"h1": "a", "gw1": "a", "gw2": "c", "h2": "d"}, nil, "each node needs its own namespace"},
		{"bad namespace name", map[string]string{"h1": "a/b", "gw1": "b", "gw2": "c", "h2": "d"}, nil, "is not a namespace name"},
		{"unknown interface", ns, map[string]string{"gw3-lan": "x"}, `unknown interface "gw3-lan"`},
		{"long interface name", ns, map[string]string{"h1": "a-name-longer-than-15"}, "is not an interface name"},
		{"lan is wan", ns, map[string]string{"gw2-lan": "eth0", "gw2-wan": "eth0"}, "must be two interfaces"},
	} {
		if _, err := TopologyFromNames(c.netns, c.devs); err == nil || !strings.Contains(err.Error(), c.wantInErr) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.wantInErr)
		}
	}
}

// TestAdopt builds a testbed, adopts its namespaces as an existing topology, and checks what Adopt
// reads (the addresses New gave), that every broken precondition is refused with an error naming
// it, and that closing the adopted testbed leaves the namespaces in place.
func TestAdopt(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tb, err := New(ctx, Options{Tag: "tba"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	ns := map[string]string{}
	for _, n := range Nodes {
		ns[string(n)] = tb.NetNS(n)
	}
	want, err := TopologyFromNames(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := Adopt(ctx, want, Options{Tag: "tbad"})
	if err != nil {
		t.Fatal(err)
	}
	got := ad.Topology()
	built := tb.Topology()
	if !got.Adopted || built.Adopted {
		t.Errorf("adopted: %v for Adopt, %v for New", got.Adopted, built.Adopted)
	}
	if got.String() != built.String() {
		t.Errorf("Adopt read %s\nNew built  %s", got.String(), built.String())
	}
	if !got.IPv6() || got.LAN1(false) != LAN1Prefix4 || got.LAN2(true) != LAN2Prefix6 {
		t.Errorf("IPv6 %v, LAN1 %s, LAN2 (v6) %s", got.IPv6(), got.LAN1(false), got.LAN2(true))
	}
	if ad.NetNS(GW2) != tb.NetNS(GW2) || strings.HasPrefix(tb.NetNS(GW2), ad.Prefix) {
		t.Errorf("adopted testbed %s names gw2's namespace %s (built: %s)", ad.Prefix, ad.NetNS(GW2), tb.NetNS(GW2))
	}
	if err := ad.Ping(ctx, H1, got.H2.Addr(false), 1); err != nil {
		t.Errorf("through the adopted testbed: %v", err)
	}
	if _, err := ad.StateDir(GW1); err != nil {
		t.Fatal(err)
	}
	if err := ad.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range Nodes {
		if _, err := os.Stat("/run/netns/" + tb.NetNS(n)); err != nil {
			t.Errorf("closing the adopted testbed removed namespace %s: %v", tb.NetNS(n), err)
		}
	}
	if left := ad.Leftovers(); len(left) != 0 {
		t.Errorf("the adopted testbed left %v", left)
	}
	if err := tb.Ping(ctx, H1, H2Addr4, 1); err != nil {
		t.Errorf("after the adopted testbed closed: %v", err)
	}

	// Each broken precondition, made and undone in turn.
	var xdp link.Link
	run := func(n Node, args ...string) {
		t.Helper()
		if _, err := tb.Run(ctx, n, args[0], args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name         string
		netns        map[string]string
		devs         map[string]string
		break_, undo func()
		wantInErr    []string
	}{
		{name: "namespace missing", netns: map[string]string{"h2": "xs-tba-nonexistent"},
			wantInErr: []string{`namespace "xs-tba-nonexistent" of h2 does not exist`}},
		{name: "interface missing", devs: map[string]string{"gw1-wan": "nosuch0", "h2": "nosuch1"},
			wantInErr: []string{`gw1-wan: no interface "nosuch0"`, `h2: no interface "nosuch1"`}},
		{name: "interface down",
			break_:    func() { run(GW2, "ip", "link", "set", GW2LAN, "down") },
			undo:      func() { run(GW2, "ip", "link", "set", GW2LAN, "up") },
			wantInErr: []string{"gw2-lan: gw2-lan in namespace " + tb.NetNS(GW2) + " is down"}},
		{name: "no IPv4 address",
			break_: func() { run(H1, "ip", "addr", "del", "198.18.1.10/24", "dev", H1Eth) },
			undo: func() {
				run(H1, "ip", "addr", "add", "198.18.1.10/24", "dev", H1Eth)
				run(H1, "ip", "route", "add", "default", "via", GW1LANAddr4.String())
			},
			wantInErr: []string{"h1: h1-eth0 in namespace " + tb.NetNS(H1) + " has no global IPv4 address"}},
		{name: "two IPv4 addresses",
			break_:    func() { run(H2, "ip", "addr", "add", "198.18.2.11/24", "dev", H2Eth) },
			undo:      func() { run(H2, "ip", "addr", "del", "198.18.2.11/24", "dev", H2Eth) },
			wantInErr: []string{"has 2 IPv4 addresses"}},
		{name: "XDP program attached",
			break_:    func() { xdp = attachPass(t, tb, GW1, GW1WAN) },
			undo:      func() { xdp.Close() },
			wantInErr: []string{"gw1-wan: gw1-wan in namespace " + tb.NetNS(GW1) + " has an XDP program attached"}},
		{name: "gateway does not forward",
			break_:    func() { run(GW2, "sysctl", "-qw", "net.ipv4.ip_forward=0") },
			undo:      func() { run(GW2, "sysctl", "-qw", "net.ipv4.ip_forward=1") },
			wantInErr: []string{"gw2 (namespace " + tb.NetNS(GW2) + ") does not forward: net.ipv4.ip_forward = 0"}},
		{name: "route missing",
			break_:    func() { run(GW1, "ip", "route", "del", LAN2Prefix4.String()) },
			undo:      func() { run(GW1, "ip", "route", "add", LAN2Prefix4.String(), "via", GW2WANAddr4.String()) },
			wantInErr: []string{"gw1 (namespace " + tb.NetNS(GW1) + ") has no route to h2's 198.18.2.10"}},
		{name: "route elsewhere",
			break_:    func() { run(H2, "ip", "route", "replace", "default", "via", "198.18.2.99") },
			undo:      func() { run(H2, "ip", "route", "replace", "default", "via", GW2LANAddr4.String()) },
			wantInErr: []string{"h2 (namespace " + tb.NetNS(H2) + ") routes h1's 198.18.1.10 via 198.18.2.99 dev h2-eth0; want via 198.18.2.1 (gw2-lan) dev h2-eth0"}},
	} {
		n := map[string]string{}
		for k, v := range ns {
			n[k] = v
		}
		for k, v := range c.netns {
			n[k] = v
		}
		want, err := TopologyFromNames(n, c.devs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.break_ != nil {
			c.break_()
		}
		ad, err := Adopt(ctx, want, Options{Tag: "tbad"})
		if c.undo != nil {
			c.undo()
		}
		if err == nil {
			ad.Close()
			t.Errorf("%s: adopted", c.name)
			continue
		}
		for _, w := range c.wantInErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\ndoes not say %q", c.name, err, w)
			}
		}
		t.Logf("%s: %v", c.name, err)
	}
	// Undone, the topology is adoptable again.
	if ad, err := Adopt(ctx, want, Options{Tag: "tbad"}); err != nil {
		t.Errorf("after the cases: %v", err)
	} else {
		ad.Close()
	}
}

// attachPass attaches an XDP program that passes everything to dev in node n.
func attachPass(t *testing.T, tb *Testbed, n Node, dev string) link.Link {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var l link.Link
	if err := tb.InNS(n, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return l
}
