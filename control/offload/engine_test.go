package offload_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/offload/fakecard"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func mkSA(name string, spi, reqid uint32) sadb.SA {
	key := make(sadb.Key, 20)
	for i := range key {
		key[i] = byte(spi) + byte(i) + 1
	}
	return sadb.SA{
		Name: name, SPI: spi, Reqid: reqid,
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"),
		AEAD: &sadb.Algorithm{Name: "rfc4106(gcm(aes))", Key: key, Bits: 128}, ReplayWindow: 128,
	}
}

func mkPolicy(name string, dir ipsec.Dir, dst string, reqid uint32) sadb.Policy {
	return sadb.Policy{Name: name, Dir: dir, Priority: 100, Action: ipsec.ActionProtect,
		Sel:  ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix(dst)},
		Tmpl: &sadb.Tmpl{Reqid: reqid}}
}

type rig struct {
	store  *sadb.Store
	card   *fakecard.Card
	engine *offload.Engine
	bus    *events.Bus
}

func newRig(t *testing.T, card *fakecard.Card) *rig {
	t.Helper()
	r := &rig{store: sadb.New(sadb.Options{}), card: card, bus: events.NewBus(nil)}
	r.engine = offload.New(r.store, card, offload.Options{Events: r.bus, RetryDelay: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { r.engine.Stop(); cancel() })
	r.engine.Start(ctx)
	return r
}

func (r *rig) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.engine.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) check(t *testing.T) offload.Report {
	t.Helper()
	rep, err := r.engine.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("card differs from SAD/SPD:\n%v", rep.Problems)
	}
	if v := r.card.Violations(); len(v) > 0 {
		t.Fatalf("ordering violations: %v", v)
	}
	return rep
}

