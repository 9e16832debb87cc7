package offload_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func ikeOut(prio, reqid uint32) sadb.Policy {
	p := mkPolicy("", ipsec.DirOut, "198.18.2.0/24", reqid)
	p.Owner, p.Priority = sadb.OwnerIKE, prio
	if reqid == 0 {
		p.Action, p.Tmpl = ipsec.ActionDiscard, nil
	}
	return p
}

func policyState(t *testing.T, r *rig, id uint32, iface string) offload.IfaceState {
	t.Helper()
	for _, s := range r.engine.PolicyStates(id) {
		if s.Iface == iface {
			return s
		}
	}
	return offload.IfaceState{}
}

// TestShadowedPolicies: of the policies with one (dir, selector) only the winner is in the card, and
// when another one takes over the card changes entry make-before-break: the selector never leaves the
// card in between, also when the new winner cannot be installed at first.
func TestShadowedPolicies(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	card.Protected, card.Wire = "lan0", "wan0"
	var mu sync.Mutex
	var gaps []string
	sel := ikeOut(100, 1).Sel
	card.AfterRemovePolicy = func(id uint32, iface string) {
		if !card.HasSelectorLocked(iface, ipsec.DirOut, sel) {
			mu.Lock()
			gaps = append(gaps, fmt.Sprintf("policy %d removed from %s with no entry for its selector left", id, iface))
			mu.Unlock()
		}
	}
	r := newRig(t, card)
	sa := mkSA("", 0x1001, 1)
	sa.Owner = sadb.OwnerIKE
	a := r.add(t, sa)
	child := r.addPolicy(t, ikeOut(100, 1))
	r.sync(t)
	trap := r.addPolicy(t, ikeOut(101, 1))
	r.sync(t)
	r.check(t)
	if _, ok := card.Policy("lan0", trap.ID); ok {
		t.Fatal("the shadowed trap policy is in the card")
	}
	if p, ok := card.Policy("lan0", child.ID); !ok || p.SA != a.Index {
		t.Fatalf("the child policy: %+v %v", p, ok)
	}
	if st := policyState(t, r, trap.ID, "lan0"); st.Status != offload.StatusShadowed {
		t.Fatalf("trap state %+v, want shadowed", st)
	}

	// A newer discard with the trap's priority wins over the trap but not over the child.
	drop := r.addPolicy(t, ikeOut(101, 0))
	r.sync(t)
	r.check(t)
	if _, ok := card.Policy("lan0", drop.ID); ok {
		t.Fatal("the discard, behind the child, is in the card")
	}
	// The child goes: the discard takes over, installed before the child's entry leaves.
	if _, err := r.store.DeletePolicy(sadb.PolicyRef{ID: child.ID}); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	r.check(t)
	if p, ok := card.Policy("lan0", drop.ID); !ok || p.Action != ipsec.ActionDiscard {
		t.Fatalf("the discard took over: %+v %v", p, ok)
	}
	if _, ok := card.Policy("lan0", child.ID); ok {
		t.Fatal("the deleted child is still in the card")
	}

	// The discard goes while the trap cannot be installed: the discard's entry stays until it can.
	card.Fail = func(op, iface string, id uint32) error {
		if op == "install-policy" && id == trap.ID {
			return fmt.Errorf("injected")
		}
		return nil
	}
	if _, err := r.store.DeletePolicy(sadb.PolicyRef{ID: drop.ID}); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	if _, ok := card.Policy("lan0", drop.ID); !ok {
		t.Fatal("the discard left before its replacement was in the card")
	}
	card.Fail = nil
	r.engine.Kick()
	testutil.WaitFor(t, 10*time.Second, "the trap to replace the discard", func() bool {
		_, trapIn := card.Policy("lan0", trap.ID)
		_, dropIn := card.Policy("lan0", drop.ID)
		return trapIn && !dropIn
	})
	r.sync(t)
	r.check(t)
	mu.Lock()
	defer mu.Unlock()
	if len(gaps) > 0 {
		t.Fatalf("the selector left the card: %v", gaps)
	}
}

// TestFwdNotOffloaded: fwd policies are stored but never offered to the card, and have no offload state.
func TestFwdNotOffloaded(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	card.Protected, card.Wire = "lan0", "wan0"
	r := newRig(t, card)
	in := mkPolicy("", ipsec.DirIn, "198.18.1.0/24", 1)
	in.Sel.Src = netip.MustParsePrefix("198.18.2.0/24")
	in.Owner = sadb.OwnerIKE
	fwd := in
	fwd.Dir = ipsec.DirFwd
	sa := mkSA("", 0x2001, 1)
	sa.Owner, sa.Dir = sadb.OwnerIKE, new(ipsec.DirIn)
	a := r.add(t, sa)
	pin := r.addPolicy(t, in)
	pfwd := r.addPolicy(t, fwd)
	r.sync(t)
	rep := r.check(t)
	if rep.CardPolicies != 2 { // the in policy, on both interfaces of the shared table
		t.Fatalf("card policies %d, want the in policy on 2 interfaces", rep.CardPolicies)
	}
	if st := r.engine.PolicyStates(pfwd.ID); len(st) != 0 {
		t.Fatalf("fwd policy has offload state %+v", st)
	}
	for _, ifc := range []string{"lan0", "wan0"} {
		if _, ok := card.Policy(ifc, pfwd.ID); ok {
			t.Fatalf("fwd policy in the card on %s", ifc)
		}
	}
	// The SA is checked against the in policy only (once, not again for fwd).
	got, ok := card.SA("wan0", a.Index)
	if !ok || len(got.Check) != 1 || got.Check[0].Selector != pin.Sel || !got.Check[0].Accept {
		t.Fatalf("inbound sa check list %+v", got.Check)
	}
}
