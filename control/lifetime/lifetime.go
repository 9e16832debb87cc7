// Package lifetime enforces SA lifetimes (RFC 4301 §4.4.2.1) from the card's counters, the way FreeBSD's
// ipsec_accel has the driver push counters back to the kernel.
//
// A Poller reads, at a fixed interval (default 1 s), every SA's totals from the offload engine (the card's
// per-CPU counters summed, plus the workers' per-SA counters), stores them as the SA's current lifetime,
// and compares them with its limits: bytes, packets, seconds since the SA was added, seconds since its
// first use. The soft limit moves the SA to dying and fires a soft-expire event once (a key manager
// starts a rekey; the offload engine switches outbound traffic to a newer mature SA when one exists).
// The hard limit removes the SA from the SAD — and so, through the engine, from the card — and fires a
// hard-expire event. Sequence-number exhaustion (the engine refused to send, or a non-ESN SA reached
// 2^32-1, RFC 4303 §3.3.3) is a hard expiry: no sequence number is ever reused.
//
// Counters reach the poller at most one interval late, so an SA can carry up to one interval's traffic
// past its limit; choose the interval (and the soft limit) accordingly. The clock is injected for tests.
package lifetime

import (
	"context"
	"log/slog"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
)

// DefaultInterval is how often counters are polled unless configured.
const DefaultInterval = time.Second

// Source yields each installed SA's counters tagged with its serial (the offload engine).
type Source interface {
	Counters(ctx context.Context) (map[uint32]offload.Counted, error)
}

// Options configure a Poller.
type Options struct {
	Interval time.Duration
	Now      func() time.Time
	Events   *events.Bus
	Logger   *slog.Logger
	// Retire, when set, is called with an SA (keys included) that expired hard, before it leaves
	// the SAD: the durable sequence state records that its key must never come back.
	Retire func(sa *sadb.SA, why Expiry) error
}

// Poller is the lifetime enforcer.
type Poller struct {
	store *sadb.Store
	src   Source
	opts  Options
	log   *slog.Logger
}

// New returns a poller over store, reading counters from src.
func New(store *sadb.Store, src Source, opts Options) *Poller {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Poller{store: store, src: src, opts: opts, log: log.With("component", "lifetime")}
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("poll sa counters", "err", err)
			}
		}
	}
}

// Expiry names the limit that expired an SA.
type Expiry string

const (
	ByBytes   Expiry = "bytes"
	ByPackets Expiry = "packets"
	ByAddTime Expiry = "add-time"
	ByUseTime Expiry = "use-time"
	BySeq     Expiry = "seq-exhausted"
)

// maxSeq32 is the last sequence number a non-ESN SA may send (RFC 4303 §3.3.3).
const maxSeq32 = 1<<32 - 1

// Poll runs one round: read counters, update every SA's current lifetime, fire expiries.
func (p *Poller) Poll(ctx context.Context) error {
	ctrs, err := p.src.Counters(ctx)
	if err != nil {
		return err
	}
	now := p.opts.Now()
	for _, e := range p.store.ListSAs(false) {
		if c, ok := ctrs[e.Index]; ok && c.Serial == e.Serial {
			var ok bool
			if e, ok = p.store.Usage(e.Index, c.Current(), c.FirstUse, c.LastUse); !ok {
				continue
			}
			if c.SeqExhausted || (!e.ESN && c.Seq >= maxSeq32) {
				p.expire(e, BySeq)
				continue
			}
		}
		if why, hit := check(&e, now, true); hit {
			p.expire(e, why)
			continue
		}
		if why, hit := check(&e, now, false); hit && !e.SoftFired {
			if d, fired := p.store.MarkDying(e.Index); fired {
				p.log.Info("sa soft-expired", "sa", d.Name, "spi", d.SPI, "by", why)
				p.publish(events.SASoftExpire, &d, why)
			}
		}
	}
	return nil
}

func (p *Poller) expire(e sadb.SAEntry, why Expiry) {
	if p.opts.Retire != nil {
		// Before the SA leaves: its keys go with it.
		if full, err := p.store.GetSA(sadb.Ref{Index: e.Index}, true); err == nil {
			if err := p.opts.Retire(&full.SA, why); err != nil {
				p.log.Error("retire the key of a hard-expired sa", "sa", full.Name, "spi", full.SPI, "err", err)
			}
			full.Wipe()
		}
	}
	d, ok := p.store.Expire(e.Index)
	if !ok {
		return
	}
	d.Cur = e.Cur
	p.log.Info("sa hard-expired", "sa", d.Name, "spi", d.SPI, "by", why)
	p.publish(events.SAHardExpire, &d, why)
}

func (p *Poller) publish(t events.Type, e *sadb.SAEntry, why Expiry) {
	if p.opts.Events == nil {
		return
	}
	ev := events.ForSA(t, e)
	ev.Reason = string(why)
	p.opts.Events.Publish(ev)
}

// check compares an SA's current lifetime with its hard (or soft) limits.
func check(e *sadb.SAEntry, now time.Time, hard bool) (Expiry, bool) {
	l := e.Limits
	bytes, packets, add, use := l.SoftBytes, l.SoftPackets, l.SoftAddSeconds, l.SoftUseSeconds
	if hard {
		bytes, packets, add, use = l.HardBytes, l.HardPackets, l.HardAddSeconds, l.HardUseSeconds
	}
	switch {
	case bytes != 0 && e.Cur.Bytes >= bytes:
		return ByBytes, true
	case packets != 0 && e.Cur.Packets >= packets:
		return ByPackets, true
	case add != 0 && !now.Before(e.AddTime.Add(seconds(add))):
		return ByAddTime, true
	case use != 0 && !e.UseTime.IsZero() && !now.Before(e.UseTime.Add(seconds(use))):
		return ByUseTime, true
	}
	return "", false
}

func seconds(s uint64) time.Duration {
	const max = uint64(1<<63-1) / uint64(time.Second)
	return time.Duration(min(s, max)) * time.Second
}
