package sadb

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrUnsupported is returned for a change the SAD accepts in principle but the card cannot make in
// place (an SA moving to another address family): the caller negotiates a new SA instead.
var ErrUnsupported = errors.New("not supported in place")

// Migration moves an SA to new addresses, encapsulation and reqid (NAT-T rebinding, MOBIKE).
type Migration struct {
	ID       SAID       // the SA as it is now
	Src, Dst netip.Addr // its new addresses, of the SA's address family
	Encap    *Encap     // its new encapsulation; nil for none
	Reqid    uint32     // its new reqid; 0 keeps it
}

// MigrateSA changes an SA's addresses, encapsulation and reqid in place: the same index, keys,
// lifetime state and times, so the card's entry and the ESP engine's state (sequence numbers, replay
// window) are changed where they are. Its identity becomes (SPI, new dst, proto): ErrExists when
// another SA or a larval entry has it. ErrUnsupported for a change of address family.
func (s *Store) MigrateSA(m Migration) (SAEntry, error) {
	id := m.ID
	src, dst := m.Src.Unmap(), m.Dst.Unmap()
	if !src.IsValid() || !dst.IsValid() {
		return SAEntry{}, fmt.Errorf("migrate sa %s: %w: src and dst are required", id, ErrInvalid)
	}
	if src.Is4() != dst.Is4() {
		return SAEntry{}, fmt.Errorf("migrate sa %s: %w: src %s and dst %s are of different address families", id, ErrInvalid, src, dst)
	}
	var encap *Encap
	if m.Encap != nil {
		e := *m.Encap
		if e.Type == "" {
			e.Type = "espinudp"
		}
		if e.Type != "espinudp" || e.Sport == 0 || e.Dport == 0 {
			return SAEntry{}, fmt.Errorf("migrate sa %s: %w: encap: want espinudp with source and destination ports", id, ErrInvalid)
		}
		encap = &e
	}
	s.mu.Lock()
	r, err := s.lookupLocked(Ref{ID: &id})
	if err != nil {
		s.mu.Unlock()
		return SAEntry{}, fmt.Errorf("migrate sa: %w", err)
	}
	old := &r.e.SA
	newID := SAID{SPI: old.SPI, Dst: dst, Proto: old.Proto}
	switch {
	case old.Dst.Is4() != dst.Is4():
		err = fmt.Errorf("%w: from %s to %s: the card keeps an SA in its address family (negotiate a new SA)",
			ErrUnsupported, old.Dst, dst)
	case newID != old.ID():
		if _, ok := s.sas.byKey[newID]; ok {
			err = fmt.Errorf("%s: %w", newID, ErrExists)
		} else if _, ok := s.larval[newID]; ok {
			err = fmt.Errorf("%s: %w (an spi reserved for a negotiation)", newID, ErrExists)
		}
	}
	if err != nil {
		s.mu.Unlock()
		return SAEntry{}, fmt.Errorf("migrate sa %s: %w", id, err)
	}
	s.sas.remove(r.e.Index, old.ID(), old.Name)
	old.Src, old.Dst, old.Encap = src, dst, encap
	if m.Reqid != 0 {
		old.Reqid = m.Reqid
	}
	s.sas.insert(r.e.Index, old.ID(), old.Name, r)
	s.gen++
	r.e.Gen = s.gen
	e := r.e.view(false)
	s.mu.Unlock()
	s.changed()
	return e, nil
}
