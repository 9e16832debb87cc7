package sadb

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrExists    = errors.New("already exists")
	ErrNotFound  = errors.New("not found")
	ErrInvalid   = errors.New("invalid")
	ErrImmutable = errors.New("cannot be changed on an existing SA")
	ErrFull      = errors.New("no free index")
)

// Options configure a Store.
type Options struct {
	// Now is the clock (injected by tests); time.Now by default.
	Now func() time.Time
	// MaxSAs and MaxPolicies bound the index spaces (defaults 1<<20). The SAD may hold more SAs than the
	// card: those the card cannot take are nacked, not refused here. The SPD should not hold more
	// policies than the card: a PROTECT policy the card lacks would let its traffic fall through to the
	// policies below it, so the manager sets MaxPolicies to the card's capacity and the SPD refuses more.
	MaxSAs, MaxPolicies uint32
	// MaxLarval bounds the SPIs reserved for SAs being negotiated (AllocSPI); default DefaultMaxLarval.
	MaxLarval int
	// OnChange is called, without locks held, after every change that the card may have to follow.
	OnChange func()
}

type saRec struct {
	e   SAEntry
	key keyPrint // its key's fingerprint (sharedkey.go)
}

type polRec struct {
	e PolicyEntry
}

// table is one of the store's two databases: its entries by card index (SA index or policy id), by
// identity ((SPI, dst, proto) for SAs, (dir, selector) for policies) and by name.
type table[K comparable, R any] struct {
	all    map[uint32]*R
	byKey  map[K]uint32
	byName map[string]uint32
	free   indexAlloc
	what   string // "sa" or "policy", for messages
}

func newTable[K comparable, R any](what string, max uint32) table[K, R] {
	return table[K, R]{all: map[uint32]*R{}, byKey: map[K]uint32{}, byName: map[string]uint32{},
		free: indexAlloc{max: max}, what: what}
}

// find returns the entry a reference names: by name when name is set, else by identity when key is
// set, else by index. It is the one lookup of SA and policy references.
func (t *table[K, R]) find(name string, key *K, index uint32) (*R, error) {
	var idx uint32
	var ok bool
	switch {
	case name != "":
		idx, ok = t.byName[name]
	case key != nil:
		idx, ok = t.byKey[*key]
	case index != 0:
		_, ok = t.all[index]
		idx = index
	default:
		return nil, fmt.Errorf("%w: empty %s reference", ErrInvalid, t.what)
	}
	if !ok {
		return nil, ErrNotFound
	}
	return t.all[idx], nil
}

// taken fails with ErrExists when an entry other than the one at index has key or name.
func (t *table[K, R]) taken(key K, name string, index uint32) error {
	if i, ok := t.byKey[key]; ok && i != index {
		return ErrExists
	}
	if i, ok := t.byName[name]; name != "" && ok && i != index {
		return fmt.Errorf("name %q: %w", name, ErrExists)
	}
	return nil
}

func (t *table[K, R]) insert(index uint32, key K, name string, r *R) {
	t.all[index] = r
	t.byKey[key] = index
	if name != "" {
		t.byName[name] = index
	}
}

// remove drops the entry at index from every map; its index is not freed (SAs wait for Reap).
func (t *table[K, R]) remove(index uint32, key K, name string) {
	delete(t.all, index)
	if t.byKey[key] == index {
		delete(t.byKey, key)
	}
	if name != "" && t.byName[name] == index {
		delete(t.byName, name)
	}
}

// Store is the SPD and the SAD.
type Store struct {
	opts Options

	mu     sync.Mutex
	gen    uint64
	serial uint64
	sas    table[SAID, saRec]
	grave  map[uint32]*saRec  // deleted SAs whose index and key wait for Reap
	larval map[SAID]time.Time // reserved SPIs and when they expire (larval.go)
	pols   table[PolicyKey, polRec]
	// ike policies by identity (spd.go): byKey of pols holds config and cli policies only.
	ikePols   map[string]uint32
	fwdFree   indexAlloc // fwd policy ids, above MaxPolicies
	polSerial uint64
	// live SAs by their AEAD key's fingerprint, under keySecret (sharedkey.go)
	byKeyPrint map[[esp.FingerprintLen]byte]*saRec
	keySecret  []byte
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxSAs == 0 {
		opts.MaxSAs = 1 << 20
	}
	if opts.MaxPolicies == 0 {
		opts.MaxPolicies = 1 << 20
	}
	if opts.MaxLarval <= 0 {
		opts.MaxLarval = DefaultMaxLarval
	}
	return &Store{
		opts:    opts,
		sas:     newTable[SAID, saRec]("sa", opts.MaxSAs),
		grave:   map[uint32]*saRec{},
		larval:  map[SAID]time.Time{},
		pols:    newPolicyTable(opts.MaxPolicies),
		ikePols: map[string]uint32{},
		fwdFree: indexAlloc{max: 1<<32 - 1 - opts.MaxPolicies, delay: policyIDDelay},

		byKeyPrint: map[[esp.FingerprintLen]byte]*saRec{},
		keySecret:  newKeySecret(),
	}
}

