package sadb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ipsec"
)

// testSA is an SA whose key follows from its name and SPI: one key per SA (the SAD refuses two SAs
// under one AEAD key), the same key when a test builds the same SA again.
func testSA(name string, spi uint32) SA {
	key := make(Key, 20)
	binary.BigEndian.PutUint32(key, spi)
	copy(key[4:], name)
	return SA{
		Name: name, SPI: spi,
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"),
		Reqid: 7, Mode: ipsec.ModeTunnel,
		AEAD: &Algorithm{Name: "rfc4106(gcm(aes))", Key: key, Bits: 128},
	}
}

func TestAddDuplicateSPIRejected(t *testing.T) {
	s := New(Options{})
	if _, err := s.AddSA(testSA("a", 0x1001)); err != nil {
		t.Fatal(err)
	}
	// Same (SPI, dst, proto) as ip xfrm: EEXIST even with another name.
	if _, err := s.AddSA(testSA("b", 0x1001)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate spi/dst/proto: got %v, want ErrExists", err)
	}
	// Same name, other SPI.
	if _, err := s.AddSA(testSA("a", 0x1002)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: got %v, want ErrExists", err)
	}
	// Same SPI, other destination: a different SA.
	sa := testSA("c", 0x1001)
	sa.Dst = netip.MustParseAddr("198.19.0.2")
	if _, err := s.AddSA(sa); err != nil {
		t.Fatalf("same spi, other dst: %v", err)
	}
}

