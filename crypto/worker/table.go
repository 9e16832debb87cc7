package worker

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/pmtu"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Entry is what the workers know of one offloaded SA: the engine's SA (the
// keys), its direction, and for an inbound SA its post-decryption check list.
// Entries are immutable once installed: the control plane replaces them
// (Replace) to change anything.
type Entry struct {
	SA  *esp.SA
	Dir ipsec.Dir // DirOut: Encap; DirIn: Decap and the post-decryption policy check
	// Check, inbound only: after decryption the first entry the inner packet
	// matches must accept it, or it is dropped and counted (RFC 4301 §5.2;
	// ipsec.CheckList). An empty list rejects everything: the SA serves no
	// inbound policy (any more).
	Check ipsec.CheckList
	// OuterDst, outbound only and optional: the SA's outer destination. When
	// the card says the next hop is unresolved, the worker asks the resolver
	// for it (which also starts resolution) instead of dropping at once.
	OuterDst netip.Addr
	// Transport marks a transport-mode SA. In tunnel mode the worker is a
	// router hop between the protected network and the wire and decrements
	// the inner TTL / hop limit (dropping packets that expire, as Linux's
	// forwarding does); in transport mode the packet is the gateway's own
	// and keeps its TTL.
	Transport bool

	innerMTU int // largest inner IP packet whose encapsulation fits the wire MTU
}

// Errors of SATable.
var (
	ErrIndex   = errors.New("sa index out of range")
	ErrEntry   = errors.New("invalid sa entry")
	ErrPresent = errors.New("sa index in use")
)

// SATable is the workers' SA array, indexed by the SA index that the card's
// metadata names. Workers read it with one atomic load per packet; the
// control plane installs and removes entries from any goroutine.
//
// Removal does not wipe: a worker may be inside Encap or Decap with the SA
// it loaded just before the removal. The control plane first makes the card
// stop naming the SA (deletes it from the card's tables), then removes it
// here, and only then calls (*esp.SA).Wipe: a worker that still loads the
// index finds nothing, and one that loaded it before gets ErrWiped at worst.
type SATable struct {
	entries []atomic.Pointer[Entry]
	wireMTU int
}

// NewSATable makes a table for capacity SA indexes. wireMTU is the wire
// interface's MTU (the largest outer IP packet), from which each outbound
// SA's inner MTU follows.
func NewSATable(capacity int, wireMTU int) (*SATable, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("create sa table: capacity %d", capacity)
	}
	if wireMTU < 1280 || wireMTU > 65535 {
		return nil, fmt.Errorf("create sa table: wire mtu %d outside 1280-65535", wireMTU)
	}
	return &SATable{entries: make([]atomic.Pointer[Entry], capacity), wireMTU: wireMTU}, nil
}

// Capacity is the number of SA indexes.
func (t *SATable) Capacity() int { return len(t.entries) }

// Install publishes e at index. It fails if the index is taken: Replace
// changes an installed entry.
func (t *SATable) Install(index uint32, e *Entry) error {
	c, err := t.entry(index, e)
	if err != nil {
		return fmt.Errorf("install sa %d: %w", index, err)
	}
	if !t.entries[index].CompareAndSwap(nil, c) {
		return fmt.Errorf("install sa %d: %w", index, ErrPresent)
	}
	return nil
}

// Replace publishes e at index in place of the entry there, in one atomic
// store, and returns the old entry (nil if there was none). A worker sees
// either entry, never none: an SA updated in place (esp.Continue, a new check
// list) loses no packet. It does not wipe the old entry's SA: the caller does,
// once no worker can still be inside a call with it (see SATable).
func (t *SATable) Replace(index uint32, e *Entry) (*Entry, error) {
	c, err := t.entry(index, e)
	if err != nil {
		return nil, fmt.Errorf("replace sa %d: %w", index, err)
	}
	return t.entries[index].Swap(c), nil
}

// entry validates e and returns the copy the table publishes.
func (t *SATable) entry(index uint32, e *Entry) (*Entry, error) {
	if int64(index) >= int64(len(t.entries)) {
		return nil, ErrIndex
	}
	if e == nil || e.SA == nil || !e.Dir.OnCard() {
		return nil, fmt.Errorf("%w: an SA and a direction are required", ErrEntry)
	}
	if e.Dir != ipsec.DirIn && len(e.Check) > 0 {
		return nil, fmt.Errorf("%w: only an inbound SA has a post-decryption check", ErrEntry)
	}
	for i := range e.Check {
		if err := e.Check[i].Selector.Validate(); err != nil {
			return nil, fmt.Errorf("check entry %d: %w", i, err)
		}
	}
	c := *e
	c.Check = append(ipsec.CheckList(nil), e.Check...)
	c.innerMTU = innerMTU(c.SA, t.wireMTU)
	return &c, nil
}

// Remove unpublishes the entry at index and returns it (nil if none). It
// does not wipe the SA: see SATable.
func (t *SATable) Remove(index uint32) *Entry {
	if int64(index) >= int64(len(t.entries)) {
		return nil
	}
	return t.entries[index].Swap(nil)
}

// Lookup returns the entry at index or nil.
func (t *SATable) Lookup(index uint32) *Entry {
	if int64(index) >= int64(len(t.entries)) {
		return nil
	}
	return t.entries[index].Load()
}

// InnerMTU returns the largest inner packet an installed SA can carry
// without exceeding the wire MTU (0 if none is installed at index).
func (t *SATable) InnerMTU(index uint32) int {
	if e := t.Lookup(index); e != nil {
		return e.innerMTU
	}
	return 0
}

// innerMTU is the largest n with n + Overhead(n) <= wireMTU.
func innerMTU(sa *esp.SA, wireMTU int) int { return pmtu.MaxInner(wireMTU, sa.Overhead) }
