package offload

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Reason is why the card refused (nacked) an SA or a policy on an interface. The names are stable: they
// appear in the CLI, in events and in metrics.
type Reason string

const (
	ReasonTableFull   Reason = "table_full"          // the card's table has no room
	ReasonUnsupported Reason = "unsupported"         // an algorithm or mode the card cannot do
	ReasonNotInList   Reason = "not_in_offload_list" // the interface is not in the SA's/policy's offload list
	ReasonNoPolicy    Reason = "no_inbound_policy"   // an inbound SA no policy covers yet (re-offered when one does)
	ReasonSeqState    Reason = "seq_state"           // the durable sequence state could not reserve numbers for it (disk); retried
	ReasonRetired     Reason = "key_retired"         // its key expired hard or used up its numbers before: never again
	ReasonError       Reason = "error"               // the card failed for another reason (see the detail); retried
)

// retried tells whether a refusal for r may go away by itself, so the engine offers again after
// RetryDelay.
func retried(r Reason) bool { return r == ReasonError || r == ReasonSeqState }

// NackError is how a Driver refuses an SA or policy. Any other error is treated as ReasonError.
type NackError struct {
	Reason Reason
	Detail string
}

func (e *NackError) Error() string {
	if e.Detail == "" {
		return "nack: " + string(e.Reason)
	}
	return "nack: " + string(e.Reason) + ": " + e.Detail
}

