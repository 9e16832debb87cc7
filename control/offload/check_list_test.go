package offload_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// The post-decryption check lists the engine offers with inbound SAs: what they hold, and that
// every change of the inbound SPD that concerns an SA reaches the card (RFC 4301 §5.2).

func (r *rig) checkList(t *testing.T, e sadb.SAEntry) ipsec.CheckList {
	t.Helper()
	sa, ok := r.card.SA("wan0", e.Index)
	if !ok {
		t.Fatalf("sa %s (index %d) not in the card", e.Name, e.Index)
	}
	return sa.Check
}

func inboundSA(name string, spi, reqid uint32) sadb.SA {
	sa := mkSA(name, spi, reqid)
	sa.Dir = new(ipsec.DirIn)
	return sa
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestCheckListFirstMatch(t *testing.T) {
	r := newRig(t, fakecard.New("lan0", "wan0"))
	a := r.add(t, inboundSA("a", 0x1001, 1))
	prot := r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	// Before the PROTECT policy: a DISCARD that overlaps it, one that cannot (another destination),
	// and an outbound one (another direction). After it: a BYPASS, which can never win over it.
	disc := sadb.Policy{Name: "no-ssh", Dir: ipsec.DirIn, Priority: 10, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Src: prefix("198.18.1.0/24"), Dst: prefix("198.18.2.0/25"), Proto: ipsec.ProtoTCP, DstPorts: ipsec.Port(22)}}
	r.addPolicy(t, disc)
	r.addPolicy(t, sadb.Policy{Name: "elsewhere", Dir: ipsec.DirIn, Priority: 10, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Src: prefix("198.18.1.0/24"), Dst: prefix("198.18.9.0/24")}})
	r.addPolicy(t, sadb.Policy{Name: "out", Dir: ipsec.DirOut, Priority: 1, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Src: prefix("198.18.1.0/24"), Dst: prefix("198.18.2.0/24")}})
	r.addPolicy(t, sadb.Policy{Name: "after", Dir: ipsec.DirIn, Priority: 200, Action: ipsec.ActionBypass,
		Sel: ipsec.Selector{Src: prefix("198.18.1.0/24"), Dst: prefix("198.18.2.0/23")}})
	r.sync(t)
	want := ipsec.CheckList{{Selector: disc.Sel, Accept: false}, {Selector: prot.Sel, Accept: true}}
	if got := r.checkList(t, a); !slices.Equal(got, want) {
		t.Fatalf("check list\n%v\nwant\n%v", got, want)
	}
	// Reprioritised below the PROTECT policy, the DISCARD leaves the list.
	disc.Priority = 150
	if _, err := r.store.UpdatePolicy(disc); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	if got := r.checkList(t, a); !slices.Equal(got, want[1:]) {
		t.Fatalf("after the DISCARD moved below: %v", got)
	}
	r.check(t)
}

// TestCheckListWithdrawal: deleting an SA's last inbound PROTECT policy, turning it into a bypass
// or a discard, or pointing it at another SA, leaves the SA in the card with an empty check list
// (it rejects everything it decrypts), and still inbound.
func TestCheckListWithdrawal(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, r *rig, p sadb.Policy)
	}{
		{"delete", func(t *testing.T, r *rig, p sadb.Policy) {
			if _, err := r.store.DeletePolicy(sadb.PolicyRef{Name: p.Name}); err != nil {
				t.Fatal(err)
			}
		}},
		{"bypass", func(t *testing.T, r *rig, p sadb.Policy) {
			p.Action, p.Tmpl = ipsec.ActionBypass, nil
			if _, err := r.store.UpdatePolicy(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"discard", func(t *testing.T, r *rig, p sadb.Policy) {
			p.Action, p.Tmpl = ipsec.ActionDiscard, nil
			if _, err := r.store.UpdatePolicy(p); err != nil {
				t.Fatal(err)
			}
		}},
		{"re-point", func(t *testing.T, r *rig, p sadb.Policy) {
			p.Tmpl = &sadb.Tmpl{Reqid: 2}
			if _, err := r.store.UpdatePolicy(p); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dirless := range []bool{false, true} {
				r := newRig(t, fakecard.New("lan0", "wan0"))
				sa := inboundSA("a", 0x1001, 1)
				if dirless {
					sa.Dir = nil // inbound because an inbound policy names it
				}
				a := r.add(t, sa)
				b := r.add(t, inboundSA("b", 0x1002, 2))
				p := mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1)
				r.addPolicy(t, p)
				r.sync(t)
				if l := r.checkList(t, a); !l.ServesAny() {
					t.Fatalf("before: %v", l)
				}
				installs := func() int { s, _ := r.card.SA("wan0", a.Index); return s.Installs }
				n := installs()
				tc.do(t, r, p)
				r.sync(t)
				if l := r.checkList(t, a); len(l) != 0 {
					t.Fatalf("dirless %v: after the withdrawal the SA's list is %v, want empty", dirless, l)
				}
				if installs() != n+1 {
					t.Fatalf("dirless %v: the SA was offered %d times, want once more (in place)", dirless, installs()-n)
				}
				if d := r.engine.Direction(&a); d != ipsec.DirIn {
					t.Fatalf("dirless %v: direction %s after the withdrawal, want in", dirless, d)
				}
				if s := state(t, r, a, "wan0"); s.Status != offload.StatusOffloaded {
					t.Fatalf("dirless %v: state %+v", dirless, s)
				}
				if tc.name == "re-point" && !r.checkList(t, b).ServesAny() {
					t.Fatalf("the SA the policy now names got %v", r.checkList(t, b))
				}
				r.check(t)
			}
		})
	}
}

// TestCheckListRekey: during a rekey both SAs serve the policy, and a DISCARD added before it reaches
// both lists.
func TestCheckListRekey(t *testing.T) {
	r := newRig(t, fakecard.New("lan0", "wan0"))
	r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	a := r.add(t, inboundSA("a", 0x1001, 1))
	r.sync(t)
	b := r.add(t, inboundSA("b", 0x1002, 1))
	disc := r.addPolicy(t, sadb.Policy{Name: "no-ssh", Dir: ipsec.DirIn, Priority: 10, Action: ipsec.ActionDiscard,
		Sel: ipsec.Selector{Src: prefix("198.18.1.0/24"), Dst: prefix("198.18.2.0/24"), Proto: ipsec.ProtoTCP, DstPorts: ipsec.Port(22)}})
	r.sync(t)
	for _, e := range []sadb.SAEntry{a, b} {
		l := r.checkList(t, e)
		if len(l) != 2 || l[0].Selector != disc.Sel || l[0].Accept || !l[1].Accept {
			t.Fatalf("sa %s: %v", e.Name, l)
		}
	}
	r.check(t)
}
