package loader

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
)

// Reason is one of the card's global counters (enum xdpsec_reason).
type Reason = bpf.CardXdpsecReason

// NumReasons is how many reasons the card counts.
const NumReasons = int(bpf.CardXdpsecReasonXDPSEC_R_MAX)

// reasonNames are the names the loader reports: /proc/net/xfrm_stat's where one fits (without the Xfrm
// prefix), the card's own otherwise. A test checks every reason has one.
var reasonNames = [NumReasons]string{
	bpf.CardXdpsecReasonXDPSEC_R_IN_NO_STATES:      "InNoStates",
	bpf.CardXdpsecReasonXDPSEC_R_IN_STATE_INVALID:  "InStateInvalid",
	bpf.CardXdpsecReasonXDPSEC_R_IN_STATE_MISMATCH: "InStateMismatch",
	bpf.CardXdpsecReasonXDPSEC_R_IN_NO_POLS:        "InNoPols",
	bpf.CardXdpsecReasonXDPSEC_R_IN_POL_BLOCK:      "InPolBlock",
	bpf.CardXdpsecReasonXDPSEC_R_IN_TMPL_MISMATCH:  "InTmplMismatch",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_NO_STATES:     "OutNoStates",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_POL_BLOCK:     "OutPolBlock",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_NO_POLS:       "OutNoPols",
	bpf.CardXdpsecReasonXDPSEC_R_FRAG_AMBIGUOUS:    "FragAmbiguous",
	bpf.CardXdpsecReasonXDPSEC_R_ESP_FRAGMENT:      "InESPFragment",
	bpf.CardXdpsecReasonXDPSEC_R_NO_SOCKET_OUT:     "OutNoSocket",
	bpf.CardXdpsecReasonXDPSEC_R_NO_SOCKET_IN:      "InNoSocket",
	bpf.CardXdpsecReasonXDPSEC_R_FIB_NO_NEIGH:      "FibNoNeigh",
	bpf.CardXdpsecReasonXDPSEC_R_FIB_NO_ROUTE:      "FibNoRoute",
	bpf.CardXdpsecReasonXDPSEC_R_FIB_FWD_DISABLED:  "FibFwdDisabled",
	bpf.CardXdpsecReasonXDPSEC_R_FIB_OTHER:         "FibOther",
	bpf.CardXdpsecReasonXDPSEC_R_META:              "MetaError",
	bpf.CardXdpsecReasonXDPSEC_R_SPD_BUSY:          "SPDBusy",
	bpf.CardXdpsecReasonXDPSEC_R_POLICY_MISSING:    "PolicyMissing",
	bpf.CardXdpsecReasonXDPSEC_R_ACQUIRE_SENT:      "AcquireSent",
	bpf.CardXdpsecReasonXDPSEC_R_ACQUIRE_LOST:      "AcquireLost",
	bpf.CardXdpsecReasonXDPSEC_R_NON_IP:            "NonIP",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_ETH:         "ParseEthernet",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_VLAN:        "ParseVLAN",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_VLAN_DEPTH:  "ParseVLANDepth",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_IPV4:        "ParseIPv4",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_IPV6:        "ParseIPv6",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_IPV6EXT:     "ParseIPv6Ext",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_L4:          "ParseL4",
	bpf.CardXdpsecReasonXDPSEC_R_PARSE_ESP:         "ParseESP",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_PROTECT:       "OutProtect",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_BYPASS:        "OutBypass",
	bpf.CardXdpsecReasonXDPSEC_R_IN_OFFLOAD:        "InOffload",
	bpf.CardXdpsecReasonXDPSEC_R_IN_BYPASS:         "InBypass",
	bpf.CardXdpsecReasonXDPSEC_R_OUT_GUARD:         "OutGuard",
	bpf.CardXdpsecReasonXDPSEC_R_IN_GUARD:          "InGuard",
	bpf.CardXdpsecReasonXDPSEC_R_IN_IKE:            "InIKE",
}

// ReasonName returns the reason's stable name.
func ReasonName(r Reason) string {
	if int(r) < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason%d", uint32(r))
}

// ReasonCount is one global counter summed over CPUs.
type ReasonCount struct {
	Reason Reason
	Name   string
	Count  uint64
}

// Reasons reads every global counter, summed over CPUs, in enum order (one batch lookup).
func (c *Card) Reasons() ([]ReasonCount, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	keys := make([]uint32, NumReasons)
	vals := make([]uint64, NumReasons*ncpu)
	var cursor ebpf.MapBatchCursor
	n, err := c.objs.Reasons.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read reasons: %w", err)
	}
	out := make([]ReasonCount, NumReasons)
	for i := range out {
		out[i] = ReasonCount{Reason: Reason(i), Name: reasonNames[i]}
	}
	for i := 0; i < n; i++ {
		k := keys[i]
		if int(k) >= NumReasons {
			continue
		}
		for _, v := range vals[i*ncpu : (i+1)*ncpu] {
			out[k].Count += v
		}
	}
	return out, nil
}