// Nack returns a *NackError.
func Nack(r Reason, format string, args ...any) error {
	return &NackError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf extracts the nack reason of err (ReasonError for a plain error).
func ReasonOf(err error) (Reason, string) {
	var ne *NackError
	if errors.As(err, &ne) {
		return ne.Reason, ne.Detail
	}
	return ReasonError, err.Error()
}

// SAOffload is what the card is asked to hold for one SA on one interface.
type SAOffload struct {
	Iface string
	// Index is the SA's slot in the card's SA table (1..capacity).
	Index uint32
	// SA is the SAD's entry, keys included. The key bytes belong to the SAD: the driver copies what it keeps
	// (esp.New does) and must not retain SA's slices after the call.
	SA *sadb.SAEntry
	// InCheck is the SA's post-decryption check (RFC 4301 §5.2) when it serves inbound PROTECT
	// policies: the policies it serves and, before them, the inbound policies whose selectors may
	// overlap theirs, in SPD order (ipsec.CheckIndex); a decrypted packet is accepted iff the
	// first entry it matches accepts, which is the first match over the whole inbound SPD. It is
	// offered again whenever it changes (a policy added, removed, reprioritised or re-pointed, a
	// rekey). An SA that served inbound policies and serves none any more is offered with an
	// empty list: it keeps its place (and its replay window) but rejects everything it decrypts.
	InCheck ipsec.CheckList
	// MovedFrom, when not zero, is the identity under which the card holds this SA at Index: the SA
	// moved (sadb.Store.MigrateSA: new destination, source, encapsulation or reqid). The driver
	// changes the entry in place, keeping the SA's cryptographic state, and moves its inbound lookup
	// to the new identity without a moment in which neither finds it.
	MovedFrom sadb.SAID
}

// PolicyOffload is one policy as the card holds it on one interface.
type PolicyOffload struct {
	Iface  string
	Policy ipsec.Policy // Policy.SA is ipsec.NoSA when a PROTECT policy has no usable SA: the card drops and counts
}

// SACounters are an SA's totals since the driver installed it, summed over CPUs, interfaces and workers.
type SACounters struct {
	Packets, Bytes uint64
	FirstUse       time.Time // zero until the first packet
	// LastUse is when the SA last carried a packet the workers completed (zero if unknown or none).
	LastUse         time.Time
	ReplayErrors    uint64
	IntegrityErrors uint64
	OtherErrors     uint64
	// Seq is the highest sequence number used (outbound) or accepted (inbound).
	Seq uint64
	// SeqExhausted: the engine refused to send because the next sequence number would cycle (RFC 4303
	// §3.3.3): a hard expiry.
	SeqExhausted bool
	// SeqUnreserved counts packets dropped because the SA had used its whole durable reservation
	// (part of OtherErrors): the state directory could not keep up or be written.
	SeqUnreserved uint64
}

// CardSA is an SA as read back from the card, for the consistency check.
type CardSA struct {
	Index uint32
	SPI   uint32
	Dst   netip.Addr
}

// CardState is what the card holds, per interface.
type CardState struct {
	SAs      map[string]map[uint32]CardSA       // iface → index → SA
	Policies map[string]map[uint32]ipsec.Policy // iface → policy id → policy
}

// Driver is the card as the control plane sees it (FreeBSD's if_ipsec_accel driver methods). The offload
// engine calls it from one goroutine only, so an implementation need not lock against itself.
type Driver interface {
	// Interfaces names the interfaces of this instance that SAs and policies can be offloaded to.
	Interfaces() []string
	// InstallSA puts the SA into the card on sa.Iface, or updates it in place when that index already holds
	// the same SA (same SPI and destination, or the identity in MovedFrom): then its crypto state
	// (sequence numbers, replay window) must survive. A new SA at an index starts with zeroed counters.
	// Refusals are *NackError.
	InstallSA(sa *SAOffload) error
	// RemoveSA takes the SA at index out of the card on iface. When it leaves the last interface, the
	// driver stops the workers using it and wipes its key (esp.SA.Wipe) before returning.
	RemoveSA(index uint32, iface string) error
	// InstallPolicy adds or replaces (by id) a policy on p.Iface.
	InstallPolicy(p *PolicyOffload) error
	// RemovePolicy removes the policy with id from iface.
	RemovePolicy(id uint32, iface string) error
	// Counters returns the totals of every installed SA, by index.
	Counters() (map[uint32]SACounters, error)
	// GlobalCounters returns the card's and the workers' drop and error reasons (xfrm_stat-like names).
	GlobalCounters() (map[string]uint64, error)
	// Dump reads back what the card holds.
	Dump() (CardState, error)
}

// Acquire is one ACQUIRE record from the card: a packet matched a PROTECT policy that had no usable SA.
type Acquire struct {
	PolicyID uint32
	Iface    string
	Src, Dst netip.Addr
	Proto    ipsec.Proto
	// Sport and Dport are the packet's ports (ICMP: type and code), as the card's selector tuple has them.
	Sport, Dport uint16
}

// AcquireReader is implemented by drivers whose card reports ACQUIREs (the card's ring buffer).
type AcquireReader interface {
	// ReadAcquire blocks until the next record, ctx's end (ctx.Err()) or the reader's close (ErrStopped).
	ReadAcquire(ctx context.Context) (Acquire, error)
}

// Capacity is the size of the card's tables.
type Capacity struct {
	// SAs bounds the SA indices the card can hold (indices below it); Policies bounds policy ids.
	SAs, Policies uint32
}

// SharedTables is implemented by a driver whose tables serve every interface of the instance at once, as
// the XDP card's do: one SA table and one SPD for its protected and its wire interface. Per-interface
// offload lists cannot then split an entry between the interfaces, so the engine decides each entry on
// the one interface where the card uses it, and offloads it to every interface or to none:
//   - an SA on the wire interface, where its ESP travels: a list without the wire interface refuses the
//     SA everywhere (ReasonNotInList), so its traffic is dropped and counted (ipsec.NoSA, InNoStates);
//   - a policy on the interface whose packets it classifies: outbound on the protected interface,
//     inbound on the wire interface.
type SharedTables interface {
	// Sides names the protected (plaintext) and the wire (ESP) interface; both are among Interfaces.
	Sides() (protected, wire string)
}

// DefaultsSetter is implemented by drivers whose card applies the default verdicts (what happens to
// traffic no policy matches), so that a reload changes them in place.
type DefaultsSetter interface {
	SetDefaults(ipsec.Defaults) error
}

// UpdateChecker is implemented by drivers that can tell whether an SA they hold can take new
// settings in place, keeping its sequence numbers, IV mask and replay window (the daemon's driver
// asks esp.Continue). The manager asks before it changes the SAD (Engine.CheckUpdate), so that a
// change the running SA cannot take is refused at once, with the field and the reason.
type UpdateChecker interface {
	CheckUpdate(index uint32, sa *sadb.SAEntry) error
}

// CapacityReporter is implemented by drivers that know their tables' sizes. The engine then refuses
// an SA index the card cannot hold without asking it, and the manager bounds the SPD by Policies.
type CapacityReporter interface {
	Capacity() Capacity
}
