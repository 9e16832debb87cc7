package sadb

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ipsec"
)

// The tests of what an IKE daemon needs (docs/ike-api.md): owners, larval SPIs, moving SAs, ike
// policies as their whole content, shadowing, fwd.

func ikeSA(spi uint32) SA {
	sa := testSA("", spi)
	sa.Owner = OwnerIKE
	return sa
}

func TestOwnersFlushAndList(t *testing.T) {
	s := New(Options{})
	cfg := testSA("c", 0x1001)
	cfg.Owner = OwnerConfig
	cli := testSA("x", 0x1002)
	for _, sa := range []SA{cfg, cli, ikeSA(0x1003), ikeSA(0x1004)} {
		if _, err := s.AddSA(sa); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(s.ListSAsOf(Only(OwnerIKE), false)); got != 2 {
		t.Fatalf("ike sas listed: %d, want 2", got)
	}
	gone := s.FlushSAsOf(Only(OwnerIKE))
	if len(gone) != 2 || gone[0].Owner != OwnerIKE || gone[1].Owner != OwnerIKE {
		t.Fatalf("flush owner ike removed %+v", gone)
	}
	left := s.ListSAs(false)
	if len(left) != 2 || left[0].Owner != OwnerConfig || left[1].Owner != OwnerCLI {
		t.Fatalf("left after the ike flush: %+v", left)
	}
	sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24")}
	p, err := s.AddPolicy(Policy{Owner: OwnerIKE, Dir: ipsec.DirOut, Sel: sel, Action: ipsec.ActionBypass})
	if err != nil {
		t.Fatal(err)
	}
	// ?owner= on one policy is a condition.
	if _, err := s.GetPolicyOf(PolicyRef{ID: p.ID}, Only(OwnerCLI)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of another owner's policy: %v", err)
	}
	if _, err := s.DeletePolicyOf(PolicyRef{ID: p.ID}, Only(OwnerConfig)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete of another owner's policy: %v", err)
	}
	if _, err := s.DeletePolicyOf(PolicyRef{ID: p.ID}, Only(OwnerIKE)); err != nil {
		t.Fatalf("delete of its own: %v", err)
	}
	if _, err := ParseOwner("root"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("owner root: %v", err)
	}
}

func TestLarval(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }, MaxLarval: 3})
	dst := netip.MustParseAddr("198.19.0.1")
	// A range of four SPIs, one of them an SA already: three larval entries fill it.
	sa := testSA("", 0x1001)
	if _, err := s.AddSA(sa); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for range 3 {
		l, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0x1000, Max: 0x1003, Lifetime: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if l.SPI == 0x1001 || seen[l.SPI] || l.SPI < 0x1000 || l.SPI > 0x1003 {
			t.Fatalf("allocated %#x, taken or out of range (seen %v)", l.SPI, seen)
		}
		if !l.Expires.Equal(now.Add(10 * time.Second)) {
			t.Fatalf("expires %s", l.Expires)
		}
		seen[l.SPI] = true
	}
	if _, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0x1000, Max: 0x1003}); !errors.Is(err, ErrFull) {
		t.Fatalf("a full range: %v, want ErrFull", err)
	}
	if s.Larvals() != 3 || len(s.ListSAs(false)) != 1 {
		t.Fatalf("larval %d, sas %d: larval entries are not SAs", s.Larvals(), len(s.ListSAs(false)))
	}
	var spis []uint32
	for spi := range seen {
		spis = append(spis, spi)
	}
	// Adding the SA consumes its entry; deleting removes one; the third expires.
	sa2 := testSA("", spis[0])
	if _, err := s.AddSA(sa2); err != nil {
		t.Fatal(err)
	}
	if !s.DeleteLarval(SAID{SPI: spis[1], Dst: dst}) {
		t.Fatal("delete of a larval entry found none")
	}
	if s.DeleteLarval(SAID{SPI: spis[0], Dst: dst}) {
		t.Fatal("the consumed entry is still larval")
	}
	if s.Larvals() != 1 {
		t.Fatalf("larval %d, want 1", s.Larvals())
	}
	now = now.Add(10 * time.Second)
	if s.Larvals() != 0 || s.DeleteLarval(SAID{SPI: spis[2], Dst: dst}) {
		t.Fatal("an expired entry is still there")
	}
	// The freed SPIs are available again, another destination's are independent, and an SA's never are.
	l, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0x1000, Max: 0x1003})
	if err != nil || l.SPI == 0x1001 || l.SPI == spis[0] {
		t.Fatalf("after expiry: %+v %v", l, err)
	}
	if _, err := s.AllocSPI(SPIRequest{Dst: netip.MustParseAddr("198.19.0.2"), Min: 0x1001, Max: 0x1001}); err != nil {
		t.Fatalf("another destination: %v", err)
	}
	// A deleted SA the card may still hold keeps its SPI until it is reaped.
	del, err := s.DeleteSA(Ref{ID: &SAID{SPI: 0x1001, Dst: dst, Proto: ipsec.ProtoESP}})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0x1001, Max: 0x1001}); !errors.Is(err, ErrFull) {
		t.Fatalf("the graveyard's spi was given out: %+v %v", l, err)
	}
	s.Reap(del.Index)
	if _, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0x1001, Max: 0x1001}); err != nil {
		t.Fatalf("after reap: %v", err)
	}
	for name, req := range map[string]SPIRequest{
		"min below 256": {Dst: dst, Min: 1, Max: 300},
		"min > max":     {Dst: dst, Min: 0x2000, Max: 0x1000},
		"ah":            {Dst: dst, Proto: 51, Min: 0x1000, Max: 0x2000},
		"no dst":        {Min: 0x1000, Max: 0x2000},
		"long life":     {Dst: dst, Min: 0x1000, Max: 0x2000, Lifetime: 2 * time.Hour},
	} {
		if _, err := s.AllocSPI(req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// TestLarvalRandom: SPIs are spread over the range, not handed out in order.
func TestLarvalRandom(t *testing.T) {
	s := New(Options{})
	dst := netip.MustParseAddr("198.19.0.1")
	seen := map[uint32]bool{}
	for range 64 {
		l, err := s.AllocSPI(SPIRequest{Dst: dst, Min: 0xc0000000, Max: 0xcfffffff})
		if err != nil {
			t.Fatal(err)
		}
		seen[l.SPI>>20] = true
	}
	if len(seen) < 32 {
		t.Fatalf("64 SPIs fell into only %d of 256 buckets", len(seen))
	}
}

func TestMigrateSA(t *testing.T) {
	s := New(Options{})
	sa := ikeSA(0x1001)
	e, err := s.AddSA(sa)
	if err != nil {
		t.Fatal(err)
	}
	other := testSA("other", 0x1001)
	other.Dst = netip.MustParseAddr("198.19.0.9")
	if _, err := s.AddSA(other); err != nil {
		t.Fatal(err)
	}
	newDst := netip.MustParseAddr("198.19.0.5")
	m := Migration{ID: e.ID(), Src: netip.MustParseAddr("198.18.0.7"), Dst: newDst,
		Encap: &Encap{Sport: 62000, Dport: 4500}, Reqid: 9}
	got, err := s.MigrateSA(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != e.Index || got.Serial != e.Serial || got.Dst != newDst || got.Src != m.Src || got.Reqid != 9 ||
		got.Encap == nil || got.Encap.Type != "espinudp" || got.Encap.Sport != 62000 || got.Gen <= e.Gen || got.Owner != OwnerIKE {
		t.Fatalf("migrated %+v (was %+v)", got, e)
	}
	if _, err := s.GetSA(Ref{ID: &SAID{SPI: 0x1001, Dst: sa.Dst}}, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the old identity still finds it: %v", err)
	}
	if k, _ := s.GetSA(Ref{ID: &SAID{SPI: 0x1001, Dst: newDst}}, true); string(k.AEAD.Key) != string(sa.AEAD.Key) {
		t.Fatal("the key did not move with it")
	}
	// Encap off, reqid kept.
	got, err = s.MigrateSA(Migration{ID: got.ID(), Src: m.Src, Dst: newDst})
	if err != nil || got.Encap != nil || got.Reqid != 9 {
		t.Fatalf("encap off: %+v %v", got, err)
	}
	for name, tc := range map[string]struct {
		m    Migration
		want error
	}{
		"taken":         {Migration{ID: got.ID(), Src: m.Src, Dst: other.Dst}, ErrExists},
		"other family":  {Migration{ID: got.ID(), Src: netip.MustParseAddr("2001:2::1"), Dst: netip.MustParseAddr("2001:2::2")}, ErrUnsupported},
		"mixed":         {Migration{ID: got.ID(), Src: m.Src, Dst: netip.MustParseAddr("2001:2::2")}, ErrInvalid},
		"no such sa":    {Migration{ID: SAID{SPI: 0x999, Dst: newDst}, Src: m.Src, Dst: newDst}, ErrNotFound},
		"encap no port": {Migration{ID: got.ID(), Src: m.Src, Dst: newDst, Encap: &Encap{Sport: 1}}, ErrInvalid},
	} {
		if _, err := s.MigrateSA(tc.m); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// A larval entry on the new identity blocks the move.
	l, err := s.AllocSPI(SPIRequest{Dst: netip.MustParseAddr("198.19.0.6"), Min: 0x1001, Max: 0x1001})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MigrateSA(Migration{ID: got.ID(), Src: m.Src, Dst: l.Dst}); !errors.Is(err, ErrExists) {
		t.Fatalf("onto a larval spi: %v", err)
	}
}

func ikePolicy(dir ipsec.Dir, prio uint32, reqid uint32) Policy {
	p := Policy{Owner: OwnerIKE, Dir: dir, Priority: prio, Action: ipsec.ActionProtect,
		Sel:  ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24")},
		Tmpl: &Tmpl{Reqid: reqid, Mode: ipsec.ModeTunnel}}
	if reqid == 0 {
		p.Action, p.Tmpl = ipsec.ActionDiscard, nil
	}
	return p
}

func shadows(s *Store) map[uint32]uint32 {
	out := map[uint32]uint32{}
	for _, p := range s.ListPolicies() {
		out[p.ID] = p.ShadowedBy
	}
	return out
}

// TestIKEPolicies: an ike policy is its whole content; identical adds return the entry, different ones
// coexist with the same (dir, selector), and only the group's winner is unshadowed.
func TestIKEPolicies(t *testing.T) {
	s := New(Options{})
	trap, created, err := s.AddPolicyOnce(ikePolicy(ipsec.DirOut, 101, 1))
	if err != nil || !created {
		t.Fatal(created, err)
	}
	again, created, err := s.AddPolicyOnce(ikePolicy(ipsec.DirOut, 101, 1))
	if err != nil || created || again.ID != trap.ID {
		t.Fatalf("identical add: %+v created %v %v", again, created, err)
	}
	child, created, err := s.AddPolicyOnce(ikePolicy(ipsec.DirOut, 100, 1))
	if err != nil || !created || child.ID == trap.ID {
		t.Fatalf("same selector, other priority: %+v %v %v", child, created, err)
	}
	if sh := shadows(s); sh[trap.ID] != child.ID || sh[child.ID] != 0 {
		t.Fatalf("the lower priority wins: %v", sh)
	}
	// Equal priority: the newest ike policy wins (a transient discard while an SA moves).
	drop, _, err := s.AddPolicyOnce(ikePolicy(ipsec.DirOut, 100, 0))
	if err != nil {
		t.Fatal(err)
	}
	if sh := shadows(s); sh[child.ID] != drop.ID || sh[trap.ID] != drop.ID || sh[drop.ID] != 0 {
		t.Fatalf("the newest equal wins: %v", sh)
	}
	// A config or cli policy with the same selector: on equal priority it wins over ike ones, and
	// (dir, selector) stays unique among config and cli policies.
	cli := ikePolicy(ipsec.DirOut, 100, 0)
	cli.Owner = OwnerCLI
	c, err := s.AddPolicy(cli)
	if err != nil {
		t.Fatalf("a cli policy beside ike ones: %v", err)
	}
	if _, err := s.AddPolicy(cli); !errors.Is(err, ErrExists) {
		t.Fatalf("a second cli policy with that selector: %v", err)
	}
	if sh := shadows(s); sh[drop.ID] != c.ID || sh[c.ID] != 0 {
		t.Fatalf("cli before ike on equal priority: %v", sh)
	}
	if _, err := s.DeletePolicy(PolicyRef{ID: c.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeletePolicy(PolicyRef{ID: drop.ID}); err != nil {
		t.Fatal(err)
	}
	if sh := shadows(s); sh[trap.ID] != child.ID || sh[child.ID] != 0 {
		t.Fatalf("the next one takes over: %v", sh)
	}
	// After a delete the same content is a new entry.
	if _, created, _ := s.AddPolicyOnce(ikePolicy(ipsec.DirOut, 100, 0)); !created {
		t.Fatal("re-added after delete: not created")
	}
	// Other directions are other groups; ike policies are not updated in place; a key names one only
	// when it is unique.
	in, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, 1))
	if err != nil {
		t.Fatal(err)
	}
	if sh := shadows(s); sh[in.ID] != 0 {
		t.Fatalf("in is shadowed by an out policy: %v", sh)
	}
	if _, err := s.UpdatePolicy(ikePolicy(ipsec.DirIn, 99, 1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("update of an ike policy: %v", err)
	}
	key := PolicyKey{Dir: ipsec.DirIn, Sel: in.Sel}
	if g, err := s.GetPolicy(PolicyRef{Key: &key}); err != nil || g.ID != in.ID {
		t.Fatalf("the only ike policy of a key: %+v %v", g, err)
	}
	key.Dir = ipsec.DirOut
	if _, err := s.GetPolicy(PolicyRef{Key: &key}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("several ike policies of a key: %v", err)
	}
	if n := len(s.FlushPoliciesOf(Only(OwnerIKE))); n != 4 {
		t.Fatalf("flushed %d ike policies, want 4", n)
	}
}

// TestFwdPolicies: fwd is stored with an id above the card's range, does not use the card's slots, and
// is deleted and flushed like the others.
func TestFwdPolicies(t *testing.T) {
	s := New(Options{MaxPolicies: 2})
	var ids []uint32
	for reqid := uint32(1); reqid <= 5; reqid++ {
		e, err := s.AddPolicy(ikePolicy(ipsec.DirFwd, 100, reqid))
		if err != nil {
			t.Fatalf("fwd policy %d: %v", reqid, err)
		}
		if e.ID <= 2 || e.OnCard() {
			t.Fatalf("fwd policy got id %d (card range 1..2), on card %v", e.ID, e.OnCard())
		}
		ids = append(ids, e.ID)
	}
	// The card's two ids are still free.
	for reqid := uint32(1); reqid <= 2; reqid++ {
		e, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, reqid))
		if err != nil || e.ID > 2 {
			t.Fatalf("in policy: %+v %v", e, err)
		}
	}
	if _, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, 3)); !errors.Is(err, ErrFull) {
		t.Fatalf("a third card policy: %v", err)
	}
	if _, err := s.DeletePolicy(PolicyRef{ID: ids[0]}); err != nil {
		t.Fatal(err)
	}
	e, err := s.AddPolicy(ikePolicy(ipsec.DirFwd, 100, 9))
	if err != nil || e.ID <= 2 || slices.Contains(ids, e.ID) {
		t.Fatalf("a new fwd policy: id %d (%v), want a new one in the fwd range", e.ID, err)
	}
	// fwd policies list after out and in.
	l := s.ListPolicies()
	if l[len(l)-1].Dir != ipsec.DirFwd || l[0].Dir != ipsec.DirIn {
		t.Fatalf("order: %v first, %v last", l[0].Dir, l[len(l)-1].Dir)
	}
	if _, err := s.UpdatePolicy(Policy{Dir: ipsec.DirFwd, Sel: e.Sel, Action: ipsec.ActionBypass}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a fwd cli policy that does not exist: %v", err)
	}
	if n := len(s.FlushPolicies()); n != 7 {
		t.Fatalf("flushed %d, want 7", n)
	}
}

// TestPolicyIDsNotReusedAtOnce: a deleted policy's id goes to a new policy only after many others
// were freed, or when no other id is left: a late delete naming it meets nothing.
func TestPolicyIDsNotReusedAtOnce(t *testing.T) {
	s := New(Options{MaxPolicies: 4})
	first, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeletePolicy(PolicyRef{ID: first.ID}); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	for reqid := uint32(2); reqid <= 5; reqid++ {
		e, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, reqid))
		if err != nil {
			t.Fatalf("policy %d: %v", reqid, err)
		}
		got = append(got, e.ID)
	}
	if !slices.Equal(got, []uint32{2, 3, 4, first.ID}) {
		t.Fatalf("ids %v: want the freed id %d only when no other is left", got, first.ID)
	}
	if _, err := s.AddPolicy(ikePolicy(ipsec.DirIn, 100, 6)); !errors.Is(err, ErrFull) {
		t.Fatalf("a fifth policy: %v", err)
	}
}