// ReasonCounts is Reasons as a map by name.
func (c *Card) ReasonCounts() (map[string]uint64, error) {
	rs, err := c.Reasons()
	if err != nil {
		return nil, err
	}
	m := make(map[string]uint64, len(rs))
	for _, r := range rs {
		m[r.Name] = r.Count
	}
	return m, nil
}

// SAStats is what the card handed to workers for one SA, summed over CPUs.
type SAStats struct {
	Packets, Bytes uint64
	// FirstUse is the CLOCK_MONOTONIC time of the first packet (zero if none): compare with
	// unix.ClockGettime(unix.CLOCK_MONOTONIC) for "seconds since first use" (RFC 4301 §4.4.2.1).
	FirstUse time.Duration
	// LastUse is the CLOCK_MONOTONIC time of the last packet (zero if none), the latest CPU's.
	LastUse time.Duration
}

// SAStats reads one SA's card counters.
func (c *Card) SAStats(idx uint32) (SAStats, error) {
	var per []bpf.CardXdpsecSaStats
	if err := c.objs.SaStats.Lookup(idx, &per); err != nil {
		return SAStats{}, fmt.Errorf("read SA %d stats: %w", idx, err)
	}
	return sumSAStats(per), nil
}

// sumSAStats adds up one SA's per-CPU counters; the first use is the earliest CPU's.
func sumSAStats(per []bpf.CardXdpsecSaStats) SAStats {
	var s SAStats
	for _, v := range per {
		s.Packets += v.Packets
		s.Bytes += v.Bytes
		if v.FirstUseNs != 0 && (s.FirstUse == 0 || time.Duration(v.FirstUseNs) < s.FirstUse) {
			s.FirstUse = time.Duration(v.FirstUseNs)
		}
		s.LastUse = max(s.LastUse, time.Duration(v.LastUseNs))
	}
	return s
}

// EachSAStats calls fn for every SA index whose card counters are not zero, reading the per-CPU array in
// batches (a few syscalls for the whole table, for the control plane's lifetime poll). fn returning
// false stops the walk.
func (c *Card) EachSAStats(fn func(idx uint32, s SAStats) bool) error {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	const chunk = 4096
	keys := make([]uint32, chunk)
	vals := make([]bpf.CardXdpsecSaStats, chunk*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := c.objs.SaStats.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			s := sumSAStats(vals[i*ncpu : (i+1)*ncpu])
			if s != (SAStats{}) && !fn(keys[i], s) {
				return nil
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read SA stats: %w", err)
		}
	}
}

// PolicyStats is one policy's hits, summed over CPUs.
type PolicyStats struct {
	Packets, Bytes uint64
	// LastUse is the CLOCK_MONOTONIC time of the last match (zero if none), the latest CPU's.
	LastUse time.Duration
}

// PolicyStats reads one policy's counters.
func (c *Card) PolicyStats(id uint32) (PolicyStats, error) {
	var per []bpf.CardXdpsecPolicyStats
	if err := c.objs.PolicyStats.Lookup(id, &per); err != nil {
		return PolicyStats{}, fmt.Errorf("read policy %d stats: %w", id, err)
	}
	var s PolicyStats
	for _, v := range per {
		s.Packets += v.Packets
		s.Bytes += v.Bytes
		s.LastUse = max(s.LastUse, time.Duration(v.LastUseNs))
	}
	return s, nil
}

func (c *Card) resetPolicyCounters(id uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	if err := c.objs.PolicyStats.Put(id, make([]bpf.CardXdpsecPolicyStats, n)); err != nil {
		return fmt.Errorf("reset policy %d stats: %w", id, err)
	}
	if err := c.objs.AcquireLast.Put(id, uint64(0)); err != nil {
		return fmt.Errorf("reset policy %d acquire state: %w", id, err)
	}
	return nil
}

func (c *Card) resetSACounters(idx uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	if err := c.objs.SaStats.Put(idx, make([]bpf.CardXdpsecSaStats, n)); err != nil {
		return fmt.Errorf("reset SA %d stats: %w", idx, err)
	}
	if c.ws != nil {
		c.ws.reset(idx)
	} else if err := c.objs.WorkerStats.Put(idx, &bpf.CardXdpsecWorkerStats{}); err != nil {
		return fmt.Errorf("reset SA %d worker stats: %w", idx, err)
	}
	return nil
}
