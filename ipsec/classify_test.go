package ipsec

import (
	"errors"
	"net/netip"
	"testing"
)

func sel(src, dst string, proto Proto, sp, dp PortRange) Selector {
	return Selector{Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst), Proto: proto, SrcPorts: sp, DstPorts: dp}
}

func TestSelectorValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Selector
		ok   bool
	}{
		{"any v4", sel("0.0.0.0/0", "0.0.0.0/0", 0, AnyPorts, AnyPorts), true},
		{"tcp ports", sel("198.18.0.0/16", "198.18.1.0/24", ProtoTCP, AnyPorts, Ports(80, 80)), true},
		{"icmp type", sel("2001:2::/48", "::/0", ProtoICMPv6, Ports(128, 129), AnyPorts), true},
		{"mixed families", sel("198.18.0.0/16", "2001:2::/48", 0, AnyPorts, AnyPorts), false},
		{"host bits", sel("198.18.0.1/16", "0.0.0.0/0", 0, AnyPorts, AnyPorts), false},
		{"ports without proto", sel("0.0.0.0/0", "0.0.0.0/0", 0, AnyPorts, Ports(500, 500)), false},
		{"ports on gre", sel("0.0.0.0/0", "0.0.0.0/0", 47, Ports(1, 2), AnyPorts), false},
		{"zero ports without proto", sel("0.0.0.0/0", "0.0.0.0/0", 0, Port(0), Port(0)), false},
		{"empty range", sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, Ports(9, 8), AnyPorts), false},
		{"icmp code over 255", sel("0.0.0.0/0", "0.0.0.0/0", ProtoICMP, AnyPorts, Ports(0, 300)), false},
		{"missing prefix", Selector{Proto: 0, SrcPorts: AnyPorts, DstPorts: AnyPorts}, false},
	} {
		err := tc.s.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrBadSelector) {
			t.Errorf("%s: error %v is not ErrBadSelector", tc.name, err)
		}
	}
}

