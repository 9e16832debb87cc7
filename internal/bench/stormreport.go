package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Storm is the storm phase's accounting: the valid traffic with and without the storm, and for every
// kind of bad packet how many were sent and what gw2 counted them under.
type Storm struct {
	// FlatOutMpps is what the valid traffic alone delivered flat out, just before; both trials
	// offer RatePPS, a fraction of it, so that the valid traffic does not fill the rings that the
	// storm's packets for the workers go through (a packet lost there is counted nowhere).
	FlatOutMpps float64 `json:"flat_out_mpps"`
	RatePPS     float64 `json:"rate_pps"`
	// CleanOfferedMpps, CleanMpps and CleanLoss are the valid traffic's at RatePPS without the
	// storm (the generator may offer less than RatePPS on a busy machine); the result's
	// OfferedMpps, Mpps and Loss are those during the storm.
	CleanOfferedMpps float64 `json:"clean_offered_mpps"`
	CleanMpps        float64 `json:"clean_mpps"`
	CleanLoss        float64 `json:"clean_loss"`
	// StormPPS is the rate the bad packets were sent at, all kinds together.
	StormPPS float64     `json:"storm_pps"`
	Kinds    []StormKind `json:"kinds"`
	// PrimerDelivered is 1 when the one valid packet of the storm's SA sent before the storm (it
	// moves the SA's window past the replays) reached h2's sink: the sink's count of what leaks
	// works.
	PrimerDelivered uint64 `json:"primer_delivered"`
	// ReachedH2 is what the sink counted during the storm on the storm's port or as ESP: bad
	// packets that went through gw2 (must be 0).
	ReachedH2 uint64 `json:"reached_h2"`
	// Unexpected holds gw2's drop counters that grew during the storm and belong to no kind (a
	// bad packet counted under the wrong reason); empty when all is well.
	Unexpected map[string]uint64 `json:"unexpected,omitempty"`
	// WireRingFull and WireFillEmpty are how often gw2's wire-side AF_XDP sockets found their
	// receive ring full or their fill ring empty during the storm (the valid traffic's packets and
	// the storm's alike are dropped there); the Clean ones the same without the storm.
	WireRingFull       uint64 `json:"wire_ring_full"`
	WireFillEmpty      uint64 `json:"wire_fill_empty"`
	CleanWireRingFull  uint64 `json:"clean_wire_ring_full"`
	CleanWireFillEmpty uint64 `json:"clean_wire_fill_empty"`
	// CleanReplayErrors is the valid traffic's replay drops without the storm (the result's
	// ReplayErrors: during it).
	CleanReplayErrors uint64 `json:"clean_replay_errors"`
	// Handed is how many packets of the storm's SA gw2's card handed to its workers during the
	// storm (its per-SA counter); LostToWorkers those of them the workers never counted: dropped by
	// the AF_XDP socket between the card and the workers (ring full, fill ring empty).
	Handed        uint64 `json:"handed"`
	LostToWorkers uint64 `json:"lost_to_workers"`
}

// StormKind is one kind of bad packet.
type StormKind struct {
	Kind string `json:"kind"`
	Sent uint64 `json:"sent"`
	// Reasons are the counters gw2 must count every packet of the kind under (all of them): the
	// card's reasons by name ("InNoStates"), the storm SA's worker errors as "sa:<reason>"
	// ("sa:replay"). Counted holds what each grew by during the storm.
	Reasons []string `json:"reasons"`
	Counted []uint64 `json:"counted"`
}

// stormReasons are the counters each kind belongs to at gw2.
var stormReasons = map[string][]string{
	StormRunt:       {"ParseESP"},
	StormTruncated:  {"sa:truncated"},
	StormUnknownSPI: {"InNoStates", "InTmplMismatch"},
	StormReplay:     {"sa:replay"},
	StormBadICV:     {"sa:icv"},
	StormGarbage:    {"ParseIPv4"},
}

// stormNeutral are gw2's card counters that the valid traffic and the hosts' own packets (ARP,
// neighbour discovery) move: verdicts and events, not drops of a storm packet.
var stormNeutral = []string{"OutProtect", "OutBypass", "InOffload", "InBypass", "InIKE", "NonIP",
	"FibNoNeigh", "InESPFragment", "AcquireSent"}

// check returns what is wrong with a storm's accounting.
func (s *Storm) check(where string) []error {
	if s == nil {
		return []error{fmt.Errorf("%s: no storm accounting", where)}
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(where+": "+format, a...)) }
	seen := map[string]bool{}
	mismatch := false
	lostAtSocket := s.socketLossExplains()
	for _, k := range s.Kinds {
		seen[k.Kind] = true
		want, ok := stormReasons[k.Kind]
		if !ok {
			bad("unknown storm kind %q", k.Kind)
			continue
		}
		if k.Sent == 0 {
			bad("storm kind %s: none sent", k.Kind)
		}
		if !slices.Equal(k.Reasons, want) || len(k.Counted) != len(want) {
			bad("storm kind %s: counted under %v (%v), want %v", k.Kind, k.Reasons, k.Counted, want)
			continue
		}
		for i, r := range k.Reasons {
			if k.Counted[i] != k.Sent && !(lostAtSocket && workerReason(r) && k.Counted[i] < k.Sent) {
				bad("storm kind %s: sent %d, gw2 counted %d under %s", k.Kind, k.Sent, k.Counted[i], r)
				mismatch = true
			}
		}
	}
	for _, k := range StormKinds {
		if !seen[k] {
			bad("storm kind %s missing", k)
		}
	}
	if s.PrimerDelivered != 1 {
		bad("the storm SA's primer reached h2 %d times, want 1 (the sink's leak count is not proven)", s.PrimerDelivered)
	}
	if s.ReachedH2 != 0 {
		bad("%d storm packets reached h2", s.ReachedH2)
	}
	if len(s.Unexpected) > 0 {
		var u []string
		for _, k := range slices.Sorted(maps.Keys(s.Unexpected)) {
			u = append(u, fmt.Sprintf("%s %d", k, s.Unexpected[k]))
		}
		bad("gw2 counted drops no storm kind explains: %s", strings.Join(u, ", "))
		mismatch = true
	}
	if mismatch && s.LostToWorkers > 0 {
		bad("(gw2's card handed %d packets of the storm's SA to its workers, which counted %d fewer: dropped by the AF_XDP sockets between them, "+
			"which found their receive ring full %d times and their fill ring empty %d times during the storm)",
			s.Handed, s.LostToWorkers, s.WireRingFull, s.WireFillEmpty)
	}
	return errs
}

