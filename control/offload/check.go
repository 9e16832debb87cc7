package offload

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Report is the result of a consistency check between the SAD/SPD and the card.
type Report struct {
	OK           bool     `json:"ok"`
	Gen          uint64   `json:"gen"` // the store generation checked
	SAs          int      `json:"sas"` // in the SAD
	Policies     int      `json:"policies"`
	CardSAs      int      `json:"card_sas"` // (SA, interface) entries in the card
	CardPolicies int      `json:"card_policies"`
	Problems     []string `json:"problems,omitempty"`
}

// Check runs a pass and then compares the card with the SAD and SPD of that pass: every SA the card acked
// is in its table with the right SPI and destination, no other SA is; every policy is on every interface
// it may use, with exactly the SA the SPD resolves to (or NoSA); and no policy points at an SA the card
// lacks. It runs in the engine's goroutine, so concurrent API calls cannot make it see a half-applied
// change.
//
// The SA a policy should point at is derived here independently of the pass (see refResolver): its
// own indexes and template match, and the card's read-back instead of the engine's bookkeeping of
// acks, so a bug in the engine's resolution shows up as a difference rather than being repeated.
func (e *Engine) Check(ctx context.Context) (Report, error) {
	var rep Report
	var err error
	if derr := e.do(ctx, func() {
		v := e.pass()
		rep, err = e.check(v)
	}); derr != nil {
		return Report{}, derr
	}
	return rep, err
}

func (e *Engine) check(v *view) (Report, error) {
	card, err := e.drv.Dump()
	if err != nil {
		return Report{}, fmt.Errorf("check card: %w", err)
	}
	rep := Report{Gen: v.snap.Gen, SAs: len(v.snap.SAs), Policies: len(v.snap.Policies)}
	bad := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }

	wantSA := map[string]map[uint32]CardSA{}
	for i := range v.snap.SAs {
		sa := &v.snap.SAs[i]
		for _, ifc := range e.ifaces {
			st := e.sa[saKey{sa.Index, ifc}]
			switch {
			case st == nil || st.serial != sa.Serial || st.status == StatusPending:
				bad("sa %s (index %d) on %s: still pending after a pass", sa.ID(), sa.Index, ifc)
			case !mayOffloadSA(sa, ifc, e.wire):
				if st.installed {
					bad("sa %s (index %d) on %s: offloaded but the interface is not in its offload list", sa.ID(), sa.Index, ifc)
				}
			case st.installed && st.status == StatusOffloaded:
				if wantSA[ifc] == nil {
					wantSA[ifc] = map[uint32]CardSA{}
				}
				wantSA[ifc][sa.Index] = CardSA{Index: sa.Index, SPI: sa.SPI, Dst: sa.Dst}
			case st.installed:
				bad("sa %s (index %d) on %s: installed but marked %s", sa.ID(), sa.Index, ifc, st.status)
			}
		}
	}
	for _, ifc := range e.ifaces {
		have := card.SAs[ifc]
		rep.CardSAs += len(have)
		for idx, w := range wantSA[ifc] {
			h, ok := have[idx]
			switch {
			case !ok:
				bad("sa index %d (spi 0x%08x) on %s: in the SAD and acked, missing from the card", idx, w.SPI, ifc)
			case h.SPI != w.SPI || h.Dst != w.Dst:
				bad("sa index %d on %s: card has spi 0x%08x dst %s, SAD has spi 0x%08x dst %s", idx, ifc, h.SPI, h.Dst, w.SPI, w.Dst)
			}
		}
		for idx, h := range have {
			if _, ok := wantSA[ifc][idx]; !ok {
				bad("sa index %d (spi 0x%08x dst %s) on %s: in the card, not an offloaded SA of the SAD", idx, h.SPI, h.Dst, ifc)
			}
		}
	}

	ref := newRefResolver(v.snap.SAs, card, e.wire)
	for _, ifc := range e.ifaces {
		have := card.Policies[ifc]
		rep.CardPolicies += len(have)
		want := map[uint32]ipsec.Policy{}
		for i := range v.snap.Policies {
			p := &v.snap.Policies[i]
			if !p.OnCard() || !mayOffloadPolicy(p, ifc, e.protected, e.wire) {
				continue // fwd and shadowed policies are never in the card
			}
			st := e.pol[polKey{p.ID, ifc}]
			refused := st != nil && !st.installed && st.status == StatusRefused
			if refused {
				continue // nacked: reported by the policy's state, not here
			}
			want[p.ID] = cardPolicy(p, ref.resolve(p, ifc))
		}
		for id, w := range want {
			h, ok := have[id]
			switch {
			case !ok:
				bad("policy %d on %s: in the SPD, missing from the card", id, ifc)
			case h != w:
				bad("policy %d on %s: card has %s, SPD wants %s", id, ifc, h, w)
			}
		}
		for id, h := range have {
			if _, ok := want[id]; !ok {
				bad("policy %d on %s: in the card (%s), not in the SPD", id, ifc, h)
			}
			if h.SA != ipsec.NoSA {
				if _, ok := card.SAs[ifc][h.SA]; !ok {
					bad("policy %d on %s: points at sa index %d, which the card does not hold", id, ifc, h.SA)
				}
			}
		}
	}
	if e.wire != "" {
		// One table serves both interfaces: what the bookkeeping says each holds must agree.
		p, w := e.protected, e.wire
		for idx := range card.SAs[w] {
			if _, ok := card.SAs[p][idx]; !ok {
				bad("sa index %d: held for %s but not for %s, though the card's table is shared", idx, w, p)
			}
		}
		for idx := range card.SAs[p] {
			if _, ok := card.SAs[w][idx]; !ok {
				bad("sa index %d: held for %s but not for %s, though the card's table is shared", idx, p, w)
			}
		}
		for id, hp := range card.Policies[p] {
			if hw, ok := card.Policies[w][id]; ok && hw != hp {
				bad("policy %d: %s has %s, %s has %s, though the card's SPD is shared", id, p, hp, w, hw)
			}
		}
	}
	slices.SortFunc(rep.Problems, cmp.Compare)
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// mayOffloadSA is the rule of the offload lists for SAs (SharedTables): on shared tables the wire
// interface decides for all.
func mayOffloadSA(sa *sadb.SAEntry, iface, wire string) bool {
	if wire != "" {
		iface = wire
	}
	return len(sa.Offload) == 0 || slices.Contains(sa.Offload, iface)
}

