package ipsec

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The card's C source, read as text: the production package imports nothing of the module, and this
// test needs nothing but the words.
const (
	cardHeader = "../bpf/xdpsec.h"
	cardSource = "../bpf/xdpsec.c"
)

var enumRE = regexp.MustCompile(`(?s)enum\s+(\w+)\s*\{(.*?)\}`)
var enumItemRE = regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*([0-9]+)\s*,`)

// cardEnums returns every enum of the card's header: name → constant → value.
func cardEnums(t *testing.T) map[string]map[string]uint64 {
	t.Helper()
	src, err := os.ReadFile(cardHeader)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]uint64{}
	for _, m := range enumRE.FindAllStringSubmatch(string(src), -1) {
		items := map[string]uint64{}
		for _, it := range enumItemRE.FindAllStringSubmatch(m[2], -1) {
			v, err := strconv.ParseUint(it[2], 10, 32)
			if err != nil {
				t.Fatalf("enum %s: %s = %s: %v", m[1], it[1], it[2], err)
			}
			items[it[1]] = v
		}
		out[m[1]] = items
	}
	return out
}

// TestCardValues pins the vocabulary's numbers to the card's C enums: a change on either side fails
// here, not in a packet that goes the wrong way.
func TestCardValues(t *testing.T) {
	enums := cardEnums(t)
	for _, tc := range []struct {
		enum string
		want map[string]uint64
	}{
		{"xdpsec_dir", map[string]uint64{"XDPSEC_DIR_OUT": uint64(DirOut), "XDPSEC_DIR_IN": uint64(DirIn)}},
		{"xdpsec_action", map[string]uint64{"XDPSEC_ACT_BYPASS": uint64(ActionBypass),
			"XDPSEC_ACT_PROTECT": uint64(ActionProtect), "XDPSEC_ACT_DISCARD": uint64(ActionDiscard)}},
		{"xdpsec_mode", map[string]uint64{"XDPSEC_MODE_TUNNEL": uint64(ModeTunnel), "XDPSEC_MODE_TRANSPORT": uint64(ModeTransport)}},
	} {
		got, ok := enums[tc.enum]
		if !ok {
			t.Errorf("%s: no enum %s", cardHeader, tc.enum)
			continue
		}
		// Every constant of the card has its Go value, and there are no others.
		for name, v := range got {
			if w, ok := tc.want[name]; !ok {
				t.Errorf("enum %s: %s = %d has no value in package ipsec", tc.enum, name, v)
			} else if v != w {
				t.Errorf("enum %s: %s = %d, package ipsec has %d", tc.enum, name, v, w)
			}
		}
		for name := range tc.want {
			if _, ok := got[name]; !ok {
				t.Errorf("enum %s: no %s", tc.enum, name)
			}
		}
	}
	// DirFwd is the control plane's own: it must not be a value the card gives a meaning to.
	for name, v := range enums["xdpsec_dir"] {
		if v == uint64(DirFwd) {
			t.Errorf("DirFwd = %d is the card's %s", DirFwd, name)
		}
	}

	hdr, err := os.ReadFile(cardHeader)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`#define\s+XDPSEC_NONE_U32\s+(0x[0-9a-fA-F]+)`).FindSubmatch(hdr)
	if m == nil {
		t.Fatalf("%s: no XDPSEC_NONE_U32", cardHeader)
	}
	if v, _ := strconv.ParseUint(string(m[1][2:]), 16, 32); uint32(v) != NoSA {
		t.Errorf("XDPSEC_NONE_U32 = %s, NoSA = %#x", m[1], NoSA)
	}
}

// ianaProto are the IPPROTO_ names the card's source may use, with their numbers.
var ianaProto = map[string]Proto{
	"IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_DCCP": 33, "IPPROTO_GRE": 47,
	"IPPROTO_ESP": 50, "IPPROTO_AH": 51, "IPPROTO_ICMPV6": 58, "IPPROTO_SCTP": 132, "IPPROTO_UDPLITE": 136,
}

// TestCardPortRule pins HasPorts to the card's proto_has_ports: the selector's port rule and the
// card's parser must agree, or a policy the control plane accepts would never match.
func TestCardPortRule(t *testing.T) {
	src, err := os.ReadFile(cardSource)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\bproto_has_ports\s*\([^)]*\)\s*\{(.*?)\}`).FindSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no function proto_has_ports", cardSource)
	}
	var card []Proto
	for _, name := range regexp.MustCompile(`IPPROTO_\w+`).FindAllString(string(m[1]), -1) {
		p, ok := ianaProto[name]
		if !ok {
			t.Fatalf("proto_has_ports names %s, which this test does not know", name)
		}
		card = append(card, p)
	}
	var ours []Proto
	for p := range 256 {
		if Proto(p).HasPorts() {
			ours = append(ours, Proto(p))
		}
	}
	slices.Sort(card)
	card = slices.Compact(card)
	if !slices.Equal(card, ours) {
		t.Errorf("the card's proto_has_ports is %v, HasPorts is %v", names(card), names(ours))
	}
}

func names(ps []Proto) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, " ")
}
