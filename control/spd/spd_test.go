package spd

import (
	"errors"
	"net/netip"
	"testing"
)

func sel(src, dst string, proto uint8, sp, dp PortRange) Selector {
	return Selector{Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst), Proto: proto, SrcPorts: sp, DstPorts: dp}
}

func TestSelectorValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Selector
		ok   bool
	}{
		{"any v4", sel("0.0.0.0/0", "0.0.0.0/0", 0, AnyPort, AnyPort), true},
		{"tcp ports", sel("198.18.0.0/16", "198.18.1.0/24", ProtoTCP, AnyPort, PortRange{80, 80}), true},
		{"icmp type", sel("2001:2::/48", "::/0", ProtoICMPv6, PortRange{128, 129}, AnyPort), true},
		{"mixed families", sel("198.18.0.0/16", "2001:2::/48", 0, AnyPort, AnyPort), false},
		{"host bits", sel("198.18.0.1/16", "0.0.0.0/0", 0, AnyPort, AnyPort), false},
		{"ports without proto", sel("0.0.0.0/0", "0.0.0.0/0", 0, AnyPort, PortRange{500, 500}), false},
		{"ports on gre", sel("0.0.0.0/0", "0.0.0.0/0", 47, PortRange{1, 2}, AnyPort), false},
		{"zero ports without proto", sel("0.0.0.0/0", "0.0.0.0/0", 0, PortRange{}, PortRange{}), false},
		{"empty range", sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, PortRange{9, 8}, AnyPort), false},
		{"icmp code over 255", sel("0.0.0.0/0", "0.0.0.0/0", ProtoICMP, AnyPort, PortRange{0, 300}), false},
		{"missing prefix", Selector{Proto: 0, SrcPorts: AnyPort, DstPorts: AnyPort}, false},
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
		{ID: 7, Dir: DirOut, Priority: 100, Selector: sel("198.18.1.0/24", "198.18.2.0/24", 0, AnyPort, AnyPort), Action: ActionProtect, SA: 3},
		{ID: 5, Dir: DirOut, Priority: 100, Selector: sel("198.18.1.0/24", "198.18.2.0/23", 0, AnyPort, AnyPort), Action: ActionDiscard, SA: NoSA},
		{ID: 9, Dir: DirOut, Priority: 50, Selector: sel("198.18.1.0/24", "198.18.2.0/24", ProtoUDP, AnyPort, PortRange{500, 500}), Action: ActionBypass, SA: NoSA},
		{ID: 1, Dir: DirIn, Priority: 10, Selector: sel("0.0.0.0/0", "0.0.0.0/0", ProtoUDP, AnyPort, PortRange{500, 500}), Action: ActionBypass, SA: NoSA},
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