func TestLookupOrderAndDefaults(t *testing.T) {
	pols := []Policy{
		{ID: 7, Dir: DirOut, Priority: 100, Selector: sel("198.18.1.0/24", "198.18.2.0/24", 0, AnyPorts, AnyPorts), Action: ActionProtect, SA: 3},
		{ID: 5, Dir: DirOut, Priority: 100, Selector: sel("198.18.1.0/24", "198.18.2.0/23", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
		{ID: 9, Dir: DirOut, Priority: 50, Selector: sel("198.18.1.0/24", "198.18.2.0/24", ProtoUDP, AnyPorts, Ports(500, 500)), Action: ActionBypass, SA: NoSA},
		{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPorts, Ports(500, 500)), Action: ActionBypass, SA: NoSA},
	}
	c, err := NewClassifier(pols, Defaults{Out: ActionBypass, In: ActionDiscard})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		dir  Dir
		t    Tuple
		want Decision
	}{
		{"equal priority: lower id wins", DirOut, Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoTCP, SrcPort: 1, DstPort: 2},
			Decision{Matched: true, PolicyID: 5, Action: ActionDiscard, SA: NoSA}},
		{"lower priority number wins", DirOut, Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoUDP, SrcPort: 500, DstPort: 500},
			Decision{Matched: true, PolicyID: 9, Action: ActionBypass, SA: NoSA}},
		{"no match: out default", DirOut, Tuple{Src: a("198.18.9.1"), Dst: a("198.18.2.1"), Proto: ProtoTCP},
			Decision{Action: ActionBypass, SA: NoSA}},
		{"no match: in default", DirIn, Tuple{Src: a("198.18.9.1"), Dst: a("198.18.2.1"), Proto: ProtoTCP},
			Decision{Action: ActionDiscard, SA: NoSA}},
		{"other family never matches", DirOut, Tuple{Src: a("2001:2::1"), Dst: a("2001:2::2"), Proto: ProtoTCP},
			Decision{Action: ActionBypass, SA: NoSA}},
		{"fragment behind port-constrained policy is ambiguous", DirOut, Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoUDP, NonFirstFragment: true},
			Decision{Ambiguous: true, Action: ActionDiscard, SA: NoSA}},
		{"fragment of other protocol matches portless policy", DirOut, Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoTCP, NonFirstFragment: true},
			Decision{Matched: true, PolicyID: 5, Action: ActionDiscard, SA: NoSA}},
	} {
		if got := c.Lookup(tc.dir, tc.t); got != tc.want {
			t.Errorf("%s: Lookup = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	pols[0].ID = 5
	if _, err := NewClassifier(pols, Defaults{}); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("duplicate id: err = %v, want ErrBadPolicy", err)
	}
}

// TestLookupSelectors checks each selector field against hand-computed answers: the card's equivalence
// test trusts this classifier, so it must be right on its own.
func TestLookupSelectors(t *testing.T) {
	pols := []Policy{
		{ID: 1, Dir: DirOut, Priority: 10, Selector: sel("198.18.1.0/24", "198.18.2.0/24", ProtoICMP, Ports(8, 8), Ports(0, 0)), Action: ActionBypass, SA: NoSA},
		{ID: 2, Dir: DirOut, Priority: 10, Selector: sel("198.18.1.0/24", "198.18.2.0/24", ProtoTCP, Ports(1000, 2000), Ports(443, 445)), Action: ActionProtect, SA: 4},
		{ID: 3, Dir: DirOut, Priority: 10, Selector: sel("2001:2:1::/64", "2001:2:2::/48", ProtoICMPv6, Ports(128, 129), AnyPorts), Action: ActionBypass, SA: NoSA},
		{ID: 4, Dir: DirOut, Priority: 10, Selector: sel("2001:2:1::/64", "2001:2::/32", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
		{ID: 5, Dir: DirOut, Priority: 20, Selector: sel("198.18.1.128/25", "0.0.0.0/0", 0, AnyPorts, AnyPorts), Action: ActionDiscard, SA: NoSA},
	}
	c, err := NewClassifier(pols, Defaults{Out: ActionBypass, In: ActionBypass})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	v4 := func(src string, proto Proto, sp, dp uint16) Tuple {
		return Tuple{Src: a(src), Dst: a("198.18.2.9"), Proto: proto, SrcPort: sp, DstPort: dp}
	}
	v6 := func(src, dst string, proto Proto, sp, dp uint16) Tuple {
		return Tuple{Src: a(src), Dst: a(dst), Proto: proto, SrcPort: sp, DstPort: dp}
	}
	for _, tc := range []struct {
		name string
		t    Tuple
		want uint32 // policy ID, 0 for the default
	}{
		{"icmp echo request (type 8 code 0)", v4("198.18.1.1", ProtoICMP, 8, 0), 1},
		{"icmp type 8 code 1 is outside", v4("198.18.1.1", ProtoICMP, 8, 1), 0},
		{"icmp echo reply (type 0) is outside", v4("198.18.1.1", ProtoICMP, 0, 0), 0},
		{"tcp at both range starts", v4("198.18.1.1", ProtoTCP, 1000, 443), 2},
		{"tcp at both range ends", v4("198.18.1.1", ProtoTCP, 2000, 445), 2},
		{"tcp source port one past the range", v4("198.18.1.1", ProtoTCP, 2001, 443), 0},
		{"tcp destination port one below the range", v4("198.18.1.1", ProtoTCP, 1500, 442), 0},
		{"udp does not match a tcp selector", v4("198.18.1.1", ProtoUDP, 1500, 443), 0},
		{"source outside 198.18.1.0/24", v4("198.18.0.255", ProtoTCP, 1500, 443), 0},
		{"the /25 catches what the ports miss", v4("198.18.1.200", ProtoTCP, 1, 1), 5},
		{"the /25 loses to the earlier priority", v4("198.18.1.200", ProtoTCP, 1500, 444), 2},
		{"icmpv6 echo request", v6("2001:2:1::5", "2001:2:2::7", ProtoICMPv6, 128, 0), 3},
		{"icmpv6 echo reply, any code", v6("2001:2:1::5", "2001:2:2::7", ProtoICMPv6, 129, 255), 3},
		{"icmpv6 type 130 falls to the /32", v6("2001:2:1::5", "2001:2:2::7", ProtoICMPv6, 130, 0), 4},
		{"destination outside the /48, inside the /32", v6("2001:2:1::5", "2001:2:3::7", ProtoICMPv6, 128, 0), 4},
		{"source outside the /64", v6("2001:2:1:1::5", "2001:2:2::7", ProtoTCP, 1, 2), 0},
		{"ipv4-mapped ipv6 is not ipv4", v6("::ffff:198.18.1.1", "::ffff:198.18.2.9", ProtoICMP, 8, 0), 0},
	} {
		got := c.Lookup(DirOut, tc.t)
		if !got.Matched && tc.want != 0 || got.Matched && got.PolicyID != tc.want {
			t.Errorf("%s: Lookup = %+v, want policy %d", tc.name, got, tc.want)
		}
	}
}
