package sadb

import (
	"fmt"
)

// Owner says who put an SA or a policy into the databases, so that each of them manages only its own
// entries: a reload touches only what the configuration file added, an IKE daemon flushes only what it
// negotiated.
type Owner uint8

const (
	// OwnerCLI is the zero value: added through the API without an owner (`xdpsec sa add`, scripts).
	OwnerCLI Owner = iota
	// OwnerConfig: from the configuration file. Only the config loader sets it.
	OwnerConfig
	// OwnerIKE: negotiated by an IKE daemon (strongSwan's kernel-xdpsec). Its policies are identified
	// by their whole content (see Store.AddPolicy), and none of its entries survive a restart.
	OwnerIKE
)

func (o Owner) String() string {
	switch o {
	case OwnerConfig:
		return "config"
	case OwnerIKE:
		return "ike"
	}
	return "cli"
}

// ParseOwner reads an owner's name: config, cli or ike.
func ParseOwner(s string) (Owner, error) {
	switch s {
	case "cli":
		return OwnerCLI, nil
	case "config":
		return OwnerConfig, nil
	case "ike":
		return OwnerIKE, nil
	}
	return 0, fmt.Errorf("%w: owner %q: want config, cli or ike", ErrInvalid, s)
}

func (o Owner) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

func (o *Owner) UnmarshalText(b []byte) error {
	v, err := ParseOwner(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// OwnerFilter selects entries by owner; the zero value selects every owner.
type OwnerFilter struct {
	Set   bool
	Owner Owner
}

// Only is the filter that selects o's entries.
func Only(o Owner) OwnerFilter { return OwnerFilter{Set: true, Owner: o} }

// ParseOwnerFilter reads a query's owner parameter: empty selects every owner.
func ParseOwnerFilter(s string) (OwnerFilter, error) {
	if s == "" {
		return OwnerFilter{}, nil
	}
	o, err := ParseOwner(s)
	return Only(o), err
}

// Match reports whether an entry of owner o is selected.
func (f OwnerFilter) Match(o Owner) bool { return !f.Set || f.Owner == o }

// ListSAsOf returns the SAs of the owners f selects, ordered by index.
func (s *Store) ListSAsOf(f OwnerFilter, withKeys bool) []SAEntry {
	s.mu.Lock()
	out := make([]SAEntry, 0, len(s.sas.all))
	for _, r := range s.sas.all {
		if f.Match(r.e.Owner) {
			out = append(out, r.e.view(withKeys))
		}
	}
	s.mu.Unlock()
	sortSAs(out)
	return out
}

// FlushSAsOf deletes the SAs of the owners f selects (ip xfrm state flush, by owner) and returns them.
func (s *Store) FlushSAsOf(f OwnerFilter) []SAEntry {
	s.mu.Lock()
	var out []SAEntry
	for _, r := range s.sas.all {
		if f.Match(r.e.Owner) {
			s.buryLocked(r)
			out = append(out, r.e.view(false))
		}
	}
	s.mu.Unlock()
	sortSAs(out)
	if len(out) > 0 {
		s.changed()
	}
	return out
}

// ListPoliciesOf returns the policies of the owners f selects, in SPD order (see ListPolicies).
func (s *Store) ListPoliciesOf(f OwnerFilter) []PolicyEntry {
	s.mu.Lock()
	out := make([]PolicyEntry, 0, len(s.pols.all))
	for _, r := range s.pols.all {
		out = append(out, r.e.view())
	}
	s.mu.Unlock()
	sortPolicies(out)
	markShadowed(out)
	n := 0
	for _, p := range out {
		if f.Match(p.Owner) {
			out[n] = p
			n++
		}
	}
	return out[:n]
}

// FlushPoliciesOf deletes the policies of the owners f selects and returns them.
func (s *Store) FlushPoliciesOf(f OwnerFilter) []PolicyEntry {
	s.mu.Lock()
	var out []PolicyEntry
	for _, r := range s.pols.all {
		if f.Match(r.e.Owner) {
			s.dropPolicyLocked(r)
			out = append(out, r.e.view())
		}
	}
	s.mu.Unlock()
	sortPolicies(out)
	if len(out) > 0 {
		s.changed()
	}
	return out
}

// GetPolicyOf returns the policy ref names if its owner is one f selects; another owner's is
// ErrNotFound, as if it did not exist.
func (s *Store) GetPolicyOf(ref PolicyRef, f OwnerFilter) (PolicyEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.lookupPolicyLocked(ref)
	if err == nil && !f.Match(r.e.Owner) {
		err = fmt.Errorf("%s of owner %s: %w", ref, r.e.Owner, ErrNotFound)
	}
	if err != nil {
		return PolicyEntry{}, fmt.Errorf("get policy: %w", err)
	}
	return r.e.view(), nil
}

// DeletePolicyOf deletes the policy ref names if its owner is one f selects (see GetPolicyOf).
func (s *Store) DeletePolicyOf(ref PolicyRef, f OwnerFilter) (PolicyEntry, error) {
	s.mu.Lock()
	r, err := s.lookupPolicyLocked(ref)
	if err == nil && !f.Match(r.e.Owner) {
		err = fmt.Errorf("%s of owner %s: %w", ref, r.e.Owner, ErrNotFound)
	}
	if err != nil {
		s.mu.Unlock()
		return PolicyEntry{}, fmt.Errorf("delete policy: %w", err)
	}
	s.dropPolicyLocked(r)
	e := r.e.view()
	s.mu.Unlock()
	s.changed()
	return e, nil
}
