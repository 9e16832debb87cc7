package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Port is one interface of the path h1 ─ gw1 ═ gw2 ─ h2: its node, its name inside the node's
// namespace and its addresses.
type Port struct {
	Node  Node         `json:"node"`
	Role  string       `json:"role"` // one of PortRoles
	Dev   string       `json:"dev"`
	Addr4 netip.Prefix `json:"addr4"` // the interface's IPv4 address with its prefix length
	Addr6 netip.Prefix `json:"addr6"` // its IPv6 address; the zero Prefix when the path has no IPv6
}

// PortRoles name the six interfaces of the path, in path order (the keys of `xdpsec bench --dev`).
var PortRoles = []string{"h1", "gw1-lan", "gw1-wan", "gw2-wan", "gw2-lan", "h2"}

// Topology describes the path the testbed's users send traffic over: each node's namespace and
// the six interfaces with their addresses. New fills it with the fixed names and addresses of the
// package documentation; Adopt reads the addresses of an existing topology from its interfaces.
// Users of a testbed take names and addresses from its Topology, not from the package's
// constants, so that they run on either.
type Topology struct {
	// Adopted is set when the topology existed before the testbed and outlives it (Adopt).
	Adopted bool            `json:"adopted"`
	NetNS   map[Node]string `json:"netns"` // h1, gw1, gw2, h2 → namespace name
	H1      Port            `json:"h1"`
	GW1LAN  Port            `json:"gw1_lan"`
	GW1WAN  Port            `json:"gw1_wan"`
	GW2WAN  Port            `json:"gw2_wan"`
	GW2LAN  Port            `json:"gw2_lan"`
	H2      Port            `json:"h2"`
}

// Path lists the six ports in path order.
func (t *Topology) Path() []Port {
	return []Port{t.H1, t.GW1LAN, t.GW1WAN, t.GW2WAN, t.GW2LAN, t.H2}
}

func (t *Topology) ports() []*Port {
	return []*Port{&t.H1, &t.GW1LAN, &t.GW1WAN, &t.GW2WAN, &t.GW2LAN, &t.H2}
}

// IPv6 reports whether every port has an IPv6 address (then the path carries IPv6 too).
func (t *Topology) IPv6() bool {
	return !slices.ContainsFunc(t.Path(), func(p Port) bool { return !p.Addr6.IsValid() })
}

// LAN1 and LAN2 are h1's and h2's networks (the prefixes of their addresses); Wire is gw1's wire
// network.
func (t *Topology) LAN1(v6 bool) netip.Prefix { return pick(t.H1, v6).Masked() }
func (t *Topology) LAN2(v6 bool) netip.Prefix { return pick(t.H2, v6).Masked() }

// Addr is a port's address (v6: its IPv6 address).
func (p Port) Addr(v6 bool) netip.Addr { return pick(p, v6).Addr() }

func pick(p Port, v6 bool) netip.Prefix {
	if v6 {
		return p.Addr6
	}
	return p.Addr4
}

func (t *Topology) String() string {
	var b strings.Builder
	for _, n := range Nodes {
		fmt.Fprintf(&b, "%s=%s ", n, t.NetNS[n])
	}
	for _, p := range t.Path() {
		fmt.Fprintf(&b, "%s=%s", p.Role, p.Dev)
		if p.Addr4.IsValid() {
			fmt.Fprintf(&b, "(%s", p.Addr4)
			if p.Addr6.IsValid() {
				fmt.Fprintf(&b, ", %s", p.Addr6)
			}
			b.WriteString(")")
		}
		b.WriteString(" ")
	}
	return strings.TrimSpace(b.String())
}

// defaultTopology is what New builds (the package documentation's picture).
func defaultTopology(prefix string) Topology {
	p := func(n Node, role, dev string, a4, a6 netip.Addr, l4, l6 netip.Prefix) Port {
		return Port{Node: n, Role: role, Dev: dev, Addr4: netip.PrefixFrom(a4, l4.Bits()), Addr6: netip.PrefixFrom(a6, l6.Bits())}
	}
	t := Topology{NetNS: map[Node]string{},
		H1:     p(H1, "h1", H1Eth, H1Addr4, H1Addr6, LAN1Prefix4, LAN1Prefix6),
		GW1LAN: p(GW1, "gw1-lan", GW1LAN, GW1LANAddr4, GW1LANAddr6, LAN1Prefix4, LAN1Prefix6),
		GW1WAN: p(GW1, "gw1-wan", GW1WAN, GW1WANAddr4, GW1WANAddr6, WirePrefix4, WirePrefix6),
		GW2WAN: p(GW2, "gw2-wan", GW2WAN, GW2WANAddr4, GW2WANAddr6, WirePrefix4, WirePrefix6),
		GW2LAN: p(GW2, "gw2-lan", GW2LAN, GW2LANAddr4, GW2LANAddr6, LAN2Prefix4, LAN2Prefix6),
		H2:     p(H2, "h2", H2Eth, H2Addr4, H2Addr6, LAN2Prefix4, LAN2Prefix6),
	}
	for _, n := range Nodes {
		t.NetNS[n] = prefix + "-" + string(n)
	}
	return t
}