// mayOffloadPolicy is the rule for policies: on shared tables the interface the card classifies the
// policy's packets on decides (outbound: protected, inbound: wire).
func mayOffloadPolicy(p *sadb.PolicyEntry, iface, protected, wire string) bool {
	switch {
	case wire == "":
	case p.Dir == ipsec.DirIn:
		iface = wire
	default:
		iface = protected
	}
	return len(p.Offload) == 0 || slices.Contains(p.Offload, iface)
}

// refResolver is the check's own answer to "which SA does this PROTECT policy use on this interface",
// written from the rules (RFC 4301 §4.4.1 templates as ip xfrm reads them, and the make-before-break
// rule: newest mature, else newest dying) rather than sharing the engine's code. It trusts the card's
// read-back for "acked": an SA counts on an interface if the card holds its (SPI, dst) at its index there.
type refResolver struct {
	byName  map[string][]*sadb.SAEntry
	byReqid map[uint32][]*sadb.SAEntry
	card    CardState
	wire    string
}

func newRefResolver(sas []sadb.SAEntry, card CardState, wire string) *refResolver {
	r := &refResolver{byName: map[string][]*sadb.SAEntry{}, byReqid: map[uint32][]*sadb.SAEntry{}, card: card, wire: wire}
	for i := range sas {
		sa := &sas[i]
		r.byName[sa.Name] = append(r.byName[sa.Name], sa)
		r.byReqid[sa.Reqid] = append(r.byReqid[sa.Reqid], sa)
	}
	return r
}

// serves: the template names sa (by name, by reqid, or both), its narrowing fields agree, the SA is not
// dead and not bound to the other direction.
func serves(p *sadb.PolicyEntry, sa *sadb.SAEntry) bool {
	t := p.Tmpl
	switch {
	case t == nil, t.SA == "" && t.Reqid == 0:
		return false
	case t.SA != "" && sa.Name != t.SA, t.Reqid != 0 && sa.Reqid != t.Reqid:
		return false
	case sa.State == sadb.StateDead, sa.Dir != nil && *sa.Dir != p.Dir:
		return false
	case t.Src.IsValid() && t.Src != sa.Src, t.Dst.IsValid() && t.Dst != sa.Dst:
		return false
	case t.Mode != 0 && t.Mode != sa.Mode, t.SPI != 0 && t.SPI != sa.SPI:
		return false
	}
	return true
}

func (r *refResolver) resolve(p *sadb.PolicyEntry, iface string) uint32 {
	if p.Action != ipsec.ActionProtect || p.Tmpl == nil {
		return ipsec.NoSA
	}
	pool := r.byReqid[p.Tmpl.Reqid]
	if p.Tmpl.SA != "" {
		pool = r.byName[p.Tmpl.SA]
	}
	var best *sadb.SAEntry
	for _, sa := range pool {
		if !serves(p, sa) || !mayOffloadSA(sa, iface, r.wire) {
			continue
		}
		if h, ok := r.card.SAs[iface][sa.Index]; !ok || h.SPI != sa.SPI || h.Dst != sa.Dst {
			continue
		}
		mature, bestMature := sa.State == sadb.StateMature, best != nil && best.State == sadb.StateMature
		if best == nil || (mature && !bestMature) || (mature == bestMature && sa.Serial > best.Serial) {
			best = sa
		}
	}
	if best == nil {
		return ipsec.NoSA
	}
	return best.Index
}
