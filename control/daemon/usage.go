package daemon

import (
	"time"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader"
)

// Last use times, for an IKE daemon's dead peer detection and inactivity timeouts (docs/ike-api.md).
//
// The card stamps each SA's and each policy's last packet (last_use_ns in sa_stats and policy_stats).
// For an SA that is when the card handed a packet to the workers, which for inbound ESP is before the
// ICV is checked: a forged packet with the SA's SPI would look like use, and keep a dead peer from
// being detected. So an SA's last use counts only when the workers completed a packet since the
// previous reading (sealed, or opened and checked): it is the card's stamp then, at most one reading
// interval (the lifetime poller's) later than the last genuine packet.

// useMark is what the last reading of an SA saw.
type useMark struct {
	packets uint64    // the workers' completed packets
	at      time.Time // the last use accepted
}

// verifiedUse returns h's last use given the workers' packet count and the card's last stamp
// (CLOCK_MONOTONIC; 0 for none). Call with d.mu.
func (d *driver) verifiedUse(h *heldSA, packets uint64, cardLast, monoNow time.Duration, wallNow time.Time) time.Time {
	if d.uses == nil {
		d.uses = map[*heldSA]useMark{}
	}
	u := d.uses[h]
	if packets > u.packets && cardLast != 0 {
		u.at = monoToWall(cardLast, monoNow, wallNow)
	}
	u.packets = packets
	d.uses[h] = u
	return u.at
}

// pruneUses forgets SAs the driver no longer holds. Call with d.mu.
func (d *driver) pruneUses() {
	for h := range d.uses {
		if d.held[h.index] != h {
			delete(d.uses, h)
		}
	}
}

// counters reads one held SA's totals: packets and bytes are what the workers completed; first and
// last use are the card's (the last one verified, above). Call with d.mu.
func (d *driver) counters(idx uint32, h *heldSA, monoNow time.Duration, wallNow time.Time) offload.SACounters {
	cs, err := d.card.SAStats(idx)
	return d.countersWith(idx, h, cs, err == nil, monoNow, wallNow)
}

// countersWith is counters with the card's counters of the SA already read (cardOK false: they
// could not be, and the SA's first and last use stay unknown). Call with d.mu.
func (d *driver) countersWith(idx uint32, h *heldSA, cs loader.SAStats, cardOK bool, monoNow time.Duration,
	wallNow time.Time) offload.SACounters {
	c := saCounters(d.card.WorkerStats().Read(idx))
	if cardOK {
		if cs.FirstUse != 0 {
			c.FirstUse = wallNow.Add(cs.FirstUse - monoNow)
		}
		c.LastUse = d.verifiedUse(h, c.Packets, cs.LastUse, monoNow, wallNow)
	}
	if h.dir == ipsec.DirOut {
		c.Seq = h.sa.NextSeq() - 1
		c.SeqExhausted = c.SeqExhausted || h.sa.SeqExhausted()
	} else {
		c.Seq = h.sa.ReplayTop()
	}
	return c
}

var (
	_ offload.SACounterReader   = (*driver)(nil)
	_ offload.PolicyUsageReader = (*driver)(nil)
)

// SACounters reads one SA's counters now (an IKE daemon's query).
func (d *driver) SACounters(idx uint32) (offload.SACounters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.held[idx]
	if !ok {
		return offload.SACounters{}, nil
	}
	return d.counters(idx, h, monotonicNow(), time.Now()), nil
}

// PolicyLastUse is when the card last matched the policy (zero: never).
func (d *driver) PolicyLastUse(id uint32) (time.Time, error) {
	s, err := d.card.PolicyStats(id)
	if err != nil || s.LastUse == 0 {
		return time.Time{}, err
	}
	monoNow, wallNow := monotonicNow(), time.Now()
	return monoToWall(s.LastUse, monoNow, wallNow), nil
}

// monoToWall converts a CLOCK_MONOTONIC stamp to wall-clock time, never later than now.
func monoToWall(t, monoNow time.Duration, wallNow time.Time) time.Time {
	if t >= monoNow {
		return wallNow
	}
	return wallNow.Add(t - monoNow)
}
