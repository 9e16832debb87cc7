package ipsec

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
)

func TestWordsRoundTrip(t *testing.T) {
	for _, d := range []Dir{DirOut, DirIn, DirFwd} {
		var got Dir
		if b, _ := d.MarshalText(); got.UnmarshalText(b) != nil || got != d {
			t.Errorf("dir %d: text %q reads back as %d", d, b, got)
		}
	}
	for _, a := range []Action{ActionBypass, ActionProtect, ActionDiscard} {
		var got Action
		if b, _ := a.MarshalText(); got.UnmarshalText(b) != nil || got != a {
			t.Errorf("action %d: text %q reads back as %d", a, b, got)
		}
	}
	for _, m := range []Mode{0, ModeTunnel, ModeTransport} {
		var got Mode = 7
		if b, _ := m.MarshalText(); got.UnmarshalText(b) != nil || got != m {
			t.Errorf("mode %d: text %q reads back as %d", m, b, got)
		}
	}
	for p := range 256 {
		got, err := ParseProto(Proto(p).String())
		if err != nil || got != Proto(p) {
			t.Errorf("proto %d: %q reads back as %d, %v", p, Proto(p), got, err)
		}
	}
}

func TestParseWords(t *testing.T) {
	for in, want := range map[string]Action{"allow": ActionBypass, "PASS": ActionBypass, "ipsec": ActionProtect,
		"block": ActionDiscard, "drop": ActionDiscard, "discard": ActionDiscard} {
		if got, err := ParseAction(in); err != nil || got != want {
			t.Errorf("ParseAction(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]Proto{"icmpv6": ProtoICMPv6, "icmp6": ProtoICMPv6, "udp-lite": ProtoUDPLite,
		"UDPLite": ProtoUDPLite, "": ProtoAny, "0": ProtoAny, "47": ProtoGRE, "dccp": ProtoDCCP} {
		if got, err := ParseProto(in); err != nil || got != want {
			t.Errorf("ParseProto(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"forward", ""} {
		if _, err := ParseDir(bad); err == nil {
			t.Errorf("ParseDir(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"allowed", ""} {
		if _, err := ParseAction(bad); err == nil {
			t.Errorf("ParseAction(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"tcpp", "256", "-1"} {
		if _, err := ParseProto(bad); err == nil {
			t.Errorf("ParseProto(%q) accepted", bad)
		}
	}
	if _, err := ParseMode("beet"); err == nil {
		t.Error("ParseMode(beet) accepted")
	}
}

// TestHasPorts pins the one list of protocols that carry ports (the card's; ICMP carries a type and
// code instead).
func TestHasPorts(t *testing.T) {
	var ports, icmp []string
	for p := range 256 {
		if Proto(p).HasPorts() {
			ports = append(ports, Proto(p).String())
		}
		if Proto(p).IsICMP() {
			icmp = append(icmp, Proto(p).String())
		}
	}
	if got := strings.Join(ports, " "); got != "tcp udp dccp sctp udplite" {
		t.Errorf("HasPorts: %s", got)
	}
	if got := strings.Join(icmp, " "); got != "icmp ipv6-icmp" {
		t.Errorf("IsICMP: %s", got)
	}
}

func TestPortRange(t *testing.T) {
	if AnyPorts != (PortRange{}) || Ports(0, 65535) != AnyPorts || !Ports(0, 65535).IsAny() {
		t.Fatal("the zero range, the full range and AnyPorts must be one value")
	}
	if Port(0).IsAny() || Port(0).Lo() != 0 || Port(0).Hi() != 0 || !Port(0).Contains(0) || Port(0).Contains(1) {
		t.Fatalf("port 0 (ICMP echo reply) must be a range of its own: %v", Port(0))
	}
	if Ports(80, 80) != Port(80) || Ports(80, 81) == Port(80) {
		t.Fatal("ranges do not compare by their ends")
	}
	for _, tc := range []struct {
		r    PortRange
		text string
		json string
	}{
		{AnyPorts, "any", `{"lo":0,"hi":65535}`},
		{Port(0), "0", `{"lo":0,"hi":0}`},
		{Port(443), "443", `{"lo":443,"hi":443}`},
		{Ports(1000, 2000), "1000-2000", `{"lo":1000,"hi":2000}`},
		{Ports(0, 65534), "0-65534", `{"lo":0,"hi":65534}`},
	} {
		if s := tc.r.String(); s != tc.text {
			t.Errorf("%v: String = %q, want %q", tc.r, s, tc.text)
		}
		if got, err := ParsePorts(tc.text); err != nil || got != tc.r {
			t.Errorf("ParsePorts(%q) = %v, %v", tc.text, got, err)
		}
		j, _ := json.Marshal(tc.r)
		if string(j) != tc.json {
			t.Errorf("%v: JSON %s, want %s", tc.r, j, tc.json)
		}
		var back PortRange
		if err := json.Unmarshal(j, &back); err != nil || back != tc.r {
			t.Errorf("%s reads back as %v, %v", j, back, err)
		}
	}
	var r PortRange = Port(9)
	if err := json.Unmarshal([]byte(`{}`), &r); err != nil || !r.IsAny() {
		t.Errorf("{} = %v, %v; want any", r, err)
	}
	for _, bad := range []string{`{"lo":2,"hi":1}`, `{"lo":2}`, `{"hi":2}`, `{"lo":70000,"hi":70000}`, `"80"`} {
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s accepted as %v", bad, r)
		}
	}
	for _, bad := range []string{"2-1", "80-", "-80", "65536", "x", ""} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}

// TestSelectorJSON pins the API's form of a selector: ports omitted when any, the protocol a number.
func TestSelectorJSON(t *testing.T) {
	s := Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
		Proto: ProtoICMP, SrcPorts: Port(0)}
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"src":"198.18.1.0/24","dst":"198.18.2.0/24","proto":1,"sport":{"lo":0,"hi":0}}`; string(j) != want {
		t.Fatalf("JSON %s, want %s", j, want)
	}
	var back Selector
	if err := json.Unmarshal(j, &back); err != nil || back != s {
		t.Fatalf("reads back as %v, %v", back, err)
	}
	if got := s.String(); got != "src 198.18.1.0/24 dst 198.18.2.0/24 proto icmp sport 0" {
		t.Fatalf("String = %q", got)
	}
}

func TestMatchesFragments(t *testing.T) {
	a := netip.MustParseAddr
	frag := Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoUDP, NonFirstFragment: true}
	ports := sel("198.18.1.0/24", "198.18.2.0/24", ProtoUDP, AnyPorts, Port(53))
	portless := sel("198.18.1.0/24", "198.18.2.0/24", ProtoUDP, AnyPorts, AnyPorts)
	if ports.Matches(&frag) {
		t.Error("a non-first fragment matched a selector that constrains ports")
	}
	if !portless.Matches(&frag) {
		t.Error("a non-first fragment did not match a selector without ports")
	}
	whole := Tuple{Src: a("198.18.1.1"), Dst: a("198.18.2.1"), Proto: ProtoUDP, SrcPort: 9, DstPort: 53}
	if !ports.Matches(&whole) {
		t.Error("udp to port 53 did not match dport 53")
	}
	whole.DstPort = 54
	if ports.Matches(&whole) {
		t.Error("udp to port 54 matched dport 53")
	}
}