// TopologyFromNames describes an existing topology by names, as `xdpsec bench --netns` and --dev
// give them: netns maps each of h1, gw1, gw2, h2 to its namespace (all four required, all
// different); devs maps any of PortRoles to the interface's name in its node's namespace (the
// ones left out keep the names New gives them: h1-eth0, gw1-lan, …). The addresses are left for
// Adopt to read from the interfaces.
func TopologyFromNames(netns, devs map[string]string) (Topology, error) {
	t := defaultTopology("")
	t.Adopted = true
	var errs []error
	seen := map[string]Node{}
	for k, v := range netns {
		n := Node(k)
		switch {
		case !slices.Contains(Nodes, n):
			errs = append(errs, fmt.Errorf("netns: unknown node %q (want h1, gw1, gw2, h2)", k))
		case v == "" || strings.ContainsAny(v, "/ \t"):
			errs = append(errs, fmt.Errorf("netns: %s=%q is not a namespace name", k, v))
		case seen[v] != "":
			errs = append(errs, fmt.Errorf("netns: %s and %s are both %q; each node needs its own namespace", seen[v], k, v))
		default:
			seen[v] = n
			t.NetNS[n] = v
		}
	}
	for _, n := range Nodes {
		if _, ok := netns[string(n)]; !ok {
			errs = append(errs, fmt.Errorf("netns: %s missing (want h1=NAME,gw1=NAME,gw2=NAME,h2=NAME)", n))
		}
	}
	for k, v := range devs {
		i := slices.Index(PortRoles, k)
		switch {
		case i < 0:
			errs = append(errs, fmt.Errorf("dev: unknown interface %q (want some of %s)", k, strings.Join(PortRoles, ", ")))
		case v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t:"):
			errs = append(errs, fmt.Errorf("dev: %s=%q is not an interface name", k, v))
		default:
			t.ports()[i].Dev = v
		}
	}
	if t.GW1LAN.Dev == t.GW1WAN.Dev || t.GW2LAN.Dev == t.GW2WAN.Dev {
		errs = append(errs, errors.New("dev: a gateway's LAN and wire interfaces must be two interfaces"))
	}
	for _, p := range t.ports() {
		p.Addr4, p.Addr6 = netip.Prefix{}, netip.Prefix{}
	}
	return t, errors.Join(errs...)
}

// Adopt takes a topology that exists already (TopologyFromNames) as the testbed: it checks that
// every namespace and interface exists, reads the interfaces' addresses, and checks that the
// gateways forward and that h1 and h2 reach each other through gw1 and gw2; the error lists every
// problem it found. The testbed's Close removes only what the testbed itself created (the
// gateways' state directories), never a namespace or an interface. Options.Tag names the testbed's
// own things (Prefix: the gateways' instance names and pins); MTU, Queues and WireTap describe a
// topology New builds and are refused here.
func Adopt(ctx context.Context, want Topology, opts Options) (*Testbed, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.MTU != 0 || opts.Queues != 0 || opts.WireTap {
		return nil, errors.New("adopt: MTU, Queues and WireTap describe a testbed New builds, not an existing one")
	}
	tb, err := newTestbed(opts)
	if err != nil {
		return nil, err
	}
	want.Adopted = true
	tb.topo = want
	if err := tb.adopt(ctx); err != nil {
		return nil, fmt.Errorf("adopt topology %s: %w", want.String(), err)
	}
	return tb, nil
}