// SetOnChange replaces the change hook (the offload engine installs itself here).
func (s *Store) SetOnChange(f func()) {
	s.mu.Lock()
	s.opts.OnChange = f
	s.mu.Unlock()
}

func (s *Store) changed() {
	s.mu.Lock()
	f := s.opts.OnChange
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

// Gen returns a number that grows with every change to the SPD or SAD.
func (s *Store) Gen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// --- SAs ---

func normalizeSA(sa *SA) error {
	if sa.Proto == 0 {
		sa.Proto = ipsec.ProtoESP
	}
	if sa.Proto != ipsec.ProtoESP {
		return fmt.Errorf("%w: proto %s: only esp is offloaded", ErrInvalid, sa.Proto)
	}
	if sa.Mode == 0 {
		sa.Mode = ipsec.ModeTunnel
	}
	if !sa.Mode.Valid() {
		return fmt.Errorf("%w: %s", ErrInvalid, sa.Mode)
	}
	if sa.Dir != nil && !sa.Dir.OnCard() {
		return fmt.Errorf("%w: dir %s: an SA is in or out", ErrInvalid, *sa.Dir)
	}
	if sa.SPI == 0 {
		return fmt.Errorf("%w: spi 0 is reserved (RFC 4303 §2.1)", ErrInvalid)
	}
	if !sa.Src.IsValid() || !sa.Dst.IsValid() {
		return fmt.Errorf("%w: src and dst addresses are required", ErrInvalid)
	}
	sa.Src, sa.Dst = sa.Src.Unmap(), sa.Dst.Unmap()
	if sa.Src.Is4() != sa.Dst.Is4() {
		return fmt.Errorf("%w: src %s and dst %s are of different address families", ErrInvalid, sa.Src, sa.Dst)
	}
	switch {
	case sa.AEAD != nil && (sa.Enc != nil || sa.Auth != nil):
		return fmt.Errorf("%w: aead excludes enc and auth", ErrInvalid)
	case sa.AEAD == nil && sa.Enc == nil:
		return fmt.Errorf("%w: an aead or an enc algorithm is required", ErrInvalid)
	case sa.AEAD == nil && sa.Auth == nil:
		// RFC 8221 §5: ESP without integrity is a MUST NOT for an SA of this kind.
		return fmt.Errorf("%w: enc needs an auth algorithm (RFC 8221 §5)", ErrInvalid)
	}
	for _, a := range []*Algorithm{sa.AEAD, sa.Enc, sa.Auth} {
		if a != nil && a.Name == "" {
			return fmt.Errorf("%w: algorithm name missing", ErrInvalid)
		}
	}
	if e := sa.Encap; e != nil {
		if e.Type == "" {
			e.Type = "espinudp"
		}
		if e.Type != "espinudp" {
			return fmt.Errorf("%w: encap %q: only espinudp (RFC 3948)", ErrInvalid, e.Type)
		}
		if e.Sport == 0 || e.Dport == 0 {
			return fmt.Errorf("%w: encap espinudp needs source and destination ports", ErrInvalid)
		}
	}
	l := sa.Limits
	for _, p := range [][3]any{
		{"bytes", l.SoftBytes, l.HardBytes}, {"packets", l.SoftPackets, l.HardPackets},
		{"add seconds", l.SoftAddSeconds, l.HardAddSeconds}, {"use seconds", l.SoftUseSeconds, l.HardUseSeconds},
	} {
		soft, hard := p[1].(uint64), p[2].(uint64)
		if soft != 0 && hard != 0 && soft > hard {
			return fmt.Errorf("%w: soft %s limit %d is above the hard one %d", ErrInvalid, p[0], soft, hard)
		}
	}
	// The ESP engine judges what only it knows: algorithm names, key lengths, SPI range, window size.
	// There is one list of what is supported, the engine's.
	p, err := sa.ESPParams()
	if err == nil {
		err = p.Validate()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// prepare copies in (keys included) and normalizes the copy; on error nothing is kept.
func prepare(in *SA) (SA, error) {
	sa := in.clone(true)
	if err := normalizeSA(&sa); err != nil {
		sa.Wipe()
		return SA{}, err
	}
	return sa, nil
}

// AddSA adds an SA (ip xfrm state add). The key bytes are copied.
func (s *Store) AddSA(in SA) (SAEntry, error) {
	sa, err := prepare(&in)
	if err != nil {
		return SAEntry{}, fmt.Errorf("add sa %s: %w", in.ID(), err)
	}
	s.mu.Lock()
	e, err := s.addSALocked(sa)
	s.mu.Unlock()
	if err != nil {
		sa.Wipe()
		return SAEntry{}, fmt.Errorf("add sa %s: %w", sa.ID(), err)
	}
	s.changed()
	return e, nil
}

func (s *Store) addSALocked(sa SA) (SAEntry, error) {
	if err := s.sas.taken(sa.ID(), sa.Name, 0); err != nil {
		return SAEntry{}, err
	}
	if err := s.keySharedLocked(s.keyPrintOf(&sa), nil); err != nil {
		return SAEntry{}, err
	}
	idx, ok := s.sas.free.get()
	if !ok {
		return SAEntry{}, fmt.Errorf("%w (%d SAs)", ErrFull, s.opts.MaxSAs)
	}
	// The SPI reserved for it (AllocSPI), if any, is now used.
	delete(s.larval, sa.ID())
	return s.insertLocked(sa, idx), nil
}

// insertLocked adds sa at the free index idx.
func (s *Store) insertLocked(sa SA, idx uint32) SAEntry {
	s.gen++
	s.serial++
	r := &saRec{e: SAEntry{SA: sa, Index: idx, AddTime: s.opts.Now(), Gen: s.gen, Serial: s.serial}, key: s.keyPrintOf(&sa)}
	s.sas.insert(idx, sa.ID(), sa.Name, r)
	s.holdKeyLocked(r)
	return r.e.view(false)
}

// ReplaceSA deletes the SA that ref names and adds sa in its place as one change: the offload engine
// sees both or neither, so a policy naming the SA moves from the old one to the new one in one pass and
// never finds the name without an SA in between (make-before-break when a reload changes an SA's key).
// The old SA waits in the graveyard like a deleted one. Nothing changes if sa is invalid, collides with
// another SA, or finds no free index.
func (s *Store) ReplaceSA(ref Ref, in SA) (deleted, added SAEntry, err error) {
	sa, err := prepare(&in)
	if err != nil {
		return SAEntry{}, SAEntry{}, fmt.Errorf("replace sa %s: %w", in.ID(), err)
	}
	s.mu.Lock()
	r, err := s.lookupLocked(ref)
	if err == nil {
		err = s.sas.taken(sa.ID(), sa.Name, r.e.Index)
	}
	if err == nil {
		err = s.keySharedLocked(s.keyPrintOf(&sa), r)
	}
	var idx uint32
	if err == nil {
		var ok bool
		if idx, ok = s.sas.free.get(); !ok {
			err = fmt.Errorf("%w (%d SAs)", ErrFull, s.opts.MaxSAs)
		}
	}
	if err != nil {
		s.mu.Unlock()
		sa.Wipe()
		return SAEntry{}, SAEntry{}, fmt.Errorf("replace sa %s: %w", sa.ID(), err)
	}
	s.buryLocked(r)
	deleted = r.e.view(false)
	added = s.insertLocked(sa, idx)
	s.mu.Unlock()
	s.changed()
	return deleted, added, nil
}

func (s *Store) lookupLocked(ref Ref) (*saRec, error) {
	var id *SAID
	if ref.ID != nil {
		i := *ref.ID
		if i.Proto == 0 {
			i.Proto = ipsec.ProtoESP
		}
		i.Dst = i.Dst.Unmap()
		id = &i
	}
	r, err := s.sas.find(ref.Name, id, ref.Index)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return r, err
}

// UpdateSA changes an existing SA in place (ip xfrm state update). The SA is found by name when
// the update names one that exists, else by (SPI, dst, proto). What may change is what Compare
// calls InPlace — the SA keeps its SPI, destination, direction, algorithms and keys, and so its
// sequence numbers, IV mask and replay window; anything else fails with ErrImmutable. The caller
// checks first that the running SA can take the change (the manager asks the offload engine).
func (s *Store) UpdateSA(in SA) (SAEntry, error) {
	sa, err := prepare(&in)
	if err != nil {
		return SAEntry{}, fmt.Errorf("update sa %s: %w", in.ID(), err)
	}
	defer sa.Wipe()
	s.mu.Lock()
	e, changed, err := s.updateSALocked(sa)
	s.mu.Unlock()
	if err != nil {
		return SAEntry{}, fmt.Errorf("update sa %s: %w", sa.ID(), err)
	}
	if changed {
		s.changed()
	}
	return e, nil
}

func (s *Store) updateSALocked(sa SA) (SAEntry, bool, error) {
	r, err := s.sas.find(sa.Name, nil, 0)
	if sa.Name == "" || err != nil {
		id := sa.ID()
		if r, err = s.sas.find("", &id, 0); err != nil {
			return SAEntry{}, false, err
		}
	}
	old := &r.e.SA
	change, what := Compare(old, &sa)
	if change == Replace {
		return SAEntry{}, false, fmt.Errorf("%s %w (add a new SA, with a new key, to rekey)", what, ErrImmutable)
	}
	nameChanged := sa.Name != "" && sa.Name != old.Name
	if nameChanged {
		if err := s.sas.taken(sa.ID(), sa.Name, r.e.Index); err != nil {
			return SAEntry{}, false, err
		}
	}
	if change == Unchanged && !nameChanged {
		return r.e.view(false), false, nil
	}
	if nameChanged {
		s.sas.remove(r.e.Index, old.ID(), old.Name)
		old.Name = sa.Name
		s.sas.insert(r.e.Index, old.ID(), old.Name, r)
	}
	// Only the lifetime limits are the SAD's alone; everything else is held by the card or the
	// workers, which get the SA again.
	cardChanged := !sameButLimits(old, &sa)
	keep := *old
	*old = sa.clone(false)
	old.Name, old.Seq = keep.Name, keep.Seq
	old.AEAD, old.Enc, old.Auth = keep.AEAD, keep.Enc, keep.Auth // the same keys: keep the SAD's own bytes
	s.gen++
	if cardChanged || nameChanged {
		r.e.Gen = s.gen
	}
	return r.e.view(false), true, nil
}

// sameButLimits reports whether a and b differ at most in their lifetime limits.
func sameButLimits(a, b *SA) bool {
	c := *b
	c.Limits = a.Limits
	ch, _ := Compare(a, &c)
	return ch == Unchanged
}

// DeleteSA removes an SA from the SAD (ip xfrm state delete). It leaves every lookup at once; its index
// and key wait in the graveyard until Reap.
func (s *Store) DeleteSA(ref Ref) (SAEntry, error) {
	s.mu.Lock()
	r, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return SAEntry{}, fmt.Errorf("delete sa: %w", err)
	}
	s.buryLocked(r)
	e := r.e.view(false)
	s.mu.Unlock()
	s.changed()
	return e, nil
}

func (s *Store) buryLocked(r *saRec) {
	s.sas.remove(r.e.Index, r.e.ID(), r.e.Name)
	s.dropKeyLocked(r)
	s.gen++
	r.e.State = StateDead
	r.e.Gen = s.gen
	s.grave[r.e.Index] = r
}

// FlushSAs deletes every SA (ip xfrm state flush) and returns what it deleted.
func (s *Store) FlushSAs() []SAEntry { return s.FlushSAsOf(OwnerFilter{}) }

// GetSA returns one SA; keys are copied only if withKeys.
func (s *Store) GetSA(ref Ref, withKeys bool) (SAEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookupLocked(ref)
	if err != nil {
		return SAEntry{}, fmt.Errorf("get sa: %w", err)
	}
	return r.e.view(withKeys), nil
}

// ListSAs returns every SA, ordered by index (ip xfrm state list).
func (s *Store) ListSAs(withKeys bool) []SAEntry { return s.ListSAsOf(OwnerFilter{}, withKeys) }

func sortSAs(v []SAEntry) {
	slices.SortFunc(v, func(a, b SAEntry) int { return cmp.Compare(a.Index, b.Index) })
}

func (e *SAEntry) view(withKeys bool) SAEntry {
	c := *e
	c.SA = e.SA.clone(withKeys)
	return c
}

// --- lifetime bookkeeping (called by the lifetime poller) ---

// Usage records what an SA has used so far. firstUse is kept only the first time it is non-zero;
// lastUse only moves forward. It returns the updated entry and false if the SA no longer exists.
func (s *Store) Usage(index uint32, cur Current, firstUse, lastUse time.Time) (SAEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sas.all[index]
	if !ok {
		return SAEntry{}, false
	}
	r.e.Cur = cur
	if r.e.UseTime.IsZero() && !firstUse.IsZero() {
		r.e.UseTime = firstUse
	}
	if lastUse.After(r.e.LastUse) {
		r.e.LastUse = lastUse
	}
	return r.e.view(false), true
}

// MarkDying moves a mature SA to the dying state and records that its soft expiry fired. It returns true
// only the first time, so the soft expiry fires once.
func (s *Store) MarkDying(index uint32) (SAEntry, bool) {
	s.mu.Lock()
	r, ok := s.sas.all[index]
	if !ok || r.e.SoftFired {
		s.mu.Unlock()
		return SAEntry{}, false
	}
	r.e.SoftFired = true
	r.e.State = StateDying
	s.gen++
	r.e.Gen = s.gen
	e := r.e.view(false)
	s.mu.Unlock()
	s.changed()
	return e, true
}

// Expire removes an SA whose hard limit was reached. It returns false if it was already gone.
func (s *Store) Expire(index uint32) (SAEntry, bool) {
	s.mu.Lock()
	r, ok := s.sas.all[index]
	if !ok {
		s.mu.Unlock()
		return SAEntry{}, false
	}
	s.buryLocked(r)
	e := r.e.view(false)
	s.mu.Unlock()
	s.changed()
	return e, true
}

// --- policies ---

func normalizeSelector(sel *ipsec.Selector) error {
	if !sel.Src.IsValid() && !sel.Dst.IsValid() {
		return fmt.Errorf("%w: selector needs src or dst", ErrInvalid)
	}
	if !sel.Src.IsValid() {
		sel.Src = anyPrefix(sel.Dst.Addr())
	}
	if !sel.Dst.IsValid() {
		sel.Dst = anyPrefix(sel.Src.Addr())
	}
	sel.Src = netip.PrefixFrom(sel.Src.Addr().Unmap(), min(sel.Src.Bits(), sel.Src.Addr().Unmap().BitLen())).Masked()
	sel.Dst = netip.PrefixFrom(sel.Dst.Addr().Unmap(), min(sel.Dst.Bits(), sel.Dst.Addr().Unmap().BitLen())).Masked()
	// The card's own rules: one family, ports only where the protocol carries them.
	if err := sel.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func anyPrefix(a netip.Addr) netip.Prefix {
	if a.Unmap().Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

func normalizePolicy(p *Policy) error {
	switch {
	case !p.Dir.OnCard() && p.Dir != ipsec.DirFwd:
		// fwd is stored but never offered to the card (spd.go).
		return fmt.Errorf("%w: dir %s: want in, out or fwd", ErrInvalid, p.Dir)
	case p.Action > ipsec.ActionDiscard:
		return fmt.Errorf("%w: %s", ErrInvalid, p.Action)
	}
	if err := normalizeSelector(&p.Sel); err != nil {
		return err
	}
	if p.Action == ipsec.ActionProtect {
		if p.Tmpl == nil || (p.Tmpl.SA == "" && p.Tmpl.Reqid == 0) {
			return fmt.Errorf("%w: a protect policy needs a template naming its SA (sa NAME or reqid N)", ErrInvalid)
		}
		t := p.Tmpl
		if t.Proto == 0 {
			t.Proto = ipsec.ProtoESP
		}
		if t.Proto != ipsec.ProtoESP {
			return fmt.Errorf("%w: template proto %s: only esp", ErrInvalid, t.Proto)
		}
		if t.Mode != 0 && !t.Mode.Valid() {
			return fmt.Errorf("%w: template %s", ErrInvalid, t.Mode)
		}
		t.Src, t.Dst = t.Src.Unmap(), t.Dst.Unmap()
	} else if p.Tmpl != nil {
		return fmt.Errorf("%w: only a protect policy has a template", ErrInvalid)
	}
	return nil
}

// AddPolicy adds a policy (ip xfrm policy add). A config or cli policy with the (dir, selector) of
// another config or cli policy is ErrExists. For owner ike (spd.go) an identical ike policy is
// returned as it is (see AddPolicyOnce).
func (s *Store) AddPolicy(in Policy) (PolicyEntry, error) {
	e, _, err := s.AddPolicyOnce(in)
	return e, err
}

// AddPolicyOnce is AddPolicy that also says whether it added a policy: false when an identical ike
// policy existed and is returned instead.
func (s *Store) AddPolicyOnce(in Policy) (PolicyEntry, bool, error) {
	p := in.clone()
	if err := normalizePolicy(&p); err != nil {
		return PolicyEntry{}, false, fmt.Errorf("add policy: %w", err)
	}
	key := PolicyKey{Dir: p.Dir, Sel: p.Sel}
	ike := p.Owner == OwnerIKE
	var ident string
	s.mu.Lock()
	var err error
	if ike {
		ident = identity(&p)
		if id, ok := s.ikePols[ident]; ok {
			e := s.pols.all[id].e.view()
			s.mu.Unlock()
			return e, false, nil
		}
		if _, ok := s.pols.byName[p.Name]; p.Name != "" && ok {
			err = fmt.Errorf("name %q: %w", p.Name, ErrExists)
		}
	} else {
		err = s.pols.taken(key, p.Name, 0)
	}
	if err != nil {
		s.mu.Unlock()
		return PolicyEntry{}, false, fmt.Errorf("add policy %s: %w", p.Label(), err)
	}
	id, ok := s.allocPolicyID(&p)
	if !ok {
		s.mu.Unlock()
		return PolicyEntry{}, false, fmt.Errorf("add policy: %w: the SPD holds its maximum of %d policies", ErrFull, s.opts.MaxPolicies)
	}
	s.gen++
	s.polSerial++
	r := &polRec{e: PolicyEntry{Policy: p, ID: id, AddTime: s.opts.Now(), Gen: s.gen, Serial: s.polSerial}}
	if ike {
		// Not by (dir, selector): ike policies may share it with each other and with config/cli ones.
		s.pols.all[id] = r
		if p.Name != "" {
			s.pols.byName[p.Name] = id
		}
		s.ikePols[ident] = id
	} else {
		s.pols.insert(id, key, p.Name, r)
	}
	e := r.e.view()
	s.mu.Unlock()
	s.changed()
	return e, true, nil
}

// UpdatePolicy replaces a policy found by name, else by (dir, selector) (ip xfrm policy update). Its
// policy id stays, so the card changes the entry in place.
func (s *Store) UpdatePolicy(in Policy) (PolicyEntry, error) {
	p := in.clone()
	if err := normalizePolicy(&p); err != nil {
		return PolicyEntry{}, fmt.Errorf("update policy: %w", err)
	}
	if p.Owner == OwnerIKE {
		return PolicyEntry{}, fmt.Errorf("update policy: %w: owner ike: an ike policy is its whole content; add the new one and delete the old", ErrInvalid)
	}
	key := PolicyKey{Dir: p.Dir, Sel: p.Sel}
	s.mu.Lock()
	r, err := s.pols.find(p.Name, nil, 0)
	if p.Name == "" || err != nil {
		r, err = s.pols.find("", &key, 0)
	}
	switch {
	case err == nil && r.e.Owner == OwnerIKE:
		err = fmt.Errorf("%w: it belongs to owner ike, whose policies are not updated in place", ErrInvalid)
	case err == nil && (p.Dir == ipsec.DirFwd) != (r.e.Dir == ipsec.DirFwd):
		err = fmt.Errorf("%w: a policy does not move into or out of dir fwd (delete and add it)", ErrInvalid)
	case err == nil:
		err = s.pols.taken(key, p.Name, r.e.ID)
	}
	if err != nil {
		s.mu.Unlock()
		return PolicyEntry{}, fmt.Errorf("update policy %s: %w", p.Label(), err)
	}
	s.pols.remove(r.e.ID, PolicyKey{Dir: r.e.Dir, Sel: r.e.Sel}, r.e.Name)
	if p.Name == "" {
		p.Name = r.e.Name
	}
	p.Owner = r.e.Owner
	s.gen++
	r.e.Policy = p
	r.e.Gen = s.gen
	s.pols.insert(r.e.ID, key, p.Name, r)
	e := r.e.view()
	s.mu.Unlock()
	s.changed()
	return e, nil
}

func (s *Store) lookupPolicyLocked(ref PolicyRef) (*polRec, error) {
	var key *PolicyKey
	if ref.Key != nil {
		p := Policy{Dir: ref.Key.Dir, Sel: ref.Key.Sel}
		if err := normalizePolicy(&p); err != nil {
			return nil, err
		}
		key = &PolicyKey{Dir: p.Dir, Sel: p.Sel}
	}
	r, err := s.pols.find(ref.Name, key, ref.ID)
	if errors.Is(err, ErrNotFound) && ref.Name == "" && key != nil {
		// Not a config or cli policy: an ike one, if exactly one has this (dir, selector).
		r, err = s.onlyIKEPolicyLocked(*key)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return r, err
}

func (s *Store) onlyIKEPolicyLocked(key PolicyKey) (*polRec, error) {
	var found *polRec
	for _, id := range s.ikePols {
		r := s.pols.all[id]
		if r.e.Dir != key.Dir || r.e.Sel != key.Sel {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: several ike policies have dir %s %s: name one by id", ErrInvalid, key.Dir, key.Sel)
		}
		found = r
	}
	if found == nil {
		return nil, ErrNotFound
	}
	return found, nil
}

// DeletePolicy removes a policy (ip xfrm policy delete). Its id is freed at once: the engine removes the
// card's entry by id before it installs anything new under that id (it applies removals of policies
// before additions of policies in every pass).
func (s *Store) DeletePolicy(ref PolicyRef) (PolicyEntry, error) {
	return s.DeletePolicyOf(ref, OwnerFilter{})
}

func (s *Store) dropPolicyLocked(r *polRec) {
	s.pols.remove(r.e.ID, PolicyKey{Dir: r.e.Dir, Sel: r.e.Sel}, r.e.Name)
	if r.e.Owner == OwnerIKE {
		delete(s.ikePols, identity(&r.e.Policy))
	}
	s.freePolicyID(r.e.ID)
	s.gen++
}

// FlushPolicies deletes every policy (ip xfrm policy flush).
func (s *Store) FlushPolicies() []PolicyEntry { return s.FlushPoliciesOf(OwnerFilter{}) }

// GetPolicy returns one policy.
func (s *Store) GetPolicy(ref PolicyRef) (PolicyEntry, error) {
	return s.GetPolicyOf(ref, OwnerFilter{})
}

// ListPolicies returns every policy in the order the SPD is searched: by direction (out first, as the
// card numbers them; fwd last), then priority (lower wins, as in ip xfrm), then id (older first), with
// ShadowedBy set (spd.go).
func (s *Store) ListPolicies() []PolicyEntry { return s.ListPoliciesOf(OwnerFilter{}) }

func sortPolicies(v []PolicyEntry) {
	slices.SortFunc(v, func(a, b PolicyEntry) int { return spdOrder(&a, &b) })
}

// spdOrder is the order the SPD is searched in: direction, then priority, then id.
func spdOrder(a, b *PolicyEntry) int {
	return cmp.Or(cmp.Compare(a.Dir, b.Dir), cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.ID, b.ID))
}

func (e *PolicyEntry) view() PolicyEntry {
	c := *e
	c.Policy = e.Policy.clone()
	return c
}

// --- the engine's view ---

// Snapshot is a consistent copy of the SPD and SAD for the offload engine. Its SA entries share key
// bytes with the store: the engine may read them until it Reaps the SA, and must not change them.
type Snapshot struct {
	Gen      uint64
	SAs      []SAEntry // live SAs by index
	Grave    []SAEntry // deleted SAs still waiting for Reap
	Policies []PolicyEntry
}

// Snapshot returns the current SPD and SAD.
func (s *Store) Snapshot() Snapshot {
	snap := s.snapshot()
	// Outside the lock: the API waits for it while a snapshot is taken.
	sortPolicies(snap.Policies)
	markShadowed(snap.Policies)
	return snap
}

func (s *Store) snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Gen: s.gen, SAs: make([]SAEntry, 0, len(s.sas.all)), Policies: make([]PolicyEntry, 0, len(s.pols.all))}
	// Sort small keys, then copy the (large) entries once, in order.
	idx := make([]uint32, 0, max(len(s.sas.all), len(s.grave)))
	for i := range s.sas.all {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		snap.SAs = append(snap.SAs, s.sas.all[i].e)
	}
	idx = idx[:0]
	for i := range s.grave {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		snap.Grave = append(snap.Grave, s.grave[i].e)
	}
	for _, r := range s.pols.all {
		snap.Policies = append(snap.Policies, r.e.view())
	}
	return snap
}

// Reap releases a deleted SA once the card no longer holds it: its key bytes are overwritten and its
// index becomes free for a new SA. It reports whether the SA was in the graveyard.
func (s *Store) Reap(index uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grave[index]
	if !ok {
		return false
	}
	r.e.SA.Wipe()
	delete(s.grave, index)
	s.sas.free.put(index)
	return true
}

// Matches reports whether SA e can serve template t: same name or reqid, and the template's addresses,
// mode and SPI where given. Dead SAs never match.
func Matches(t *Tmpl, e *SAEntry) bool {
	if t == nil || e.State == StateDead {
		return false
	}
	if t.SA != "" && t.SA != e.Name {
		return false
	}
	if t.Reqid != 0 && t.Reqid != e.Reqid {
		return false
	}
	if t.SA == "" && t.Reqid == 0 {
		return false
	}
	if t.Src.IsValid() && t.Src != e.Src {
		return false
	}
	if t.Dst.IsValid() && t.Dst != e.Dst {
		return false
	}
	if t.Mode != 0 && t.Mode != e.Mode {
		return false
	}
	if t.SPI != 0 && t.SPI != e.SPI {
		return false
	}
	return true
}

// indexAlloc hands out the lowest free index in 1..max. With delay, a freed index is handed out
// again only after delay other indexes were freed (or none is left otherwise): policy ids, which
// clients name policies by, are not reused at once.
type indexAlloc struct {
	max   uint32
	next  uint32 // highest index ever handed out
	free  u32heap
	delay int
	cool  []uint32 // freed, not yet free again (FIFO)
}

func (a *indexAlloc) get() (uint32, bool) {
	if a.free.Len() > 0 {
		return heap.Pop(&a.free).(uint32), true
	}
	if a.next < a.max {
		a.next++
		return a.next, true
	}
	if len(a.cool) > 0 {
		i := a.cool[0]
		a.cool = a.cool[1:]
		return i, true
	}
	return 0, false
}

func (a *indexAlloc) put(i uint32) {
	if a.delay == 0 {
		heap.Push(&a.free, i)
		return
	}
	a.cool = append(a.cool, i)
	if len(a.cool) > a.delay {
		heap.Push(&a.free, a.cool[0])
		a.cool = a.cool[1:]
	}
}

type u32heap []uint32

func (h u32heap) Len() int           { return len(h) }
func (h u32heap) Less(i, j int) bool { return h[i] < h[j] }
func (h u32heap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *u32heap) Push(x any)        { *h = append(*h, x.(uint32)) }
func (h *u32heap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// WipeKeys overwrites the key bytes of every SA, live or deleted (the daemon is shutting down).
func (s *Store) WipeKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.sas.all {
		r.e.SA.Wipe()
	}
	for _, r := range s.grave {
		r.e.SA.Wipe()
	}
}

// Renumber moves an SA to the lowest free index when that is lower than its own, and reports the entry
// and whether it moved. The offload engine uses it for an SA the card refused for lack of room and holds
// nowhere: a card whose table is indexed by SA index can only take indices below its capacity, and
// freeing a low index does not help an SA that was numbered above it.
func (s *Store) Renumber(index uint32) (SAEntry, bool) {
	s.mu.Lock()
	r, ok := s.sas.all[index]
	if !ok || s.sas.free.free.Len() == 0 || s.sas.free.free[0] >= index {
		s.mu.Unlock()
		return SAEntry{}, false
	}
	to := heap.Pop(&s.sas.free.free).(uint32)
	s.sas.remove(index, r.e.ID(), r.e.Name)
	s.sas.free.put(index)
	r.e.Index = to
	s.sas.insert(to, r.e.ID(), r.e.Name, r)
	s.gen++
	r.e.Gen = s.gen
	e := r.e.view(false)
	s.mu.Unlock()
	s.changed()
	return e, true
}
