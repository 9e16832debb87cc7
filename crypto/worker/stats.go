//go:build linux

package worker

import (
	"sync/atomic"

	"github.com/xdpsec/xdpsec/bpf"
)

// NumErrorSlots is the length of SAStats.Errors (XDPSEC_WERR_MAX).
const NumErrorSlots = int(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_MAX)

// The per-SA error slots of the worker's own reasons (enum
// xdpsec_worker_error); the slots below XDPSEC_WERR_POLICY are esp.Reason
// values.
const (
	// ReasonPolicyMismatch: the inner packet failed the post-decryption
	// policy check (RFC 4301 §5.2).
	ReasonPolicyMismatch = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_POLICY)
	// ReasonNoNeigh: no next hop (outbound: the wire neighbour; inbound:
	// the inner destination's route or neighbour); resolution was asked.
	ReasonNoNeigh = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_NO_NEIGH)
	// ReasonTXFull: no room on the TX ring, or no free frame for a fragment.
	ReasonTXFull = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_TX_FULL)
	// ReasonPMTU: the inner packet was too big for the tunnel and was not
	// fragmented: an ICMP error went back (or was suppressed).
	ReasonPMTU = uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_PMTU)
)

// SAStats is one SA's counters in a StatsTable, with the slots of the card's
// struct xdpsec_worker_stats (bpf/xdpsec.h). Every field is updated with
// atomic adds.
type SAStats struct {
	Packets atomic.Uint64 // packets sealed (outbound) or opened and policy-checked (inbound)
	Bytes   atomic.Uint64 // their plaintext IP length
	Errors  [NumErrorSlots]atomic.Uint64
}

// SACounters receives the workers' per-SA counters. loader.WorkerStats (the
// card's mmap'd worker_stats map, which the daemon uses, so that bpftool and
// the control plane read what the workers add) implements it, and so does
// StatsTable.
// Both methods are called per packet, from several workers at once: they
// must be atomic, non-blocking and allocation-free, and ignore an index
// beyond their capacity.
type SACounters interface {
	// Add counts packets completed for SA sa and their plaintext bytes.
	Add(sa uint32, packets, bytes uint64)
	// AddError counts n packets of SA sa refused for reason (an esp.Reason
	// value, or one of the worker's own Reason constants).
	AddError(sa uint32, reason uint8, n uint64)
}

// StatsTable is the per-SA counters array, indexed by SA index.
type StatsTable struct {
	s []SAStats
}

// NewStatsTable allocates a table in Go memory: the default when
// Config.SAStats is nil, and the tests'.
func NewStatsTable(capacity int) *StatsTable {
	return &StatsTable{s: make([]SAStats, capacity)}
}

// Len is the number of SA indexes the table covers.
func (t *StatsTable) Len() int { return len(t.s) }

// SA returns the counters of index, or nil when out of range.
func (t *StatsTable) SA(index uint32) *SAStats {
	if int64(index) >= int64(len(t.s)) {
		return nil
	}
	return &t.s[index]
}

// Add implements SACounters.
func (t *StatsTable) Add(sa uint32, packets, bytes uint64) {
	if s := t.SA(sa); s != nil {
		s.Packets.Add(packets)
		s.Bytes.Add(bytes)
	}
}

// AddError implements SACounters.
func (t *StatsTable) AddError(sa uint32, reason uint8, n uint64) {
	if s := t.SA(sa); s != nil && int(reason) < NumErrorSlots {
		s.Errors[reason].Add(n)
	}
}

// Stats are one worker's ring and drop counters, readable from any
// goroutine while it runs. Per-SA counters live in the StatsTable.
type Stats struct {
	RXPackets atomic.Uint64 // descriptors taken off both RX rings
	TXPackets atomic.Uint64 // descriptors put on both TX rings
	Sealed    atomic.Uint64 // outbound packets encrypted
	Opened    atomic.Uint64 // inbound packets decrypted and accepted

	BadMeta      atomic.Uint64 // metadata missing, wrong magic/version or offsets
	WrongDir     atomic.Uint64 // metadata direction differs from the socket's side or the SA's
	NoSA         atomic.Uint64 // no SA installed at the metadata's index
	CryptoErrors atomic.Uint64 // Encap or Decap refused (per reason in the SA's counters)
	// SeqUnreserved counts, among CryptoErrors, outbound packets dropped because their SA had
	// used its whole durable reservation (esp.ErrSeqUnreserved): the state directory is not
	// keeping up, or cannot be written.
	SeqUnreserved  atomic.Uint64
	PolicyMismatch atomic.Uint64 // inner packet failed the post-decryption policy check
	TTLExpired     atomic.Uint64 // inner TTL / hop limit would reach 0 when forwarded
	NoNeighOut     atomic.Uint64 // outbound: the wire next hop is unresolved
	NoNextHopIn    atomic.Uint64 // inbound: no route or unresolved neighbour for the inner destination
	WrongEgress    atomic.Uint64 // the next hop is on an interface this worker has no socket on
	TooBig         atomic.Uint64 // inner packets over the tunnel's MTU
	PTBSent        atomic.Uint64 // ICMP frag-needed / packet-too-big sent back
	Fragments      atomic.Uint64 // fragments made from IPv4 packets without DF
	NoFrame        atomic.Uint64 // a free frame was needed (fragmenting) and none was left
	TXRingFull     atomic.Uint64 // packets dropped because a TX ring was full
	FrameErrors    atomic.Uint64 // a frame came back twice or from outside the pool (a bug)

	// ChecksumsCompleted counts outbound TCP/UDP packets whose
	// CHECKSUM_PARTIAL checksum the worker completed (Config.NoChecksumCompletion).
	ChecksumsCompleted atomic.Uint64

	// Multi-buffer packets (descriptor chains, chain.go and segment.go): Chains received,
	// TCP Segments made from them (each also counted in Sealed), and
	// ChainDrops (inbound, longer than 64 descriptors, UDP, or not over the
	// tunnel's MTU); GSOFrames counts TCP GSO packets that fit one frame
	// (longer than Config.ProtectedMTU), segmented.
	Chains     atomic.Uint64
	Segments   atomic.Uint64
	ChainDrops atomic.Uint64
	GSOFrames  atomic.Uint64

	// MSSClamped counts outbound SYNs whose MSS option was lowered
	// (Config.MSSClamp).
	MSSClamped atomic.Uint64

	Kicks     atomic.Uint64 // sendto calls to start TX
	Wakeups   atomic.Uint64 // recvfrom calls for a fill ring that asked for it
	Polls     atomic.Uint64 // times the worker slept in poll
	Completed atomic.Uint64 // TX frames the kernel returned
}