func (tb *Testbed) adopt(ctx context.Context) error {
	t := &tb.topo
	var errs []error
	for _, n := range Nodes {
		name := t.NetNS[n]
		if st, err := os.Stat("/run/netns/" + name); err != nil || !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("namespace %q of %s does not exist (`ip netns list` shows the named ones)", name, n))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, p := range t.ports() {
		if err := tb.readPort(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && !t.IPv6() {
		for _, p := range t.ports() {
			p.Addr6 = netip.Prefix{} // IPv6 only when the whole path has it
		}
	}
	for _, gw := range []Node{GW1, GW2} {
		keys := []string{"net.ipv4.ip_forward"}
		if len(errs) == 0 && t.IPv6() {
			keys = append(keys, "net.ipv6.conf.all.forwarding")
		}
		for _, k := range keys {
			out, err := tb.Run(ctx, gw, "sysctl", "-n", k)
			if err != nil {
				errs = append(errs, err)
			} else if strings.TrimSpace(out) != "1" {
				errs = append(errs, fmt.Errorf("%s (namespace %s) does not forward: %s = %s, want 1", gw, t.NetNS[gw], k, strings.TrimSpace(out)))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Each hop towards h2 and back: the host's next hop is its gateway's LAN address, gw1 sends
	// to gw2's wire address and gw2 to gw1's, and the last gateway delivers on its LAN.
	v6s := []bool{false}
	if t.IPv6() {
		v6s = append(v6s, true)
	}
	for _, v6 := range v6s {
		for _, h := range []struct {
			n   Node
			dst Port
			dev Port
			via *Port
		}{
			{H1, t.H2, t.H1, &t.GW1LAN}, {GW1, t.H2, t.GW1WAN, &t.GW2WAN}, {GW2, t.H2, t.GW2LAN, nil},
			{H2, t.H1, t.H2, &t.GW2LAN}, {GW2, t.H1, t.GW2WAN, &t.GW1WAN}, {GW1, t.H1, t.GW1LAN, nil},
		} {
			if err := tb.checkRoute(ctx, h.n, h.dst, h.dev, h.via, v6); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// readPort reads an interface's state and addresses: it must be up, hold no XDP program (the
// systems measured attach their own) and have exactly one global IPv4 address (and at most one
// global IPv6 address).
func (tb *Testbed) readPort(ctx context.Context, p *Port) error {
	ns := tb.topo.NetNS[p.Node]
	out, err := tb.Run(ctx, p.Node, "ip", "-j", "addr", "show", "dev", p.Dev)
	if err != nil {
		return fmt.Errorf("%s: no interface %q in namespace %s (%s)", p.Role, p.Dev, ns, p.Node)
	}
	var links []struct {
		Flags []string        `json:"flags"`
		XDP   json.RawMessage `json:"xdp"`
		Addrs []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
			Len    int    `json:"prefixlen"`
			Scope  string `json:"scope"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return fmt.Errorf("%s: read %s in namespace %s: %v: %s", p.Role, p.Dev, ns, err, out)
	}
	l := links[0]
	var errs []error
	if !slices.Contains(l.Flags, "UP") {
		errs = append(errs, fmt.Errorf("%s: %s in namespace %s is down", p.Role, p.Dev, ns))
	}
	if len(l.XDP) > 0 {
		errs = append(errs, fmt.Errorf("%s: %s in namespace %s has an XDP program attached; the bench attaches its own", p.Role, p.Dev, ns))
	}
	var v4, v6 []netip.Prefix
	for _, a := range l.Addrs {
		ip, err := netip.ParseAddr(a.Local)
		if err != nil || a.Scope != "global" {
			continue
		}
		pfx := netip.PrefixFrom(ip, a.Len)
		if ip.Is4() {
			v4 = append(v4, pfx)
		} else {
			v6 = append(v6, pfx)
		}
	}
	switch len(v4) {
	case 0:
		errs = append(errs, fmt.Errorf("%s: %s in namespace %s has no global IPv4 address", p.Role, p.Dev, ns))
	case 1:
		p.Addr4 = v4[0]
	default:
		errs = append(errs, fmt.Errorf("%s: %s in namespace %s has %d IPv4 addresses %v; the bench needs exactly one", p.Role, p.Dev, ns, len(v4), v4))
	}
	if len(v6) == 1 {
		p.Addr6 = v6[0]
	}
	return errors.Join(errs...)
}

// checkRoute asks node's kernel for its route to dst and wants it to leave on dev, through via
// (nil: dst is on dev's link).
func (tb *Testbed) checkRoute(ctx context.Context, n Node, dst, dev Port, via *Port, v6 bool) error {
	fam := "-4"
	if v6 {
		fam = "-6"
	}
	d := dst.Addr(v6)
	out, err := tb.Run(ctx, n, "ip", "-j", fam, "route", "get", d.String())
	if err != nil {
		return fmt.Errorf("%s (namespace %s) has no route to %s's %s: %w", n, tb.topo.NetNS[n], dst.Role, d, err)
	}
	var rs []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
		Type    string `json:"type"`
	}
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) == 0 {
		return fmt.Errorf("%s: read route to %s: %v: %s", n, d, err, out)
	}
	r := rs[0]
	got := "dev " + r.Dev
	if r.Gateway != "" {
		got = "via " + r.Gateway + " " + got
	}
	want := "dev " + dev.Dev
	if via != nil {
		want = "via " + via.Addr(v6).String() + " (" + via.Role + ") " + want
	}
	gw, _ := netip.ParseAddr(r.Gateway)
	ok := r.Dev == dev.Dev && r.Type != "unreachable" && r.Type != "blackhole" && r.Type != "prohibit"
	if via != nil {
		ok = ok && gw == via.Addr(v6)
	} else {
		ok = ok && (r.Gateway == "" || gw == d)
	}
	if !ok {
		return fmt.Errorf("%s (namespace %s) routes %s's %s %s; want %s", n, tb.topo.NetNS[n], dst.Role, d, got, want)
	}
	return nil
}
