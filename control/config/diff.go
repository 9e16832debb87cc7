package config

import (
	"reflect"
	"slices"
)

// Changes is what a reload changes: entries are matched by name.
type Changes struct {
	SAs      []Change[SA]
	Policies []Change[Policy]
	// Restart names the top-level settings that changed and that a running
	// daemon cannot apply in place (instance, state_dir, interfaces,
	// capacities, dataplane, daemon); a reload reports them and leaves them
	// alone.
	Restart []string
	// DefaultVerdict is true when default_verdict changed (applied in place).
	DefaultVerdict bool
}

// ChangeKind says what happened to an entry.
type ChangeKind string

// Kinds of changes.
const (
	Added   ChangeKind = "added"
	Removed ChangeKind = "removed"
	Changed ChangeKind = "changed"
)

// Change is one SA or policy that a reload adds, removes or changes. Old is
// nil for Added, New nil for Removed. Fields lists the changed fields (file
// spelling) so the control plane can tell an update in place from a
// replacement (Replaces).
type Change[T any] struct {
	Kind     ChangeKind
	Name     string
	Old, New *T
	Fields   []string
}

// Empty reports whether the reload changes nothing.
func (d *Changes) Empty() bool {
	return len(d.SAs) == 0 && len(d.Policies) == 0 && len(d.Restart) == 0 && !d.DefaultVerdict
}

// Diff computes what a reload from old to new changes. Both must be valid.
func Diff(old, new *Config) *Changes {
	d := &Changes{}
	if old.Instance != new.Instance {
		d.Restart = append(d.Restart, "instance")
	}
	if old.StateDir != new.StateDir {
		d.Restart = append(d.Restart, "state_dir")
	}
	for _, f := range []struct {
		name string
		a, b any
	}{{"interfaces", old.Interfaces, new.Interfaces}, {"capacities", old.Capacities, new.Capacities},
		{"dataplane", old.Dataplane, new.Dataplane}, {"daemon", old.Daemon, new.Daemon}} {
		if !reflect.DeepEqual(f.a, f.b) {
			d.Restart = append(d.Restart, f.name)
		}
	}
	d.DefaultVerdict = old.DefaultVerdict != new.DefaultVerdict
	d.SAs = diffByName(old.SAs, new.SAs, func(s *SA) string { return s.Name }, saFields)
	d.Policies = diffByName(old.Policies, new.Policies, func(p *Policy) string { return p.Name }, policyFields)
	return d
}

func diffByName[T any](old, new []T, name func(*T) string, fields func(a, b *T) []string) []Change[T] {
	var out []Change[T]
	byName := make(map[string]*T, len(old))
	for i := range old {
		byName[name(&old[i])] = &old[i]
	}
	seen := make(map[string]bool, len(new))
	for i := range new {
		n := &new[i]
		seen[name(n)] = true
		o, ok := byName[name(n)]
		if !ok {
			out = append(out, Change[T]{Kind: Added, Name: name(n), New: n})
			continue
		}
		if f := fields(o, n); len(f) > 0 {
			out = append(out, Change[T]{Kind: Changed, Name: name(n), Old: o, New: n, Fields: f})
		}
	}
	for i := range old {
		if o := &old[i]; !seen[name(o)] {
			out = append(out, Change[T]{Kind: Removed, Name: name(o), Old: o})
		}
	}
	return out
}

func keyEq(a, b Key) bool { return a.Equal(b) }

func saFields(a, b *SA) []string {
	var f []string
	add := func(changed bool, name string) {
		if changed {
			f = append(f, name)
		}
	}
	add(a.SPI != b.SPI, "spi")
	add(a.Src != b.Src, "src")
	add(a.Dst != b.Dst, "dst")
	add(a.Mode != b.Mode, "mode")
	add(a.Reqid != b.Reqid, "reqid")
	add((a.AEAD == nil) != (b.AEAD == nil) || a.AEAD != nil &&
		(a.AEAD.Alg != b.AEAD.Alg || a.AEAD.ICVBits != b.AEAD.ICVBits || !keyEq(a.AEAD.Key, b.AEAD.Key)), "aead")
	add((a.Enc == nil) != (b.Enc == nil) || a.Enc != nil &&
		(a.Enc.Alg != b.Enc.Alg || !keyEq(a.Enc.Key, b.Enc.Key)), "enc")
	add((a.Auth == nil) != (b.Auth == nil) || a.Auth != nil &&
		(a.Auth.Alg != b.Auth.Alg || a.Auth.TruncBits != b.Auth.TruncBits || !keyEq(a.Auth.Key, b.Auth.Key)), "auth")
	add(a.ESN != b.ESN, "esn")
	add(a.Window() != b.Window(), "replay_window")
	add((a.Encap == nil) != (b.Encap == nil) || a.Encap != nil && *a.Encap != *b.Encap, "encap")
	// seq is deliberately absent: it restores state when an SA is added and
	// must never move a running SA's counter (that would reuse nonces).
	add(a.Lifetime != b.Lifetime, "lifetime")
	add(!slices.Equal(a.Offload, b.Offload), "offload")
	add(a.TTL != b.TTL, "ttl")
	add(a.DF != b.DF, "df")
	add(a.TFCPad != b.TFCPad, "tfc_pad")
	return f
}

func policyFields(a, b *Policy) []string {
	var f []string
	add := func(changed bool, name string) {
		if changed {
			f = append(f, name)
		}
	}
	add(a.Dir != b.Dir, "dir")
	add(a.Src != b.Src, "src")
	add(a.Dst != b.Dst, "dst")
	add(a.Proto != b.Proto, "proto")
	add(a.Sport != b.Sport, "sport")
	add(a.Dport != b.Dport, "dport")
	add(!ptrEq(a.ICMPType, b.ICMPType), "icmp_type")
	add(!ptrEq(a.ICMPCode, b.ICMPCode), "icmp_code")
	add(a.Priority != b.Priority, "priority")
	add(a.Action != b.Action, "action")
	add(a.SA != b.SA, "sa")
	add(a.Reqid != b.Reqid, "reqid")
	add(!slices.Equal(a.Offload, b.Offload), "offload")
	return f
}

func ptrEq[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// Replaces reports whether a changed SA is another SA (deleted and added
// anew) rather than the same one updated in place, as a reload decides it
// (sadb.Compare): a new spi, dst or algorithm or key makes another SA; every
// other field — src, mode, reqid, esn, replay_window, encap, lifetime,
// offload, ttl, df, tfc_pad — changes the running SA in place, which keeps
// its sequence numbers, IV mask and replay window (if the running SA can
// take the change: a reload refuses one it cannot, naming the field). A
// replacement that keeps a key of the old SA is refused too: it would start
// that key's sequence numbers over.
func (c *Change[T]) Replaces() bool {
	for _, f := range c.Fields {
		switch f {
		case "spi", "dst", "aead", "enc", "auth":
			return true
		}
	}
	return false
}
