package loader

import (
	"slices"

	"github.com/xdpsec/xdpsec/bpf"
)

// A tuple that hashes ports also files each of its policies under a fragment key (ports zero, Frag set):
// a non-first fragment carries no ports, so it looks up that bucket, and the first rule there whose
// protocol and addresses match decides (bpf/xdpsec.c rule_matches: an ambiguous fragment when the rule
// has port selectors). Every policy of the tuple with the same masked addresses lands in that one
// bucket: thousands of port policies between two subnets make a bucket of thousands of rules, rewritten
// whole on every change (the card's SPD updates grew quadratic with such SPDs), of which only the first
// of each group of identical (protocol, addresses, has-ports) can ever decide. So the bucket holds just
// those firsts; fragSame keeps each group whole, in SPD order, to promote the next when the first goes.

// fragKey is a group of a fragment bucket's rules that no non-first fragment can tell apart.
type fragKey struct {
	bucket                     bucketKey
	proto                      uint8
	ports                      bool
	src, srcMask, dst, dstMask [4]uint32
}

func fragKeyOf(k bucketKey, r *bpf.CardXdpsecRule) fragKey {
	return fragKey{bucket: k, proto: r.Proto, ports: r.Flags&uint8(bpf.CardXdpsecRuleFlagsXDPSEC_RULE_F_PORTS) != 0,
		src: r.Src, srcMask: r.SrcMask, dst: r.Dst, dstMask: r.DstMask}
}

// placeFrag inserts r into (or removes it from) fragment bucket k through its group: the bucket changes
// only when the group's first rule does.
func (l *tssList) placeFrag(k bucketKey, r bpf.CardXdpsecRule, insert bool) {
	fk := fragKeyOf(k, &r)
	same := l.fragSame[fk]
	i, found := slices.BinarySearchFunc(same, ruleOrder(&r), byRuleOrder)
	switch {
	case insert && !found:
		same = slices.Insert(same, i, r)
	case !insert && found:
		same = slices.Delete(same, i, i+1)
	default:
		return
	}
	if len(same) == 0 {
		delete(l.fragSame, fk)
	} else {
		l.fragSame[fk] = same
	}
	if i != 0 {
		return // behind the group's first: no fragment can reach it
	}
	if insert {
		if len(same) > 1 {
			l.bucketEdit(k, same[1], false) // the first until now
		}
		l.bucketEdit(k, r, true)
		return
	}
	l.bucketEdit(k, r, false)
	if len(same) > 0 {
		l.bucketEdit(k, same[0], true) // the next takes its place
	}
}
