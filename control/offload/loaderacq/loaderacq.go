// Package loaderacq adapts the card's ACQUIRE ring buffer (loader.AcquireReader) to the control plane's
// offload.AcquireReader, so the manager can turn ACQUIREs into events:
//
//	r, err := loaderacq.New(card, map[spd.Dir]string{spd.DirOut: protected, spd.DirIn: wire})
//	m, err := manager.New(cfg, drv, manager.Options{Acquires: r})
//	…
//	r.Close() // after m.Close()
package loaderacq

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/spd"
	"github.com/xdpsec/xdpsec/loader"
)

// pollEvery bounds how long ReadAcquire takes to notice its context ended: the ring reader has a
// deadline, not a context.
const pollEvery = 250 * time.Millisecond

// Reader reads ACQUIREs from a card.
type Reader struct {
	r      *loader.AcquireReader
	ifaces map[spd.Dir]string
}

// New opens the card's ACQUIRE ring. ifaces names the interface of each direction (for the events).
func New(card *loader.Card, ifaces map[spd.Dir]string) (*Reader, error) {
	r, err := card.NewAcquireReader()
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, ifaces: ifaces}, nil
}

// ReadAcquire implements offload.AcquireReader.
func (a *Reader) ReadAcquire(ctx context.Context) (offload.Acquire, error) {
	for {
		if err := ctx.Err(); err != nil {
			return offload.Acquire{}, err
		}
		a.r.SetDeadline(time.Now().Add(pollEvery))
		rec, err := a.r.Read()
		switch {
		case err == nil:
			return offload.Acquire{PolicyID: rec.PolicyID, Iface: a.ifaces[rec.Dir],
				Src: rec.Tuple.Src, Dst: rec.Tuple.Dst, Proto: rec.Tuple.Proto}, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, loader.ErrReaderClosed):
			return offload.Acquire{}, offload.ErrStopped
		default:
			return offload.Acquire{}, err
		}
	}
}

// Close closes the ring reader; a blocked ReadAcquire returns offload.ErrStopped.
func (a *Reader) Close() error { return a.r.Close() }

var _ offload.AcquireReader = (*Reader)(nil)
