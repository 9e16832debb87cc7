package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// Acquire is one ACQUIRE record: a packet matched a PROTECT policy that has no usable SA (RFC 4301
// §5.2 asks the key manager for one). The card writes at most one per policy per acquire interval.
type Acquire struct {
	Time     time.Duration // CLOCK_MONOTONIC
	PolicyID uint32
	SA       uint32 // the SA index the policy names (ipsec.NoSA when none)
	Dir      ipsec.Dir
	Tuple    ipsec.Tuple // the packet's selector tuple
}

// AcquireReader reads ACQUIRE records from the card's ring buffer. One reader per card.
type AcquireReader struct {
	r   *ringbuf.Reader
	rec ringbuf.Record
}

// ErrReaderClosed is returned by Read after Close.
var ErrReaderClosed = errors.New("acquire reader closed")

// NewAcquireReader opens the ACQUIRE ring.
func (c *Card) NewAcquireReader() (*AcquireReader, error) {
	r, err := ringbuf.NewReader(c.objs.AcquireRing)
	if err != nil {
		return nil, fmt.Errorf("open acquire ring: %w", err)
	}
	return &AcquireReader{r: r}, nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded when nothing arrives by t (zero: no deadline).
func (a *AcquireReader) SetDeadline(t time.Time) { a.r.SetDeadline(t) }

// Read blocks for the next record.
func (a *AcquireReader) Read() (Acquire, error) {
	if err := a.r.ReadInto(&a.rec); err != nil {
		if errors.Is(err, ringbuf.ErrClosed) {
			return Acquire{}, ErrReaderClosed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return Acquire{}, err
		}
		return Acquire{}, fmt.Errorf("read acquire ring: %w", err)
	}
	return decodeAcquire(a.rec.RawSample)
}

func decodeAcquire(b []byte) (Acquire, error) {
	var r bpf.CardXdpsecAcquire
	if len(b) < int(unsafe.Sizeof(r)) {
		return Acquire{}, fmt.Errorf("decode acquire record: %d bytes", len(b))
	}
	if _, err := binary.Decode(b, binary.NativeEndian, &r); err != nil {
		return Acquire{}, fmt.Errorf("decode acquire record: %w", err)
	}
	return Acquire{
		Time: time.Duration(r.TimeNs), PolicyID: r.PolicyId, SA: r.SaIndex, Dir: ipsec.Dir(r.Dir),
		Tuple: ipsec.Tuple{
			Src: wordsAddr(r.Src, r.Family), Dst: wordsAddr(r.Dst, r.Family), Proto: ipsec.Proto(r.Proto),
			SrcPort: r.Sport, DstPort: r.Dport, NonFirstFragment: r.NonfirstFrag != 0,
		},
	}, nil
}

// Close stops the reader; a blocked Read returns ErrReaderClosed.
func (a *AcquireReader) Close() error { return a.r.Close() }