func (r *rig) add(t *testing.T, sa sadb.SA) sadb.SAEntry {
	t.Helper()
	e, err := r.store.AddSA(sa)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (r *rig) addPolicy(t *testing.T, p sadb.Policy) sadb.PolicyEntry {
	t.Helper()
	e, err := r.store.AddPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func state(t *testing.T, r *rig, e sadb.SAEntry, iface string) offload.IfaceState {
	t.Helper()
	for _, s := range r.engine.SAStates(e.Index, e.Serial) {
		if s.Iface == iface {
			return s
		}
	}
	t.Fatalf("no state for %s", iface)
	return offload.IfaceState{}
}

func TestInstallAndPoint(t *testing.T) {
	r := newRig(t, fakecard.New("lan0", "wan0"))
	pol := r.addPolicy(t, mkPolicy("out", ipsec.DirOut, "198.18.2.0/24", 1))
	// PROTECT without an SA: the card holds the policy with NoSA (it drops and counts), never a bypass.
	r.sync(t)
	if p, ok := r.card.Policy("lan0", pol.ID); !ok || p.SA != ipsec.NoSA || p.Action != ipsec.ActionProtect {
		t.Fatalf("policy without SA: %+v %v", p, ok)
	}
	a := r.add(t, mkSA("a", 0x1001, 1))
	r.sync(t)
	if p, _ := r.card.Policy("lan0", pol.ID); p.SA != a.Index {
		t.Fatalf("policy points at %d, want %d", p.SA, a.Index)
	}
	if s := state(t, r, a, "wan0"); s.Status != offload.StatusOffloaded {
		t.Fatalf("state %+v", s)
	}
	rep := r.check(t)
	if rep.CardSAs != 2 || rep.CardPolicies != 2 {
		t.Fatalf("report %+v", rep)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestRekeyMakeBeforeBreak(t *testing.T) {
	r := newRig(t, fakecard.New("lan0", "wan0"))
	out := r.addPolicy(t, mkPolicy("out", ipsec.DirOut, "198.18.2.0/24", 1))
	in := r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	a := r.add(t, mkSA("a", 0x1001, 1))
	r.sync(t)
	b := r.add(t, mkSA("b", 0x1002, 1))
	r.sync(t)
	// Outbound moves to the newest mature SA at once; both stay in the card for inbound.
	if p, _ := r.card.Policy("lan0", out.ID); p.SA != b.Index {
		t.Fatalf("outbound policy on %d, want the new SA %d", p.SA, b.Index)
	}
	for _, e := range []sadb.SAEntry{a, b} {
		sa, ok := r.card.SA("wan0", e.Index)
		if !ok || len(sa.Check) != 1 || !sa.Check[0].Accept {
			t.Fatalf("sa %d in card %v with check list %v", e.Index, ok, sa.Check)
		}
	}
	_ = in
	// The newest *mature* SA wins: a dying new SA loses to an older mature one.
	r.store.MarkDying(b.Index)
	r.sync(t)
	if p, _ := r.card.Policy("lan0", out.ID); p.SA != a.Index {
		t.Fatalf("policy on dying SA %d, want mature %d", p.SA, a.Index)
	}
	// Deleting terminates the offload before the key is released. The snapshot shares the SAD's key
	// bytes (not a copy), so they show whether and when the SAD overwrote them.
	var sadKey sadb.Key
	for _, e := range r.store.Snapshot().SAs {
		if e.Index == a.Index {
			sadKey = e.AEAD.Key
		}
	}
	if len(sadKey) == 0 || allZero(sadKey) {
		t.Fatalf("no key to watch: %x", sadKey)
	}
	var reapedEarly bool
	r.card.OnRemoveSA = func(index uint32, iface string) {
		if index == a.Index && allZero(sadKey) {
			reapedEarly = true
		}
	}
	if _, err := r.store.DeleteSA(sadb.Ref{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	if reapedEarly {
		t.Fatal("the SAD wiped the key before the card let go of the SA")
	}
	if p, _ := r.card.Policy("lan0", out.ID); p.SA != b.Index {
		t.Fatalf("after delete the policy is on %d, want dying %d", p.SA, b.Index)
	}
	if !slices.Contains(r.card.Wiped(), a.Index) {
		t.Fatal("the card did not wipe the deleted SA's key")
	}
	if !allZero(sadKey) {
		t.Fatalf("the SAD's key bytes survived the delete after the card let go: %x", sadKey)
	}
	if len(r.store.Snapshot().Grave) != 0 {
		t.Fatal("deleted SA not reaped")
	}
	r.check(t)
}

func TestNackTableFullRetried(t *testing.T) {
	card := fakecard.New("wan0")
	card.SACapacity = 1
	r := newRig(t, card)
	sub := r.bus.Subscribe(100)
	a := r.add(t, mkSA("a", 0x1001, 1))
	b := r.add(t, mkSA("b", 0x1002, 1))
	r.sync(t)
	if s := state(t, r, b, "wan0"); s.Status != offload.StatusRefused || s.Reason != offload.ReasonTableFull {
		t.Fatalf("second SA: %+v, want refused table_full", s)
	}
	r.check(t) // a nacked SA stays in the SAD and is not in the card: consistent
	var nacked bool
	for len(sub.C()) > 0 {
		ev := <-sub.C()
		if ev.Type == events.OffloadNack && ev.Index == b.Index && ev.Reason == string(offload.ReasonTableFull) {
			nacked = true
		}
	}
	if !nacked {
		t.Fatal("no nack event")
	}
	r.store.DeleteSA(sadb.Ref{Index: a.Index})
	r.sync(t)
	if s := state(t, r, b, "wan0"); s.Status != offload.StatusOffloaded {
		t.Fatalf("after room was freed: %+v", s)
	}
	r.check(t)
}

func TestNackUnsupportedAndInterfaceList(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	card.Unsupported = map[string]bool{"rfc7539esp(chacha20,poly1305)": true}
	r := newRig(t, card)
	pol := r.addPolicy(t, mkPolicy("out", ipsec.DirOut, "198.18.2.0/24", 1))
	c := mkSA("c", 0x1001, 1)
	c.AEAD.Name = "rfc7539esp(chacha20,poly1305)"
	c.AEAD.Key = make(sadb.Key, 36)
	ce := r.add(t, c)
	only := mkSA("w", 0x1002, 2)
	only.Offload = []string{"wan0"}
	we := r.add(t, only)
	r.sync(t)
	if s := state(t, r, ce, "lan0"); s.Reason != offload.ReasonUnsupported {
		t.Fatalf("chacha on a card without it: %+v", s)
	}
	if p, _ := card.Policy("lan0", pol.ID); p.SA != ipsec.NoSA {
		t.Fatalf("policy points at a nacked SA: %+v", p)
	}
	if s := state(t, r, we, "lan0"); s.Reason != offload.ReasonNotInList {
		t.Fatalf("interface outside the list: %+v", s)
	}
	if s := state(t, r, we, "wan0"); s.Status != offload.StatusOffloaded {
		t.Fatalf("interface in the list: %+v", s)
	}
	// Widening the list by update offloads it there too; narrowing takes it out.
	only.Offload = []string{"wan0", "lan0"}
	if _, err := r.store.UpdateSA(only); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	if s := state(t, r, we, "lan0"); s.Status != offload.StatusOffloaded {
		t.Fatalf("after widening: %+v", s)
	}
	only.Offload = []string{"lan0"}
	r.store.UpdateSA(only)
	r.sync(t)
	if _, ok := card.SA("wan0", we.Index); ok {
		t.Fatal("SA still on an interface removed from its list")
	}
	r.check(t)
}

func TestReaddSameSPI(t *testing.T) {
	r := newRig(t, fakecard.New("wan0"))
	r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	a := r.add(t, mkSA("a", 0x1001, 1))
	r.sync(t)
	// Delete and re-add the same (SPI, dst) before the engine runs: the new SA gets a new index, and the
	// card must never hold two entries for one (SPI, dst).
	r.engine.Stop()
	r.store.DeleteSA(sadb.Ref{Name: "a"})
	b := r.add(t, mkSA("a", 0x1001, 1))
	if a.Index == b.Index {
		t.Fatal("index reused before reap")
	}
	r.engine.Start(context.Background())
	r.sync(t)
	r.check(t)
	if _, ok := r.card.SA("wan0", b.Index); !ok {
		t.Fatal("re-added SA not in the card")
	}
}

func TestDriverErrorRetried(t *testing.T) {
	card := fakecard.New("wan0")
	var mu sync.Mutex
	fails := 2
	card.Fail = func(op, iface string, id uint32) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "install-sa" && fails > 0 {
			fails--
			return errors.New("map update: busy")
		}
		return nil
	}
	r := newRig(t, card)
	a := r.add(t, mkSA("a", 0x1001, 1))
	deadline := time.Now().Add(5 * time.Second)
	for state(t, r, a, "wan0").Status != offload.StatusOffloaded {
		if time.Now().After(deadline) {
			t.Fatalf("not retried: %+v", state(t, r, a, "wan0"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.check(t)
}

// TestRaceChurn adds, updates and deletes SAs and policies from many goroutines while the engine works,
// then checks that the card equals the SAD/SPD exactly and that no ordering rule was ever broken.
func TestRaceChurn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		capacity   int
		indexLimit uint32
		shared     bool
	}{{"count-limited", 40, 0, false}, {"index-limited", 0, 41, false}, {"shared-tables", 40, 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			card := fakecard.New("lan0", "wan0")
			card.SACapacity, card.IndexLimit = tc.capacity, tc.indexLimit
			if tc.shared {
				card.Protected, card.Wire = "lan0", "wan0"
			}
			r := newRig(t, card)
			churn(t, r)
			if tc.indexLimit == 0 {
				return
			}
			// Once renumbering settles, only the SAs beyond the card's slots are refused for lack of
			// room: the others were moved onto the freed low indices.
			deadline := time.Now().Add(5 * time.Second)
			for {
				r.sync(t)
				sas := r.store.ListSAs(false)
				full := 0
				for _, e := range sas {
					for _, s := range r.engine.SAStates(e.Index, e.Serial) {
						if s.Reason == offload.ReasonTableFull {
							full++
							break
						}
					}
				}
				excess := max(0, len(sas)-int(tc.indexLimit-1))
				if full <= excess {
					t.Logf("%d SAs for %d slots: %d refused table_full", len(sas), tc.indexLimit-1, full)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d SAs for %d slots: %d refused table_full, want at most %d", len(sas), tc.indexLimit-1, full, excess)
				}
				time.Sleep(5 * time.Millisecond)
			}
			r.check(t)
		})
	}
}

func churn(t *testing.T, r *rig) {
	workers, ops := 8, 400
	if testing.Short() {
		ops = 100
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range ops {
				n := rng.IntN(64)
				name := fmt.Sprintf("sa%d", n)
				reqid := uint32(n%8 + 1)
				switch rng.IntN(10) {
				case 0, 1, 2:
					sa := mkSA(name, uint32(0x1000+n), reqid)
					if rng.IntN(3) == 0 {
						sa.Offload = []string{[]string{"lan0", "wan0"}[rng.IntN(2)]}
					}
					r.store.AddSA(sa)
				case 3:
					sa := mkSA(name, uint32(0x1000+n), reqid)
					sa.Limits.HardBytes = uint64(rng.IntN(1000) + 1)
					if rng.IntN(2) == 0 {
						sa.Offload = []string{"wan0"}
					}
					r.store.UpdateSA(sa)
				case 4, 5:
					r.store.DeleteSA(sadb.Ref{Name: name})
				case 6:
					if e, err := r.store.GetSA(sadb.Ref{Name: name}, false); err == nil {
						r.store.MarkDying(e.Index)
					}
				case 7:
					dir := ipsec.DirOut
					if n%2 == 1 {
						dir = ipsec.DirIn
					}
					p := mkPolicy(fmt.Sprintf("p%d", n%16), dir, fmt.Sprintf("198.18.%d.0/24", n%16), reqid)
					if _, err := r.store.AddPolicy(p); errors.Is(err, sadb.ErrExists) {
						p.Priority = uint32(rng.IntN(200))
						r.store.UpdatePolicy(p)
					}
				case 8:
					r.store.DeletePolicy(sadb.PolicyRef{Name: fmt.Sprintf("p%d", n%16)})
				case 9:
					if rng.IntN(20) == 0 {
						r.engine.Check(context.Background())
					}
				}
			}
		})
	}
	wg.Wait()
	r.sync(t)
	rep := r.check(t)
	t.Logf("after churn: %+v, engine %+v", rep, r.engine.Stats())
	// Every deleted SA was reaped: the graveyard is empty and the card wiped what it dropped.
	if g := r.store.Snapshot().Grave; len(g) != 0 {
		t.Fatalf("%d deleted SAs not reaped", len(g))
	}
}

func TestCheckDetectsDrift(t *testing.T) {
	r := newRig(t, fakecard.New("wan0"))
	pol := r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	a := r.add(t, mkSA("a", 0x1001, 1))
	r.sync(t)
	r.check(t)
	// Someone (bpftool, a bug) changes the card behind the engine's back.
	if err := r.card.RemoveSA(a.Index, "wan0"); err != nil {
		t.Fatal(err)
	}
	r.card.InstallPolicy(&offload.PolicyOffload{Iface: "wan0", Policy: ipsec.Policy{ID: 999, Dir: ipsec.DirIn,
		Selector: pol.Sel, Action: ipsec.ActionBypass, SA: ipsec.NoSA}})
	rep, err := r.engine.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || len(rep.Problems) < 3 {
		t.Fatalf("drift not detected: %+v", rep)
	}
	t.Log(rep.Problems)
}

// A card that refuses inbound SAs that serve no policy gets them again as soon as a policy covers them.
func TestNoPolicyNackReoffered(t *testing.T) {
	card := fakecard.New("wan0")
	r := newRig(t, card)
	sa := mkSA("a", 0x1001, 1)
	sa.Dir = new(ipsec.DirIn)
	card.RequireCheck = true
	a := r.add(t, sa)
	r.sync(t)
	if s := state(t, r, a, "wan0"); s.Reason != offload.ReasonNoPolicy {
		t.Fatalf("inbound SA without a policy: %+v", s)
	}
	// A no-policy nack is not retried blindly: it schedules no pass of its own. The marker that the
	// retry timer had its chances: another SA whose installs fail three times (driver errors, retried
	// after RetryDelay each) gets offloaded. Every pass meanwhile must be one that SA explains: the
	// one its arrival started and three retries; a blind retry of the nack would add one every
	// RetryDelay.
	passes := r.engine.Stats().Passes
	var mu sync.Mutex
	attempts := 0
	card.Fail = func(op, iface string, id uint32) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "install-sa" && id != a.Index {
			if attempts++; attempts <= 3 {
				return errors.New("map update: busy")
			}
		}
		return nil
	}
	b := r.add(t, mkSA("b", 0x1002, 1))
	testutil.WaitFor(t, 5*time.Second, "the SA whose installs fail to be retried and offloaded", func() bool {
		return state(t, r, b, "wan0").Status == offload.StatusOffloaded
	})
	mu.Lock()
	if attempts != 4 {
		t.Errorf("%d installs of the failing SA, want 3 failed and 1 that went through", attempts)
	}
	mu.Unlock()
	if n := r.engine.Stats().Passes - passes; n != 4 {
		t.Fatalf("%d passes while another SA needed 4 (its arrival and three retries): the no-policy nack is retried", n)
	}
	r.addPolicy(t, mkPolicy("in", ipsec.DirIn, "198.18.2.0/24", 1))
	r.sync(t)
	if s := state(t, r, a, "wan0"); s.Status != offload.StatusOffloaded {
		t.Fatalf("after a policy covers it: %+v", s)
	}
	r.check(t)
}

// A card whose SA table is an array takes only indices below its capacity: an SA numbered above it is
// moved to a freed lower index and offloaded.
func TestNackedSARenumbered(t *testing.T) {
	card := fakecard.New("wan0")
	card.IndexLimit = 3 // indices 1 and 2
	r := newRig(t, card)
	r.add(t, mkSA("a", 0x1001, 1))
	r.add(t, mkSA("b", 0x1002, 1))
	c := r.add(t, mkSA("c", 0x1003, 1))
	r.sync(t)
	if s := state(t, r, c, "wan0"); s.Reason != offload.ReasonTableFull {
		t.Fatalf("third SA: %+v", s)
	}
	r.store.DeleteSA(sadb.Ref{Name: "a"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.sync(t)
		e, err := r.store.GetSA(sadb.Ref{Name: "c"}, false)
		if err != nil {
			t.Fatal(err)
		}
		if s := state(t, r, e, "wan0"); s.Status == offload.StatusOffloaded {
			if e.Index != 1 {
				t.Fatalf("offloaded at index %d", e.Index)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not renumbered and offloaded: %+v", e)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.check(t)
}

// A policy update the card refuses leaves the old entry in place, and the SA it points at stays in the
// card until the update goes through: never a dangling policy, never a missing PROTECT policy.
func TestFailedPolicyUpdateKeepsItsSA(t *testing.T) {
	card := fakecard.New("lan0")
	var mu sync.Mutex
	failPolicies := false
	card.Fail = func(op, iface string, id uint32) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "install-policy" && failPolicies {
			return errors.New("map update: busy")
		}
		return nil
	}
	r := newRig(t, card)
	pol := r.addPolicy(t, mkPolicy("out", ipsec.DirOut, "198.18.2.0/24", 1))
	a := r.add(t, mkSA("a", 0x1001, 1))
	r.sync(t)
	mu.Lock()
	failPolicies = true
	mu.Unlock()
	b := r.add(t, mkSA("b", 0x1002, 1))
	r.store.DeleteSA(sadb.Ref{Name: "a"})
	r.sync(t)
	if p, _ := card.Policy("lan0", pol.ID); p.SA != a.Index {
		t.Fatalf("policy moved although its update failed: %+v", p)
	}
	if _, ok := card.SA("lan0", a.Index); !ok {
		t.Fatal("the SA a policy still points at left the card")
	}
	if v := card.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
	mu.Lock()
	failPolicies = false
	mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, _ := card.Policy("lan0", pol.ID)
		_, aHeld := card.SA("lan0", a.Index)
		if p.SA == b.Index && !aHeld {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired: policy %+v, old SA held %v", p, aHeld)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.sync(t)
	r.check(t)
	if len(r.store.Snapshot().Grave) != 0 {
		t.Fatal("the old SA was not reaped after the repair")
	}
}

// On a card whose tables serve both interfaces (the XDP card) an offload list is decided on one
// interface per entry: an SA on the wire interface, a policy on the interface it classifies. An SA
// whose list leaves out the wire interface is refused everywhere, and the policies it would serve drop
// its traffic (NoSA) rather than pass it.
func TestSharedTablesOffloadLists(t *testing.T) {
	card := fakecard.New("lan0", "wan0")
	card.Protected, card.Wire = "lan0", "wan0"
	r := newRig(t, card)
	if p, w := r.engine.Sides(); p != "lan0" || w != "wan0" {
		t.Fatalf("sides %q %q", p, w)
	}
	out := r.addPolicy(t, mkPolicy("out", ipsec.DirOut, "198.18.2.0/24", 1))
	lanOnly := mkSA("lan-only", 0x1001, 1)
	lanOnly.Offload = []string{"lan0"}
	a := r.add(t, lanOnly)
	r.sync(t)
	for _, ifc := range []string{"lan0", "wan0"} {
		if s := state(t, r, a, ifc); s.Status != offload.StatusRefused || s.Reason != offload.ReasonNotInList || s.Detail == "" {
			t.Fatalf("sa without the wire interface on %s: %+v", ifc, s)
		}
		if _, ok := card.SA(ifc, a.Index); ok {
			t.Fatalf("sa without the wire interface is in the card for %s", ifc)
		}
		if p, ok := card.Policy(ifc, out.ID); !ok || p.SA != ipsec.NoSA || p.Action != ipsec.ActionProtect {
			t.Fatalf("policy on %s with its only SA refused: %+v %v (want PROTECT with no SA: drop and count)", ifc, p, ok)
		}
	}
	r.check(t)

	wireOnly := mkSA("wire-only", 0x1002, 1)
	wireOnly.Offload = []string{"wan0"}
	b := r.add(t, wireOnly)
	r.sync(t)
	for _, ifc := range []string{"lan0", "wan0"} {
		if s := state(t, r, b, ifc); s.Status != offload.StatusOffloaded {
			t.Fatalf("sa with the wire interface on %s: %+v", ifc, s)
		}
		if p, _ := card.Policy(ifc, out.ID); p.SA != b.Index {
			t.Fatalf("policy on %s points at %d, want %d", ifc, p.SA, b.Index)
		}
	}
	if s := state(t, r, b, "lan0"); s.Detail == "" {
		t.Fatal("an SA held for an interface outside its list does not say why")
	}

	// Policies: an outbound one is decided on the protected interface, an inbound one on the wire.
	po := mkPolicy("out-wire", ipsec.DirOut, "198.18.3.0/24", 1)
	po.Offload = []string{"wan0"}
	poe := r.addPolicy(t, po)
	pi := mkPolicy("in-wire", ipsec.DirIn, "198.18.3.0/24", 1)
	pi.Offload = []string{"wan0"}
	pie := r.addPolicy(t, pi)
	r.sync(t)
	for _, ifc := range []string{"lan0", "wan0"} {
		if _, ok := card.Policy(ifc, poe.ID); ok {
			t.Fatalf("outbound policy listed only for the wire interface is in the card for %s", ifc)
		}
		if _, ok := card.Policy(ifc, pie.ID); !ok {
			t.Fatalf("inbound policy listed for the wire interface missing for %s", ifc)
		}
	}
	r.check(t)

	// Narrowing the list of the serving SA takes it out of the card everywhere, after the policy moved.
	wireOnly.Offload = []string{"lan0"}
	if _, err := r.store.UpdateSA(wireOnly); err != nil {
		t.Fatal(err)
	}
	r.sync(t)
	for _, ifc := range []string{"lan0", "wan0"} {
		if _, ok := card.SA(ifc, b.Index); ok {
			t.Fatalf("sa still in the card for %s after its list lost the wire interface", ifc)
		}
		if p, _ := card.Policy(ifc, out.ID); p.SA != ipsec.NoSA {
			t.Fatalf("policy on %s points at %d after its SA left", ifc, p.SA)
		}
	}
	r.check(t)
}

// A policy the card refuses is announced once per interface, with its name, the reason and the detail.
func TestPolicyNackEvent(t *testing.T) {
	card := fakecard.New("wan0")
	card.PolicyCapacity = 1
	r := newRig(t, card)
	sub := r.bus.Subscribe(64)
	defer sub.Close()
	r.addPolicy(t, mkPolicy("first", ipsec.DirIn, "198.18.2.0/24", 1))
	second := r.addPolicy(t, mkPolicy("second", ipsec.DirIn, "198.18.3.0/24", 1))
	r.sync(t)
	r.sync(t)
	var nacks []events.Event
	for len(sub.C()) > 0 {
		if ev := <-sub.C(); ev.Type == events.OffloadNack {
			nacks = append(nacks, ev)
		}
	}
	if len(nacks) != 1 || nacks[0].Policy != "second" || nacks[0].PolicyID != second.ID || nacks[0].Iface != "wan0" ||
		nacks[0].Reason != string(offload.ReasonTableFull) || nacks[0].Detail == "" {
		t.Fatalf("policy nack events: %+v", nacks)
	}
}
