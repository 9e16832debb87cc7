package ipsec

import (
	"net/netip"
	"slices"
)

// The post-decryption check (RFC 4301 §5.2): a packet that arrived through an inbound SA is
// accepted only if the first inbound policy it matches, in SPD order, is a PROTECT policy that
// SA serves. A higher-priority DISCARD or BYPASS that matches the inner packet wins over the
// PROTECT policy behind it, as it would for the same packet in clear.
//
// The workers cannot scan the whole inbound SPD for every packet, and need not: a policy can
// change the outcome for this SA only if some packet matches both it and a PROTECT policy the SA
// serves that comes after it. So each inbound SA carries a short CheckList — the PROTECT policies
// it serves (accept) and the policies before one of them whose selectors may overlap its selector
// (reject), in SPD order — and the first entry that matches decides. CheckIndex builds the lists;
// TestCheckListEqualsFirstMatch compares them with the reference classifier on random SPDs.
//
// Why the short list gives the same answer as the whole SPD, for a packet t:
//   - If the SPD's first match for t is a PROTECT policy P the SA serves, P is in the list, and
//     every list entry before P is an SPD entry before P, which t does not match: the list's
//     first match is P, accept.
//   - If the list's first match for t is an accept entry P, any SPD policy Q before P that t
//     matched would overlap P (t is in both), so Q would be in the list before P: there is none,
//     P is the SPD's first match, and the SPD accepts too.
//
// Non-first fragments follow the SPD's rule (see the package documentation): the first entry
// whose addresses and protocol match decides, and one that constrains ports rejects. The same
// argument holds: an accept entry that decides a fragment constrains no ports, so every Q before
// it with matching addresses and protocol overlaps it.

// CheckEntry is one entry of an inbound SA's CheckList.
type CheckEntry struct {
	Selector Selector
	// Accept: a PROTECT policy this SA serves. Other entries reject what they match first.
	Accept bool
}

// CheckList is an inbound SA's post-decryption check, in SPD order. An empty list rejects every
// packet: the SA serves no inbound policy.
type CheckList []CheckEntry

// Accepts reports whether the decrypted packet t may leave through the SA: whether the first
// entry it matches accepts. It does not allocate (the workers call it per packet).
func (l CheckList) Accepts(t *Tuple) bool {
	for i := range l {
		s := &l[i].Selector
		if !s.matchesAddrProto(t) {
			continue
		}
		if t.NonFirstFragment {
			return l[i].Accept && !s.ConstrainsPorts()
		}
		if s.SrcPorts.Contains(t.SrcPort) && s.DstPorts.Contains(t.DstPort) {
			return l[i].Accept
		}
	}
	return false
}

// ServesAny reports whether the list accepts anything: whether the SA serves an inbound PROTECT
// policy.
func (l CheckList) ServesAny() bool {
	for i := range l {
		if l[i].Accept {
			return true
		}
	}
	return false
}

// Overlap reports whether some packet may match both a and b: the same family, overlapping
// prefixes, protocols equal or either any, intersecting port ranges. It errs towards true
// (ICMP types and TCP ports in one range are not told apart), which only lengthens a CheckList.
func Overlap(a, b Selector) bool {
	return a.Is4() == b.Is4() && a.Src.Overlaps(b.Src) && a.Dst.Overlaps(b.Dst) &&
		(a.Proto == ProtoAny || b.Proto == ProtoAny || a.Proto == b.Proto) &&
		rangesMeet(a.SrcPorts, b.SrcPorts) && rangesMeet(a.DstPorts, b.DstPorts)
}

func rangesMeet(a, b PortRange) bool { return a.Lo() <= b.Hi() && b.Lo() <= a.Hi() }

// CheckIndex builds CheckLists over one inbound SPD. Finding the policies that may overlap a
// selector costs the number of policies whose source or destination prefix contains or lies
// within the selector's, or — for a selector with a single port on a side — whose port range on
// that side holds it (whichever is fewest), not the size of the SPD, so a pass over thousands of
// inbound SAs stays cheap, also when they all share one pair of prefixes and differ by port.
type CheckIndex struct {
	pols  []Policy       // the inbound policies, in SPD order
	pos   map[uint32]int // policy id → position in pols
	src   [2]prefixIndex // by family (0: IPv4, 1: IPv6)
	dst   [2]prefixIndex
	sport portIndex
	dport portIndex
}

// NewCheckIndex indexes the inbound policies among spd (others are ignored; spd is not kept).
func NewCheckIndex(spd []Policy) *CheckIndex {
	x := &CheckIndex{pos: map[uint32]int{}}
	for i := range spd {
		if spd[i].Dir == DirIn {
			x.pols = append(x.pols, spd[i])
		}
	}
	slices.SortFunc(x.pols, func(a, b Policy) int { return Compare(&a, &b) })
	for i := range x.pols {
		p := &x.pols[i]
		x.pos[p.ID] = i
		f := family(p.Selector)
		x.src[f].add(p.Selector.Src, i)
		x.dst[f].add(p.Selector.Dst, i)
		x.sport.add(p.Selector.SrcPorts, i)
		x.dport.add(p.Selector.DstPorts, i)
	}
	for f := range 2 {
		x.src[f].finish()
		x.dst[f].finish()
	}
	return x
}

func family(s Selector) int {
	if s.Is4() {
		return 0
	}
	return 1
}