// workerReason tells the counters the workers keep per SA ("sa:…") from the card's.
func workerReason(r string) bool { return strings.HasPrefix(r, "sa:") }

// socketLossExplains reports whether the storm's worker-bound packets that the workers did not count
// are exactly the ones lost between the card and the workers: the kinds counted by the workers fall
// short by LostToWorkers in all (none over), nothing else is off, and gw2's wire-side sockets did drop
// packets (receive ring full, fill ring empty: counted by the kernel, for the valid traffic and the
// storm together). Every bad packet is then accounted for once, under its reason or as lost there.
func (s *Storm) socketLossExplains() bool {
	if s.LostToWorkers == 0 || s.WireRingFull+s.WireFillEmpty == 0 || len(s.Unexpected) > 0 {
		return false
	}
	var short uint64
	for _, k := range s.Kinds {
		for i, r := range k.Reasons {
			if i >= len(k.Counted) || k.Counted[i] > k.Sent || (!workerReason(r) && k.Counted[i] != k.Sent) {
				return false
			}
			if workerReason(r) {
				short += k.Sent - k.Counted[i]
			}
		}
	}
	return short == s.LostToWorkers
}

// stormMarkdown is the storm's section of the summary ("" without a storm result).
func (r *Report) stormMarkdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	for _, x := range r.Results {
		if x.Phase != PhaseStorm {
			continue
		}
		if b.Len() == 0 {
			p("\n## Malformed-traffic storm (xdpsec, bad packets on the wire towards gw2)\n\n")
		}
		if x.Error != "" || x.Storm == nil {
			p("%s: failed: %s\n", x.System, x.Error)
			continue
		}
		s := x.Storm
		var own []string
		for _, k := range slices.Sorted(maps.Keys(x.Counters)) {
			own = append(own, fmt.Sprintf("%s %d", k, x.Counters[k]))
		}
		p("%s, 64 B valid traffic h1 → h2 at half the %.3f Mpps it delivered flat out (%.3f Mpps asked):\n\n"+
			"| valid traffic | offered Mpps | delivered Mpps | loss |\n|---|---|---|---|\n"+
			"| alone | %.3f | %.3f | %.2f %% |\n| during the storm (%.0f bad packets/s) | %.3f | %.3f | %.2f %% |\n\n"+
			"The valid traffic's own drops (not the storm's): replay drops of its SA %d alone, %d during the storm; "+
			"gw2's wire-side AF_XDP receive ring full %d times alone, %d during the storm, fill ring empty %d and %d times. "+
			"gw2's card handed %d packets of the storm's SA to its workers, %d of them lost before a worker counted them. "+
			"The gateways' counters during the storm (the storm's included): %s.\n\n",
			x.System, s.FlatOutMpps, s.RatePPS/1e6, s.CleanOfferedMpps, s.CleanMpps, 100*s.CleanLoss, s.StormPPS,
			x.OfferedMpps, x.Mpps, 100*x.Loss, s.CleanReplayErrors, x.ReplayErrors, s.CleanWireRingFull, s.WireRingFull,
			s.CleanWireFillEmpty, s.WireFillEmpty, s.Handed, s.LostToWorkers, strings.Join(own, ", "))
		p("| kind | sent | gw2 counted under | counted | exact |\n|---|---|---|---|---|\n")
		for _, k := range s.Kinds {
			var c []string
			exact := "yes"
			for i := range k.Reasons {
				n := uint64(0)
				if i < len(k.Counted) {
					n = k.Counted[i]
				}
				c = append(c, fmt.Sprint(n))
				switch {
				case n == k.Sent:
				case n < k.Sent && workerReason(k.Reasons[i]) && s.socketLossExplains():
					exact = fmt.Sprintf("yes, %d lost at gw2's sockets", k.Sent-n)
				default:
					exact = "**no**"
				}
			}
			p("| %s | %d | %s | %s | %s |\n", k.Kind, k.Sent, strings.Join(k.Reasons, ", "), strings.Join(c, ", "), exact)
		}
		unexpected := "none"
		if len(s.Unexpected) > 0 {
			unexpected = fmt.Sprint(s.Unexpected)
		}
		p("\nStorm packets that reached h2: %d (the primer, a valid packet of the storm's SA, reached it %d time(s)); "+
			"gw2 drop counters no kind explains: %s.\n", s.ReachedH2, s.PrimerDelivered, unexpected)
	}
	return b.String()
}