func TestAddInvalid(t *testing.T) {
	s := New(Options{})
	for name, mut := range map[string]func(*SA){
		"spi 0":         func(sa *SA) { sa.SPI = 0 },
		"no dst":        func(sa *SA) { sa.Dst = netip.Addr{} },
		"mixed family":  func(sa *SA) { sa.Dst = netip.MustParseAddr("2001:2::1") },
		"aead and enc":  func(sa *SA) { sa.Enc = &Algorithm{Name: "cbc(aes)"} },
		"no alg":        func(sa *SA) { sa.AEAD = nil },
		"enc no auth":   func(sa *SA) { sa.AEAD = nil; sa.Enc = &Algorithm{Name: "cbc(aes)"} },
		"proto ah":      func(sa *SA) { sa.Proto = 51 },
		"soft > hard":   func(sa *SA) { sa.Limits = Lifetime{SoftBytes: 10, HardBytes: 5} },
		"encap no port": func(sa *SA) { sa.Encap = &Encap{Type: "espinudp"} },
		"unknown alg":   func(sa *SA) { sa.AEAD.Name = "rot13" },
		"short key":     func(sa *SA) { sa.AEAD.Key = make(Key, 7) },
		"spi reserved":  func(sa *SA) { sa.SPI = 255 },
	} {
		sa := testSA("x", 0x2000)
		mut(&sa)
		if _, err := s.AddSA(sa); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

func TestKeysCopiedAndHidden(t *testing.T) {
	s := New(Options{})
	sa := testSA("a", 0x1001)
	sa.AEAD.Key[0] = 0xaa
	if _, err := s.AddSA(sa); err != nil {
		t.Fatal(err)
	}
	sa.AEAD.Key[0] = 0xbb // the caller's buffer is not the store's
	got, err := s.GetSA(Ref{Name: "a"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.AEAD.Key != nil {
		t.Fatalf("key returned without WithKeys")
	}
	got, _ = s.GetSA(Ref{Name: "a"}, true)
	if got.AEAD.Key[0] != 0xaa {
		t.Fatalf("key = %x, want the added one", got.AEAD.Key)
	}
	got.AEAD.Key[0] = 0xcc // nor is the reader's
	again, _ := s.GetSA(Ref{Name: "a"}, true)
	if again.AEAD.Key[0] != 0xaa {
		t.Fatalf("reader changed the stored key")
	}
	for _, e := range s.ListSAs(false) {
		if e.AEAD.Key != nil {
			t.Fatalf("list leaked a key")
		}
	}
}

func TestUpdateSemantics(t *testing.T) {
	s := New(Options{})
	e, err := s.AddSA(testSA("a", 0x1001))
	if err != nil {
		t.Fatal(err)
	}
	sa := testSA("a", 0x1001)
	sa.Limits.HardBytes = 1000
	sa.Offload = []string{"eth1"}
	u, err := s.UpdateSA(sa)
	if err != nil {
		t.Fatal(err)
	}
	if u.Index != e.Index || u.Limits.HardBytes != 1000 || len(u.Offload) != 1 || u.Gen == e.Gen {
		t.Fatalf("update did not apply: %+v", u)
	}
	bad := testSA("a", 0x1001)
	bad.AEAD.Key[3] ^= 1
	if _, err := s.UpdateSA(bad); !errors.Is(err, ErrImmutable) {
		t.Fatalf("key change: got %v, want ErrImmutable", err)
	}
	bad = testSA("a", 0x1001)
	bad.Dir = new(ipsec.DirIn)
	if _, err := s.UpdateSA(bad); !errors.Is(err, ErrImmutable) {
		t.Fatalf("dir change: got %v, want ErrImmutable", err)
	}
	bad = testSA("a", 0x1001)
	bad.AEAD.Name = "rfc4543(gcm(aes))"
	if _, err := s.UpdateSA(bad); !errors.Is(err, ErrImmutable) {
		t.Fatalf("algorithm change: got %v, want ErrImmutable", err)
	}
	// What the running SA keeps its numbers through: applied, the keys untouched, the card told.
	inPlace := testSA("a", 0x1001)
	inPlace.Limits.HardBytes = 1000
	inPlace.Offload = []string{"eth1"}
	inPlace.Reqid, inPlace.TTL, inPlace.DF, inPlace.TFCPad, inPlace.ESN = 9, 7, "set", 64, true
	inPlace.Src = netip.MustParseAddr("198.18.0.99")
	inPlace.Encap = &Encap{Sport: 4501, Dport: 4500}
	u3, err := s.UpdateSA(inPlace)
	if err != nil {
		t.Fatal(err)
	}
	if u3.Reqid != 9 || u3.TTL != 7 || u3.DF != "set" || u3.TFCPad != 64 || !u3.ESN || u3.Src != inPlace.Src ||
		u3.Encap == nil || u3.Encap.Sport != 4501 || u3.Gen == u.Gen || u3.Index != e.Index {
		t.Fatalf("in-place update not applied: %+v", u3)
	}
	if k, _ := s.GetSA(Ref{Name: "a"}, true); !k.AEAD.Equal(testSA("a", 0x1001).AEAD) {
		t.Fatal("the update changed the stored key")
	}
	// Only the limits: the SAD's alone, the card is not asked again.
	inPlace.Limits.HardBytes = 2000
	if u4, err := s.UpdateSA(inPlace); err != nil || u4.Gen != u3.Gen || u4.Limits.HardBytes != 2000 {
		t.Fatalf("limits-only update: gen %d → %d, %+v (%v)", u3.Gen, u4.Gen, u4.Limits, err)
	}
	inPlace.Encap = nil
	if u5, err := s.UpdateSA(inPlace); err != nil || u5.Encap != nil {
		t.Fatalf("encap off: %+v (%v)", u5.Encap, err)
	}
	u, _ = s.GetSA(Ref{Name: "a"}, false)
	// Back to the first settings, for the no-op check below.
	same0 := testSA("a", 0x1001)
	same0.Limits.HardBytes = 1000
	same0.Offload = []string{"eth1"}
	if u, err = s.UpdateSA(same0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSA(testSA("zz", 0x9999)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing SA: got %v", err)
	}
	// An update that changes nothing keeps the generation (so the card is not touched).
	same := testSA("a", 0x1001)
	same.Limits.HardBytes = 1000
	same.Offload = []string{"eth1"}
	u2, err := s.UpdateSA(same)
	if err != nil || u2.Gen != u.Gen {
		t.Fatalf("no-op update changed gen %d → %d (%v)", u.Gen, u2.Gen, err)
	}
}

func TestDeleteGraveyardAndReap(t *testing.T) {
	s := New(Options{})
	a, _ := s.AddSA(testSA("a", 0x1001))
	b, _ := s.AddSA(testSA("b", 0x1002))
	if a.Index != 1 || b.Index != 2 {
		t.Fatalf("indices %d %d, want 1 2", a.Index, b.Index)
	}
	id := a.ID()
	if _, err := s.DeleteSA(Ref{ID: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSA(Ref{Name: "a"}, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted SA still found: %v", err)
	}
	// Re-adding the same SPI works at once, but the index is not reused before the card let go of it.
	c, err := s.AddSA(testSA("a", 0x1001))
	if err != nil {
		t.Fatal(err)
	}
	if c.Index == a.Index {
		t.Fatalf("index %d reused before Reap", c.Index)
	}
	snap := s.Snapshot()
	if len(snap.Grave) != 1 || snap.Grave[0].State != StateDead {
		t.Fatalf("graveyard = %+v", snap.Grave)
	}
	key := snap.Grave[0].AEAD.Key
	key[0] = 0x55
	if !s.Reap(a.Index) {
		t.Fatal("reap failed")
	}
	for _, x := range key {
		if x != 0 {
			t.Fatalf("key not wiped on reap: %x", key)
		}
	}
	d, _ := s.AddSA(testSA("d", 0x1004))
	if d.Index != a.Index {
		t.Fatalf("freed index not reused: got %d want %d", d.Index, a.Index)
	}
	if n := len(s.FlushSAs()); n != 3 {
		t.Fatalf("flush removed %d, want 3", n)
	}
	if len(s.ListSAs(false)) != 0 {
		t.Fatal("flush left SAs")
	}
}

func TestLifetimeStates(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Options{Now: func() time.Time { return now }})
	a, _ := s.AddSA(testSA("a", 0x1001))
	if a.State != StateMature || !a.AddTime.Equal(now) {
		t.Fatalf("new SA %+v", a)
	}
	if _, ok := s.MarkDying(a.Index); !ok {
		t.Fatal("first soft expiry did not fire")
	}
	if _, ok := s.MarkDying(a.Index); ok {
		t.Fatal("soft expiry fired twice")
	}
	e, _ := s.GetSA(Ref{Index: a.Index}, false)
	if e.State != StateDying {
		t.Fatalf("state %s, want dying", e.State)
	}
	if _, ok := s.Expire(a.Index); !ok {
		t.Fatal("expire failed")
	}
	if _, ok := s.Expire(a.Index); ok {
		t.Fatal("expired twice")
	}
}

func TestPolicySemantics(t *testing.T) {
	s := New(Options{})
	sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.7/24")}
	p := Policy{Name: "out", Dir: ipsec.DirOut, Sel: sel, Priority: 100, Action: ipsec.ActionProtect, Tmpl: &Tmpl{Reqid: 7}}
	e, err := s.AddPolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	if e.Sel.Dst.String() != "198.18.2.0/24" {
		t.Fatalf("selector not masked: %s", e.Sel.Dst)
	}
	// Same dir and selector, other priority: still the same policy to ip xfrm.
	p2 := p
	p2.Name, p2.Priority = "", 5
	if _, err := s.AddPolicy(p2); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate selector: %v", err)
	}
	p3 := p
	p3.Name, p3.Dir = "", ipsec.DirIn
	if _, err := s.AddPolicy(p3); err != nil {
		t.Fatalf("other direction: %v", err)
	}
	for name, bad := range map[string]Policy{
		"protect no sa":  {Dir: ipsec.DirOut, Sel: sel, Action: ipsec.ActionProtect},
		"bypass tmpl":    {Dir: ipsec.DirOut, Sel: sel, Tmpl: &Tmpl{Reqid: 1}},
		"ports no proto": {Dir: ipsec.DirOut, Sel: ipsec.Selector{Src: sel.Src, Dst: sel.Dst, DstPorts: ipsec.Port(80)}},
		"reversed":       {Dir: ipsec.DirOut, Sel: ipsec.Selector{Src: sel.Src, Dst: sel.Dst, Proto: ipsec.ProtoTCP, DstPorts: ipsec.Ports(90, 80)}},
		"dir 7":          {Dir: ipsec.Dir(7), Sel: sel},
		"mixed family":   {Dir: ipsec.DirOut, Sel: ipsec.Selector{Src: sel.Src, Dst: netip.MustParsePrefix("2001:2::/48")}},
	} {
		if _, err := s.AddPolicy(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	up := p
	up.Priority = 50
	u, err := s.UpdatePolicy(up)
	if err != nil || u.ID != e.ID || u.Priority != 50 {
		t.Fatalf("update: %+v %v", u, err)
	}
	key := PolicyKey{Dir: ipsec.DirOut, Sel: sel}
	if _, err := s.DeletePolicy(PolicyRef{Key: &key}); err != nil {
		t.Fatalf("delete by selector: %v", err)
	}
	if _, err := s.DeletePolicy(PolicyRef{Name: "out"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if n := len(s.FlushPolicies()); n != 1 {
		t.Fatalf("flush removed %d", n)
	}
}

// TestPortProtocols: every protocol that carries ports (the card's list) takes a port selector, and
// ICMP a type and code; others none. A DCCP policy with a port used to pass the config and fail here.
func TestPortProtocols(t *testing.T) {
	s := New(Options{})
	for p := range 256 {
		proto := ipsec.Proto(p)
		sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix(fmt.Sprintf("198.18.2.%d/32", p)),
			Proto: proto, DstPorts: ipsec.Port(33)}
		_, err := s.AddPolicy(Policy{Dir: ipsec.DirOut, Sel: sel, Action: ipsec.ActionBypass})
		switch want := proto.HasPorts() || proto.IsICMP(); {
		case want && err != nil:
			t.Errorf("proto %s: port 33 refused: %v", proto, err)
		case !want && !errors.Is(err, ErrInvalid):
			t.Errorf("proto %s: port 33 accepted (err %v)", proto, err)
		}
	}
	// ICMP type 0 (echo reply) is a type of its own, not "any".
	sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.3.0/24"),
		Proto: ipsec.ProtoICMP, SrcPorts: ipsec.Port(0)}
	e, err := s.AddPolicy(Policy{Dir: ipsec.DirOut, Sel: sel, Action: ipsec.ActionDiscard})
	if err != nil || e.Sel.SrcPorts != ipsec.Port(0) || !e.Sel.ConstrainsPorts() {
		t.Fatalf("icmp type 0: %+v, %v", e.Sel, err)
	}
}

func TestPolicyOrder(t *testing.T) {
	s := New(Options{})
	mk := func(dst string, prio uint32) Policy {
		return Policy{Dir: ipsec.DirOut, Sel: ipsec.Selector{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix(dst)}, Priority: prio}
	}
	s.AddPolicy(mk("198.18.0.0/16", 200))
	s.AddPolicy(mk("198.18.1.0/24", 100))
	s.AddPolicy(mk("198.18.2.0/24", 100))
	l := s.ListPolicies()
	if l[0].Priority != 100 || l[1].Priority != 100 || l[2].Priority != 200 || l[0].ID > l[1].ID {
		t.Fatalf("order %+v", l)
	}
}

func TestMatches(t *testing.T) {
	e := SAEntry{SA: testSA("a", 0x1001)}
	for _, c := range []struct {
		t    Tmpl
		want bool
	}{
		{Tmpl{Reqid: 7}, true},
		{Tmpl{SA: "a"}, true},
		{Tmpl{SA: "b"}, false},
		{Tmpl{Reqid: 8}, false},
		{Tmpl{Reqid: 7, Dst: netip.MustParseAddr("198.19.0.1")}, true},
		{Tmpl{Reqid: 7, Dst: netip.MustParseAddr("198.19.0.2")}, false},
		{Tmpl{Reqid: 7, Mode: ipsec.ModeTransport}, false},
		{Tmpl{Reqid: 7, Mode: ipsec.ModeTunnel}, true},
		{Tmpl{}, false},
	} {
		if got := Matches(&c.t, &e); got != c.want {
			t.Errorf("Matches(%+v) = %v, want %v", c.t, got, c.want)
		}
	}
	e.State = StateDead
	if Matches(&Tmpl{Reqid: 7}, &e) {
		t.Error("dead SA matched")
	}
}

func TestRenumber(t *testing.T) {
	s := New(Options{})
	a, _ := s.AddSA(testSA("a", 0x1001))
	b, _ := s.AddSA(testSA("b", 0x1002))
	c, _ := s.AddSA(testSA("c", 0x1003))
	if _, ok := s.Renumber(c.Index); ok {
		t.Fatal("renumbered with no lower free index")
	}
	s.DeleteSA(Ref{Name: "a"})
	if _, ok := s.Renumber(c.Index); ok {
		t.Fatal("renumbered onto an index still in the graveyard")
	}
	s.Reap(a.Index)
	e, ok := s.Renumber(c.Index)
	if !ok || e.Index != a.Index || e.Serial != c.Serial {
		t.Fatalf("renumber: %+v %v", e, ok)
	}
	if got, _ := s.GetSA(Ref{Name: "c"}, false); got.Index != a.Index {
		t.Fatalf("lookup by name after renumber: %d", got.Index)
	}
	id := c.ID()
	if got, _ := s.GetSA(Ref{ID: &id}, false); got.Index != a.Index {
		t.Fatal("lookup by id after renumber")
	}
	d, _ := s.AddSA(testSA("d", 0x1004))
	if d.Index != c.Index {
		t.Fatalf("the old index was not freed: new SA got %d", d.Index)
	}
	_ = b
}

// ReplaceSA is one change: whoever looks (the engine, from the change hook) sees the old SA in the
// graveyard and the new one live under the name, never the name without an SA.
func TestReplaceSAIsOneChange(t *testing.T) {
	s := New(Options{})
	a, _ := s.AddSA(testSA("a", 0x1001))
	other, _ := s.AddSA(testSA("other", 0x1003))
	var seen []Snapshot
	s.SetOnChange(func() { seen = append(seen, s.Snapshot()) })
	next := testSA("a", 0x1002)
	next.AEAD.Key[0] = 0x99
	old, added, err := s.ReplaceSA(Ref{Name: "a"}, next)
	if err != nil {
		t.Fatal(err)
	}
	if old.Index != a.Index || old.State != StateDead || added.SPI != 0x1002 || added.Index == a.Index || added.Serial <= a.Serial {
		t.Fatalf("replaced %+v by %+v", old, added)
	}
	if len(seen) != 1 {
		t.Fatalf("%d changes, want 1", len(seen))
	}
	snap := seen[0]
	if len(snap.Grave) != 1 || snap.Grave[0].Index != a.Index || len(snap.SAs) != 2 {
		t.Fatalf("snapshot at the change: live %d, grave %+v", len(snap.SAs), snap.Grave)
	}
	if got, err := s.GetSA(Ref{Name: "a"}, false); err != nil || got.Index != added.Index {
		t.Fatalf("the name leads to %+v, %v", got, err)
	}
	// Same identity (a new key under the same SPI) is allowed: the old one is out of the way.
	same := testSA("a", 0x1002)
	if _, _, err := s.ReplaceSA(Ref{Name: "a"}, same); err != nil {
		t.Fatalf("replace with the same SPI: %v", err)
	}
	// Refusals change nothing.
	gen := s.Gen()
	for _, tc := range []struct {
		sa   SA
		want error
	}{
		{testSA("a", 0x1003), ErrExists},     // the SPI of "other"
		{testSA("other", 0x1009), ErrExists}, // the name of "other"
		{SA{Name: "a", SPI: 0x1009}, ErrInvalid},
	} {
		if _, _, err := s.ReplaceSA(Ref{Name: "a"}, tc.sa); !errors.Is(err, tc.want) {
			t.Errorf("replace with %+v: %v, want %v", tc.sa, err, tc.want)
		}
	}
	if _, _, err := s.ReplaceSA(Ref{Name: "nosuch"}, testSA("nosuch", 0x1010)); !errors.Is(err, ErrNotFound) {
		t.Errorf("replace of a missing SA: %v", err)
	}
	if s.Gen() != gen || len(s.ListSAs(false)) != 2 {
		t.Fatalf("a refused replace changed the store (gen %d → %d)", gen, s.Gen())
	}
	if got, err := s.GetSA(Ref{Name: "other"}, false); err != nil || got.Index != other.Index {
		t.Fatalf("the other SA moved: %+v %v", got, err)
	}
}

func TestSameKey(t *testing.T) {
	a := testSA("a", 0x1001)
	b := testSA("b", 0x2002)
	b.AEAD.Key = a.AEAD.Key
	if !SameKey(&a, &b) {
		t.Fatal("two SAs with one AEAD key: SameKey false")
	}
	b.AEAD.Key = append(Key(nil), b.AEAD.Key...)
	b.AEAD.Key[0] ^= 1
	if SameKey(&a, &b) {
		t.Fatal("different keys: SameKey true")
	}
	cbc := func(enc, auth byte) SA {
		return SA{Enc: &Algorithm{Name: "cbc(aes)", Key: bytesOf(enc, 16)}, Auth: &Algorithm{Name: "hmac(sha256)", Key: bytesOf(auth, 32)}}
	}
	for _, c := range []struct {
		x, y SA
		want bool
	}{{cbc(1, 2), cbc(1, 3), true}, {cbc(1, 2), cbc(3, 2), true}, {cbc(1, 2), cbc(3, 4), false},
		{SA{Enc: &Algorithm{Name: "ecb(cipher_null)"}, Auth: &Algorithm{Name: "hmac(sha256)", Key: bytesOf(5, 32)}},
			SA{Enc: &Algorithm{Name: "ecb(cipher_null)"}, Auth: &Algorithm{Name: "hmac(sha256)", Key: bytesOf(6, 32)}}, false}} {
		if got := SameKey(&c.x, &c.y); got != c.want {
			t.Errorf("SameKey(%v/%v, %v/%v) = %v", c.x.Enc.Key, c.x.Auth.Key, c.y.Enc.Key, c.y.Auth.Key, got)
		}
	}
}

func bytesOf(b byte, n int) Key {
	k := make(Key, n)
	for i := range k {
		k[i] = b
	}
	return k
}
