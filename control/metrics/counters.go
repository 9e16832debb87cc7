package metrics

// The global counters (`xdpsec stats`: the card's reasons, enum xdpsec_reason in bpf/xdpsec.h, named
// by the loader; the workers' counters, named "Worker…" by the daemon) count different things: a
// packet's fate, something done to a packet that went on, or an event that is no packet at all. A
// drop alert must not fire on throughput, so each counter goes to the metric of its kind, with its
// `xdpsec stats` name as the label value. The set of names is fixed by the code, so label values are
// bounded; a test checks that every reason the card has is classified here.

// kind is what a global counter counts.
type kind int

const (
	kindUnclassified  kind = iota // a name this table does not know yet (a counter added without it)
	kindDrop                      // a packet dropped (by the card or a worker)
	kindVerdict                   // a packet the card let through: to a worker, or to the kernel
	kindCardEvent                 // something the card did besides a packet's verdict
	kindWorkerPackets             // the workers' throughput
	kindWorkerOp                  // work a worker did on a packet that went on
)

var counterKinds = map[string]kind{
	// The card drops (XDP_DROP).
	"InStateInvalid":  kindDrop, // ESP for an offloaded SA that is not valid
	"InStateMismatch": kindDrop, // UDP encapsulation differs from the SA's
	"InNoPols":        kindDrop, // no inbound policy, default discard (the bypass default counts InBypass)
	"InPolBlock":      kindDrop, // inbound DISCARD policy
	"InTmplMismatch":  kindDrop, // plaintext where an inbound PROTECT policy applies
	"OutNoStates":     kindDrop, // PROTECT policy without a usable SA (and an ACQUIRE)
	"OutPolBlock":     kindDrop, // outbound DISCARD policy
	"OutNoPols":       kindDrop, // no outbound policy, default discard
	"FragAmbiguous":   kindDrop, // a non-first fragment a port selector may claim
	"OutNoSocket":     kindDrop, // no worker socket on the queue
	"InNoSocket":      kindDrop, // no worker socket on the queue (passed instead under loader.Config.InNoSocketPass)
	"FibNoRoute":      kindDrop, // no route to the SA's outer destination
	"FibFwdDisabled":  kindDrop, // forwarding off on the protected interface
	"FibOther":        kindDrop,
	"MetaError":       kindDrop, // no room for the worker's metadata
	"SPDBusy":         kindDrop, // the SPD changed during two scans in a row
	"PolicyMissing":   kindDrop, // a rule names a policy no longer installed
	"ParseEthernet":   kindDrop,
	"ParseVLAN":       kindDrop,
	"ParseVLANDepth":  kindDrop,
	"ParseIPv4":       kindDrop,
	"ParseIPv6":       kindDrop,
	"ParseIPv6Ext":    kindDrop,
	"ParseL4":         kindDrop,
	"ParseESP":        kindDrop,
	"OutGuard":        kindDrop, // PROTECT traffic while no worker serves the card (guard: stopped or starting)
	"InGuard":         kindDrop, // ESP of an offloaded SA while no worker serves the card (guard)

	// The card lets the packet through.
	"OutProtect":    kindVerdict, // to a worker, to be encrypted
	"InOffload":     kindVerdict, // ESP to a worker, to be decrypted
	"OutBypass":     kindVerdict, // to the kernel by an outbound BYPASS policy or default
	"InBypass":      kindVerdict, // to the kernel by an inbound BYPASS policy or default
	"InIKE":         kindVerdict, // IKE (non-ESP marker) or a NAT-keepalive on the encapsulation port: to the gateway's stack
	"InESPFragment": kindVerdict, // fragmented ESP: to the kernel, which reassembles
	"NonIP":         kindVerdict, // ARP, LLDP, …: to the kernel

	// The card's events that are no packet's fate.
	"AcquireSent": kindCardEvent, // an ACQUIRE record for the key manager
	"AcquireLost": kindCardEvent, // an ACQUIRE record lost: the ring was full
	"FibNoNeigh":  kindCardEvent, // an OutProtect packet whose next hop is unresolved (the worker drops it: WorkerNoNeighOut)
	"InNoStates":  kindCardEvent, // ESP of an SA not offloaded: the inbound SPD decided its fate (InBypass, InTmplMismatch, …)

	// The workers' throughput.
	"WorkerRxPackets": kindWorkerPackets, // descriptors taken off the RX rings
	"WorkerTxPackets": kindWorkerPackets, // descriptors put on the TX rings
	"WorkerSealed":    kindWorkerPackets, // outbound packets encrypted
	"WorkerOpened":    kindWorkerPackets, // inbound packets decrypted and accepted

	// The workers drop.
	"WorkerBadMeta":        kindDrop, // the card's metadata missing or malformed
	"WorkerWrongDir":       kindDrop,
	"WorkerNoSa":           kindDrop, // no SA at the metadata's index
	"WorkerCryptoErrors":   kindDrop, // ESP refused the packet (per SA and reason: xdpsec_sa_*_errors_total)
	"WorkerSeqUnreserved":  kindDrop, // among them: over the SA's durable sequence reservation (xdpsec_sa_reservation_errors_total)
	"WorkerPolicyMismatch": kindDrop, // the decrypted packet fails the inbound policy check
	"WorkerTtlExpired":     kindDrop,
	"WorkerNoNeighOut":     kindDrop, // the wire next hop is unresolved
	"WorkerNoNextHopIn":    kindDrop, // no route or neighbour for the decrypted packet's destination
	"WorkerWrongEgress":    kindDrop, // the next hop is on an interface the worker has no socket on
	"WorkerNoFrame":        kindDrop, // no free frame to fragment into
	"WorkerTxRingFull":     kindDrop, // a TX ring was full
	"WorkerFrameErrors":    kindDrop, // a frame came back twice or from outside the pool (a bug)
	"WorkerChainDrops":     kindDrop, // a multi-buffer chain the worker cannot segment

	// What the workers did to packets that went on (or, for TooBig, were answered with an ICMP error).
	"WorkerTooBig":             kindWorkerOp, // over the tunnel's MTU: fragmented (WorkerFragments) or dropped with a PTB (WorkerPtbSent)
	"WorkerPtbSent":            kindWorkerOp,
	"WorkerFragments":          kindWorkerOp,
	"WorkerChecksumsCompleted": kindWorkerOp,
	"WorkerChains":             kindWorkerOp,
	"WorkerSegments":           kindWorkerOp,
	"WorkerGsoFrames":          kindWorkerOp,
	"WorkerMssClamped":         kindWorkerOp,
}