// List returns the CheckList of an SA that serves the inbound PROTECT policies with the given
// ids (ids not in the index are ignored). No ids: an empty list, which rejects everything.
func (x *CheckIndex) List(served []uint32) CheckList {
	type entry struct {
		pos    int
		accept bool
	}
	var es []entry
	for _, id := range served {
		if i, ok := x.pos[id]; ok && x.pols[i].Action == ActionProtect {
			es = append(es, entry{i, true})
		}
	}
	n := len(es)
	if n == 0 {
		return nil
	}
	// The rejecting entries: the policies before an accepting one that may overlap it.
	for _, a := range es[:n] {
		x.overlapping(x.pols[a.pos].Selector, a.pos, func(i int) { es = append(es, entry{i, false}) })
	}
	slices.SortFunc(es, func(a, b entry) int {
		if a.pos != b.pos {
			return a.pos - b.pos
		}
		if a.accept != b.accept { // accepting first, so that Compact keeps it
			if a.accept {
				return -1
			}
			return 1
		}
		return 0
	})
	es = slices.CompactFunc(es, func(a, b entry) bool { return a.pos == b.pos })
	out := make(CheckList, len(es))
	for k, e := range es {
		out[k] = CheckEntry{Selector: x.pols[e.pos].Selector, Accept: e.accept}
	}
	return out
}

// overlapping calls f with the position of every policy before position before whose selector
// may overlap s.
func (x *CheckIndex) overlapping(s Selector, before int, f func(int)) {
	visit := func(i int) {
		if i < before && Overlap(x.pols[i].Selector, s) {
			f(i)
		}
	}
	fam := family(s)
	idx, p := &x.dst[fam], s.Dst
	best := idx.count(p)
	if n := x.src[fam].count(s.Src); n < best {
		idx, p, best = &x.src[fam], s.Src, n
	}
	ports, r := (*portIndex)(nil), s.DstPorts
	if n, ok := x.dport.count(r); ok && n < best {
		ports, best = &x.dport, n
	}
	if n, ok := x.sport.count(s.SrcPorts); ok && n < best {
		ports, r = &x.sport, s.SrcPorts
	}
	if ports != nil {
		ports.each(r, visit)
		return
	}
	idx.each(p, visit)
}

// portIndex finds, for a single port on one side of a selector, the positions of the policies
// whose port range on that side holds it: those with that single port, and every policy with a
// wider range (any port, most often), which holds many ports.
type portIndex struct {
	single map[uint16][]int
	wide   []int
}

func (ix *portIndex) add(r PortRange, pos int) {
	if r.Lo() != r.Hi() {
		ix.wide = append(ix.wide, pos)
		return
	}
	if ix.single == nil {
		ix.single = map[uint16][]int{}
	}
	ix.single[r.Lo()] = append(ix.single[r.Lo()], pos)
}

// count is how many positions each(r) looks at; ok is false when r is not a single port (the
// index does not help then).
func (ix *portIndex) count(r PortRange) (n int, ok bool) {
	if r.Lo() != r.Hi() {
		return 0, false
	}
	return len(ix.single[r.Lo()]) + len(ix.wide), true
}

// each calls f for every position whose range holds the single port r, in no particular order.
func (ix *portIndex) each(r PortRange, f func(int)) {
	for _, i := range ix.single[r.Lo()] {
		f(i)
	}
	for _, i := range ix.wide {
		f(i)
	}
}

// prefixIndex finds, for a prefix p, the positions of the policies whose prefix (on one side of
// the selector) overlaps p: those that contain it, by an exact lookup per prefix length in use,
// and those inside it, by a range of the list sorted by address.
type prefixIndex struct {
	exact  map[netip.Prefix][]int
	lens   []int // the prefix lengths in use, ascending
	sorted []prefixPos
}

type prefixPos struct {
	p   netip.Prefix
	pos int
}

func (ix *prefixIndex) add(p netip.Prefix, pos int) {
	if ix.exact == nil {
		ix.exact = map[netip.Prefix][]int{}
	}
	ix.exact[p] = append(ix.exact[p], pos)
	ix.sorted = append(ix.sorted, prefixPos{p, pos})
}

func (ix *prefixIndex) finish() {
	seen := map[int]bool{}
	for p := range ix.exact {
		if !seen[p.Bits()] {
			seen[p.Bits()] = true
			ix.lens = append(ix.lens, p.Bits())
		}
	}
	slices.Sort(ix.lens)
	slices.SortFunc(ix.sorted, func(a, b prefixPos) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return a.p.Bits() - b.p.Bits()
	})
}

// inside returns the range of sorted whose prefixes start inside p and are longer than p.
func (ix *prefixIndex) inside(p netip.Prefix) (lo, hi int) {
	lo, _ = slices.BinarySearchFunc(ix.sorted, p.Addr(), func(e prefixPos, a netip.Addr) int {
		return e.p.Addr().Compare(a)
	})
	last := lastAddr(p)
	hi, _ = slices.BinarySearchFunc(ix.sorted[lo:], last, func(e prefixPos, a netip.Addr) int {
		if e.p.Addr().Compare(a) <= 0 {
			return -1
		}
		return 1
	})
	return lo, lo + hi
}

// lastAddr is the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// count is how many positions each(p) looks at.
func (ix *prefixIndex) count(p netip.Prefix) int {
	n := 0
	for _, l := range ix.lens {
		if l > p.Bits() {
			break
		}
		n += len(ix.exact[netip.PrefixFrom(p.Addr(), l).Masked()])
	}
	lo, hi := ix.inside(p)
	return n + hi - lo
}

// each calls f for every position whose prefix contains p or lies inside it (some twice).
func (ix *prefixIndex) each(p netip.Prefix, f func(int)) {
	for _, l := range ix.lens {
		if l > p.Bits() {
			break
		}
		for _, i := range ix.exact[netip.PrefixFrom(p.Addr(), l).Masked()] {
			f(i)
		}
	}
	lo, hi := ix.inside(p)
	for _, e := range ix.sorted[lo:hi] {
		if e.p.Bits() > p.Bits() {
			f(e.pos)
		}
	}
}
