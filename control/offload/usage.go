package offload

import (
	"context"
	"fmt"
	"time"

	"github.com/xdpsec/xdpsec/control/sadb"
)

// Counters at the moment they are asked for: an IKE daemon compares an SA's bytes with its volume
// limits and reads the last use for dead peer detection when it asks, not a poll interval later.

// SACounterReader is implemented by drivers that can read one SA's counters without reading every
// SA's (the daemon's driver reads one per-CPU entry of the card and one of the workers').
type SACounterReader interface {
	SACounters(index uint32) (SACounters, error)
}

// PolicyUsageReader is implemented by drivers whose card records when it last matched a policy.
type PolicyUsageReader interface {
	// PolicyLastUse returns when the card last matched the policy with id (zero: never, or unknown).
	PolicyLastUse(id uint32) (time.Time, error)
}

// CountersFor reads the counters of the SAs at indexes now, in the engine's goroutine, tagged with the
// serial of the SA the card holds at each (like Counters). Indexes the card does not hold are absent.
func (e *Engine) CountersFor(ctx context.Context, indexes []uint32) (map[uint32]Counted, error) {
	out := make(map[uint32]Counted, len(indexes))
	var err error
	if derr := e.do(ctx, func() {
		one, ok := e.drv.(SACounterReader)
		var all map[uint32]SACounters
		if !ok {
			if all, err = e.drv.Counters(); err != nil {
				return
			}
		}
		for _, idx := range indexes {
			serial, held := e.heldSerial(idx)
			if !held {
				continue
			}
			var c SACounters
			if ok {
				if c, err = one.SACounters(idx); err != nil {
					return
				}
			} else if c, held = all[idx]; !held {
				continue
			}
			out[idx] = Counted{Serial: serial, SACounters: c}
		}
	}); derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, fmt.Errorf("read sa counters: %w", err)
	}
	return out, nil
}

// heldSerial returns the serial of the SA installed at idx on any interface. Engine goroutine only.
func (e *Engine) heldSerial(idx uint32) (uint64, bool) {
	for _, ifc := range e.ifaces {
		if st := e.sa[saKey{idx, ifc}]; st != nil && st.installed {
			return st.serial, true
		}
	}
	return 0, false
}

// PolicyLastUse returns when the card last matched the policy with id, read now in the engine's
// goroutine; zero when the driver does not record it, the card does not hold the policy, or it never
// matched.
func (e *Engine) PolicyLastUse(ctx context.Context, id uint32) (time.Time, error) {
	r, ok := e.drv.(PolicyUsageReader)
	if !ok {
		return time.Time{}, nil
	}
	var t time.Time
	var err error
	if derr := e.do(ctx, func() {
		for _, ifc := range e.ifaces {
			if st := e.pol[polKey{id, ifc}]; st != nil && st.installed {
				t, err = r.PolicyLastUse(id)
				return
			}
		}
	}); derr != nil {
		return time.Time{}, derr
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read policy %d usage: %w", id, err)
	}
	return t, nil
}

// Current is the counters as the SAD records them (an SA's current lifetime).
func (c SACounters) Current() sadb.Current {
	return sadb.Current{Bytes: c.Bytes, Packets: c.Packets, ReplayErrors: c.ReplayErrors,
		IntegrityErrors: c.IntegrityErrors, OtherErrors: c.OtherErrors, SeqUnreserved: c.SeqUnreserved, Seq: c.Seq}
}
