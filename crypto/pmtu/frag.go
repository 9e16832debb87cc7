package pmtu

import "github.com/xdpsec/xdpsec/crypto/internal/inetsum"

// FragmentAt writes into dst the fragment of the IPv4 packet pkt that starts at byte offset of
// pkt's payload (0 for the first fragment) and is at most mtu bytes long (RFC 791 §3.2), and
// returns its length and the payload offset of the next fragment, which is 0 after the last one.
// A packet that fits mtu comes out as one unchanged copy. The first fragment carries all of pkt's
// IP options, the others only those with the copied flag. Bytes of pkt beyond its total length
// are ignored; pkt is never written. dst must hold the fragment, else ErrShortBuffer.
//
// It keeps no state, so a caller can write each fragment straight into a frame of its own and
// encrypt it before asking for the next; Fragmenter wraps it for callers that prefer an iterator.
func FragmentAt(dst, pkt []byte, mtu, offset int) (n, next int, err error) {
	hl, total, copied, err := parse4(pkt)
	if err != nil {
		return 0, 0, err
	}
	pkt = pkt[:total]
	fo := be.Uint16(pkt[6:])
	if total <= mtu {
		if offset != 0 {
			return 0, 0, ErrMalformed
		}
		if len(dst) < total {
			return 0, 0, ErrShortBuffer
		}
		return copy(dst, pkt), 0, nil
	}
	if fo&0x4000 != 0 {
		return 0, 0, ErrDontFragment
	}
	// Every fragment but the last carries a multiple of 8 payload bytes; the first fragment's
	// header is the largest, so it decides whether mtu leaves room for any.
	if mtu < MinMTU4 || mtu > 0xffff || (mtu-hl)&^7 < 8 {
		return 0, 0, ErrMTU
	}
	payload := pkt[hl:]
	if offset < 0 || offset >= len(payload) || offset%8 != 0 {
		return 0, 0, ErrMalformed
	}
	fhl := hl
	if offset != 0 {
		fhl = 20 + copied
	}
	chunk, last := len(payload)-offset, true
	if fhl+chunk > mtu {
		chunk, last = (mtu-fhl)&^7, false
	}
	n = fhl + chunk
	if len(dst) < n {
		return 0, 0, ErrShortBuffer
	}
	if offset == 0 {
		copy(dst, pkt[:hl])
	} else {
		copy(dst, pkt[:20])
		dst[0] = 0x40 | byte(fhl/4)
		copyOptions(dst[20:fhl], pkt[20:hl])
	}
	copy(dst[fhl:n], payload[offset:offset+chunk])
	be.PutUint16(dst[2:], uint16(n))
	// The packet may itself be a fragment: its pieces continue at its own offset, and the last
	// piece keeps its MF flag.
	nfo := fo&0x1fff + uint16(offset/8)
	if !last || fo&0x2000 != 0 {
		nfo |= 0x2000
	}
	be.PutUint16(dst[6:], nfo)
	be.PutUint16(dst[10:], 0)
	be.PutUint16(dst[10:], ^inetsum.Fold(inetsum.Sum(dst[:fhl], 0)))
	if last {
		return n, 0, nil
	}
	return n, offset + chunk, nil
}

// parse4 checks pkt's IPv4 header and returns its header length, total length and the length of
// the options a non-first fragment copies (padded to 32 bits).
func parse4(pkt []byte) (hl, total, copied int, err error) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, 0, 0, ErrMalformed
	}
	hl = int(pkt[0]&0x0f) * 4
	total = int(be.Uint16(pkt[2:]))
	if hl < 20 || total < hl || total > len(pkt) {
		return 0, 0, 0, ErrMalformed
	}
	if int(be.Uint16(pkt[6:])&0x1fff)*8+total-hl > 0xffff {
		return 0, 0, 0, ErrMalformed
	}
	opts := pkt[20:hl]
	for i := 0; i < len(opts); {
		switch t := opts[i]; {
		case t == 0: // end of option list
			return hl, total, (copied + 3) &^ 3, nil
		case t == 1: // no operation
			i++
		default:
			if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
				return 0, 0, 0, ErrMalformed
			}
			if t&0x80 != 0 {
				copied += int(opts[i+1])
			}
			i += int(opts[i+1])
		}
	}
	return hl, total, (copied + 3) &^ 3, nil
}

// copyOptions writes into dst the options of opts (already validated by parse4) whose copied
// flag is set, then pads dst with end-of-list bytes.
func copyOptions(dst, opts []byte) {
	w := 0
	for i := 0; i < len(opts) && opts[i] != 0; {
		if opts[i] == 1 {
			i++
			continue
		}
		l := int(opts[i+1])
		if opts[i]&0x80 != 0 {
			w += copy(dst[w:], opts[i:i+l])
		}
		i += l
	}
	clear(dst[w:])
}

// Fragmenter splits one IPv4 packet into fragments, one per call to Next, over FragmentAt. The
// zero value is ready for Reset; it is reused from packet to packet and allocates nothing.
type Fragmenter struct {
	pkt   []byte
	mtu   int
	off   int
	count int
	done  bool
}

// Reset prepares f to fragment pkt so that no fragment exceeds mtu bytes. A packet with DF set
// is refused unless it fits.
func (f *Fragmenter) Reset(pkt []byte, mtu int) error {
	*f = Fragmenter{}
	hl, total, copied, err := parse4(pkt)
	if err != nil {
		return err
	}
	if total > mtu {
		if be.Uint16(pkt[6:])&0x4000 != 0 {
			return ErrDontFragment
		}
		if mtu < MinMTU4 || mtu > 0xffff || (mtu-hl)&^7 < 8 {
			return ErrMTU
		}
	}
	f.pkt, f.mtu, f.count = pkt, mtu, 1
	if total > mtu {
		// After the first fragment, every one but the last carries rest bytes; the last may
		// carry up to what the MTU leaves, not rounded to 8.
		left := total - hl - (mtu-hl)&^7
		rest := (mtu - 20 - copied) &^ 7
		f.count = 2 + (max(0, left-(mtu-20-copied))+rest-1)/rest
	}
	return nil
}

// Count returns how many fragments the packet given to Reset yields.
func (f *Fragmenter) Count() int { return f.count }

// Done reports whether every fragment has been written (or Reset was never called).
func (f *Fragmenter) Done() bool { return f.pkt == nil || f.done }

// Next writes the next fragment into dst and returns its length, or 0 once all fragments have
// been written. On ErrShortBuffer nothing is consumed.
func (f *Fragmenter) Next(dst []byte) (int, error) {
	if f.Done() {
		return 0, nil
	}
	n, next, err := FragmentAt(dst, f.pkt, f.mtu, f.off)
	if err != nil {
		return 0, err
	}
	f.off, f.done = next, next == 0
	return n, nil
}
