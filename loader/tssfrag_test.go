package loader

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// fragBuckets returns the rules of l's fragment buckets.
func fragBuckets(l *tssList) [][]uint16 {
	var out [][]uint16
	for k, rs := range l.buckets {
		if k.Frag == 0 {
			continue
		}
		var ids []uint16
		for _, r := range rs {
			ids = append(ids, r.PolicyId)
		}
		out = append(out, ids)
	}
	return out
}

// TestFragmentBucketHoldsGroupFirsts: thousands of port policies between two subnets share one
// fragment bucket; it holds only the first of them in SPD order (no non-first fragment can reach the
// others), and when that one goes the next takes its place.
func TestFragmentBucketHoldsGroupFirsts(t *testing.T) {
	const n = 2000
	var l tssList
	l.init(ipsec.DirOut, 0, filterBitsFor(n))
	var pols []ipsec.Policy
	for i := range n {
		sel := ipsec.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24"),
			Proto: ipsec.ProtoUDP, DstPorts: ipsec.Ports(uint16(1000+i), uint16(1000+i))}
		// Priorities run backwards, so the SPD's first is the last inserted.
		pols = append(pols, ipsec.Policy{ID: uint32(i + 1), Dir: ipsec.DirOut, Priority: uint32(10 + n - i), Selector: sel,
			Action: ipsec.ActionBypass, SA: ipsec.NoSA})
	}
	for i := range pols {
		l.apply(&listOps{insert: pols[i : i+1]})
	}
	want := func(what string, id uint16) {
		t.Helper()
		fb := fragBuckets(&l)
		if len(fb) != 1 || len(fb[0]) != 1 || fb[0][0] != id {
			t.Fatalf("%s: fragment buckets %v, want one holding policy %d", what, fb, id)
		}
	}
	want("after the inserts", n)
	l.apply(&listOps{remove: pols[n-1 : n]})
	want("after the first left", n-1)
	l.apply(&listOps{remove: pols[:1]}) // the last in SPD order: nothing changes
	want("after the last left", n-1)
	other := pols[0]
	other.ID, other.Priority = 5000, 1
	other.Selector.Src = netip.MustParsePrefix("198.18.1.0/24")
	l.apply(&listOps{insert: []ipsec.Policy{other}})
	want("after a new first", 5000)
	// Everything gone: no fragment bucket, no group left behind.
	var all []ipsec.Policy
	for _, p := range l.pols {
		all = append(all, p)
	}
	l.apply(&listOps{remove: all})
	if fb := fragBuckets(&l); len(fb) != 0 || len(l.fragSame) != 0 {
		t.Fatalf("empty list: fragment buckets %v, %d groups", fb, len(l.fragSame))
	}
}
