package offload

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The check's own resolution of policy → SA, case by case. The engine's resolution is compared with it
// on every Check (TestRaceChurn runs thousands of them), so the two are written separately.
func TestRefResolver(t *testing.T) {
	dst := netip.MustParseAddr("198.19.0.1")
	sa := func(index uint32, serial uint64, name string, reqid uint32, spi uint32) sadb.SAEntry {
		return sadb.SAEntry{SA: sadb.SA{Name: name, Reqid: reqid, SPI: spi, Dst: dst, Src: netip.MustParseAddr("198.18.0.1"),
			Proto: ipsec.ProtoESP, Mode: ipsec.ModeTunnel}, Index: index, Serial: serial}
	}
	base := []sadb.SAEntry{
		sa(1, 1, "old", 7, 0x101),
		sa(2, 2, "new", 7, 0x102),
		sa(3, 3, "newest-dying", 7, 0x103),
		sa(4, 4, "not-held", 7, 0x104),
		sa(5, 5, "wrong-spi-held", 7, 0x105),
		sa(6, 6, "inbound-only", 8, 0x106),
		sa(7, 7, "lan-only", 9, 0x107),
		sa(8, 8, "dead", 10, 0x108),
	}
	base[2].State = sadb.StateDying
	base[5].Dir = new(ipsec.DirIn)
	base[6].Offload = []string{"lan0"}
	base[7].State = sadb.StateDead
	held := map[uint32]CardSA{}
	for _, e := range base {
		if e.Name != "not-held" {
			held[e.Index] = CardSA{Index: e.Index, SPI: e.SPI, Dst: e.Dst}
		}
	}
	held[5] = CardSA{Index: 5, SPI: 0x999, Dst: dst}
	card := CardState{SAs: map[string]map[uint32]CardSA{"lan0": held, "wan0": held}}

	pol := func(dir ipsec.Dir, tmpl *sadb.Tmpl) *sadb.PolicyEntry {
		return &sadb.PolicyEntry{Policy: sadb.Policy{Dir: dir, Action: ipsec.ActionProtect, Tmpl: tmpl}}
	}
	for _, tc := range []struct {
		name  string
		p     *sadb.PolicyEntry
		wire  string
		want  uint32
		dying bool // mark "old" and "new" dying too
	}{
		{"reqid: newest mature wins over a newer dying one", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7}), "", 2, false},
		{"reqid: all dying: newest dying", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7}), "", 3, true},
		{"name picks that SA", pol(ipsec.DirOut, &sadb.Tmpl{SA: "old"}), "", 1, false},
		{"name and reqid must both agree", pol(ipsec.DirOut, &sadb.Tmpl{SA: "old", Reqid: 8}), "", ipsec.NoSA, false},
		{"an SA the card lacks is not used", pol(ipsec.DirOut, &sadb.Tmpl{SA: "not-held"}), "", ipsec.NoSA, false},
		{"the card holds another SA at its index", pol(ipsec.DirOut, &sadb.Tmpl{SA: "wrong-spi-held"}), "", ipsec.NoSA, false},
		{"an inbound SA does not serve an outbound policy", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 8}), "", ipsec.NoSA, false},
		{"an inbound SA serves an inbound policy", pol(ipsec.DirIn, &sadb.Tmpl{Reqid: 8}), "", 6, false},
		{"template spi narrows", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7, SPI: 0x101}), "", 1, false},
		{"template mode narrows", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7, Mode: ipsec.ModeTransport}), "", ipsec.NoSA, false},
		{"template mode matches", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7, Mode: ipsec.ModeTunnel}), "", 2, false},
		{"template dst narrows", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 7, Dst: netip.MustParseAddr("198.19.0.2")}), "", ipsec.NoSA, false},
		{"per-interface tables: the list admits lan0", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 9}), "", 7, false},
		{"shared tables: a list without the wire interface", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 9}), "wan0", ipsec.NoSA, false},
		{"a dead SA never", pol(ipsec.DirOut, &sadb.Tmpl{Reqid: 10}), "", ipsec.NoSA, false},
		{"no template", pol(ipsec.DirOut, nil), "", ipsec.NoSA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sas := append([]sadb.SAEntry(nil), base...)
			if tc.dying {
				sas[0].State, sas[1].State = sadb.StateDying, sadb.StateDying
			}
			if got := newRefResolver(sas, card, tc.wire).resolve(tc.p, "lan0"); got != tc.want {
				t.Fatalf("resolve = %d, want %d", got, tc.want)
			}
		})
	}
	bypass := &sadb.PolicyEntry{Policy: sadb.Policy{Dir: ipsec.DirOut, Action: ipsec.ActionBypass, Tmpl: &sadb.Tmpl{Reqid: 7}}}
	if got := newRefResolver(base, card, "").resolve(bypass, "lan0"); got != ipsec.NoSA {
		t.Fatalf("bypass resolves to %d", got)
	}
}
