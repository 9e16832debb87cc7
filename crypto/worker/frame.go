//go:build linux

package worker

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
	"github.com/xdpsec/xdpsec/loader/xsk"
)

// What both directions do with a frame: find the packet and the card's metadata in it, the SA, and
// write the Ethernet header of the frame that leaves.

var be = binary.BigEndian

const (
	ethLen       = 14
	etherTypeIP  = 0x0800
	etherTypeIP6 = 0x86dd
)

// side names the socket a frame leaves on.
const (
	sideProtected = 0
	sideWire      = 1
)

// frameOf returns the whole UMEM frame of d and the packet's offset in it.
func (w *Worker) frameOf(d xsk.Desc) (frame []byte, off int) {
	return w.umem.Frame(d.Addr), int(d.Addr - w.umem.FrameBase(d.Addr))
}

// readMeta decodes the card's metadata in front of the packet at
// frame[off:off+n] and checks it names a direction and an IP header inside
// the packet. It returns the IP header's offset in frame.
func (w *Worker) readMeta(frame []byte, off, n int, want ipsec.Dir, m *bpf.CardXdpsecMeta) (l3 int, ok bool) {
	if off < bpf.MetaSize || off+n > len(frame) || bpf.DecodeMeta(frame[off-bpf.MetaSize:off], m) != nil {
		w.stats.BadMeta.Add(1)
		return 0, false
	}
	if ipsec.Dir(m.Dir) != want {
		w.stats.WrongDir.Add(1)
		return 0, false
	}
	if m.L3Off < ethLen || int(m.L3Off)+20 > n {
		w.stats.BadMeta.Add(1)
		return 0, false
	}
	return off + int(m.L3Off), true
}

// lookup finds the SA the metadata names and checks its direction.
func (w *Worker) lookup(index uint32, want ipsec.Dir) *Entry {
	e := w.sas.Lookup(index)
	if e == nil {
		w.stats.NoSA.Add(1)
		return nil
	}
	if e.Dir != want {
		w.stats.WrongDir.Add(1)
		return nil
	}
	return e
}

// putEth writes an Ethernet header in the 14 bytes before frame[start] and
// returns the TX descriptor of the frame from there to end.
func (w *Worker) putEth(d xsk.Desc, frame []byte, start, end int, dst, src *[6]byte, ipv6 bool) xsk.Desc {
	h := frame[start-ethLen : start]
	copy(h[0:6], dst[:])
	copy(h[6:12], src[:])
	if ipv6 {
		be.PutUint16(h[12:], etherTypeIP6)
	} else {
		be.PutUint16(h[12:], etherTypeIP)
	}
	return xsk.Desc{Addr: w.umem.FrameBase(d.Addr) + uint64(start-ethLen), Len: uint32(end - start + ethLen)}
}

// badHeader counts a packet of SA sa dropped because its IP header is
// malformed, as the engine's own ReasonBadHeader errors are counted.
func (w *Worker) badHeader(sa uint32) {
	w.saStats.AddError(sa, uint8(esp.ReasonBadHeader), 1)
	w.stats.CryptoErrors.Add(1)
}

func (w *Worker) cryptoErr(sa uint32, err error) {
	w.stats.CryptoErrors.Add(1)
	// The engine returns its sentinels unwrapped: a type assertion finds
	// the reason without errors.As's allocation-free but slower walk.
	if e, ok := err.(*esp.Error); ok {
		w.saStats.AddError(sa, uint8(e.Reason), 1)
		if e.Reason == esp.ReasonSeqUnreserved {
			w.stats.SeqUnreserved.Add(1)
		}
	}
}
