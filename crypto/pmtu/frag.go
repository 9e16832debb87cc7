package pmtu

// Fragmenter splits one IPv4 packet into fragments (RFC 791 §3.2, "Fragmentation and
// Reassembly"), one fragment per call to Next, each written into a buffer the caller supplies.
// The zero value is ready for Reset; a Fragmenter is reused from packet to packet and allocates
// nothing.
type Fragmenter struct {
	pkt     []byte // the whole packet, up to its IP total length
	hl      int    // header length of the original
	mtu     int
	off     int // next payload byte of pkt (relative to the payload) to emit
	baseOff int // the packet's own fragment offset in bytes (it may itself be a fragment)
	lastMF  bool
	done    bool
	opts    [40]byte // options that non-first fragments copy (RFC 791: the copied flag)
	optLen  int      // length of opts, padded to a multiple of 4
}

// Reset prepares f to fragment pkt (an IPv4 packet without DF) so that no fragment exceeds mtu
// bytes. pkt is read, never written, until the last Next; bytes beyond its total length are
// ignored. A packet that already fits comes out as one unchanged copy.
func (f *Fragmenter) Reset(pkt []byte, mtu int) error {
	*f = Fragmenter{}
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return ErrMalformed
	}
	hl := int(pkt[0]&0x0f) * 4
	total := int(be.Uint16(pkt[2:]))
	if hl < 20 || total < hl || total > len(pkt) {
		return ErrMalformed
	}
	fo := be.Uint16(pkt[6:])
	if fo&0x4000 != 0 && total > mtu {
		return ErrDontFragment
	}
	// Every fragment but the last carries a multiple of 8 payload bytes; the first fragment's
	// header is the largest, so it decides whether mtu leaves room for any.
	if mtu < MinMTU4 || mtu > 0xffff || (total > mtu && (mtu-hl)&^7 < 8) {
		return ErrMTU
	}
	f.pkt, f.hl, f.mtu = pkt[:total], hl, mtu
	f.baseOff = int(fo&0x1fff) * 8
	if f.baseOff+total-hl > 0xffff {
		return ErrMalformed
	}
	f.lastMF = fo&0x2000 != 0
	// RFC 791: options with the copied flag set go into every fragment; the others only into
	// the first.
	opts := pkt[20:hl]
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of option list
			break
		}
		if t == 1 { // no operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return ErrMalformed
		}
		l := int(opts[i+1])
		if t&0x80 != 0 {
			f.optLen += copy(f.opts[f.optLen:], opts[i:i+l])
		}
		i += l
	}
	// Pad with end-of-list bytes to a whole number of 32-bit words.
	for f.optLen%4 != 0 {
		f.opts[f.optLen] = 0
		f.optLen++
	}
	return nil
}

// Done reports whether every fragment has been written (or Reset was never called).
func (f *Fragmenter) Done() bool { return f.pkt == nil || f.done }

// Count returns how many fragments the packet given to Reset yields.
func (f *Fragmenter) Count() int {
	if f.pkt == nil {
		return 0
	}
	payload := len(f.pkt) - f.hl
	if len(f.pkt) <= f.mtu {
		return 1
	}
	// After the first fragment, every one but the last carries rest bytes; the last may carry up
	// to what the MTU leaves, not rounded to 8.
	payload -= (f.mtu - f.hl) &^ 7
	rest := (f.mtu - 20 - f.optLen) &^ 7
	lastMax := f.mtu - 20 - f.optLen
	return 2 + (max(0, payload-lastMax)+rest-1)/rest
}

// Next writes the next fragment into dst and returns its length, or 0 once all fragments have
// been written. dst must hold at least min(mtu, total length) bytes, else ErrShortBuffer (and
// nothing is consumed).
func (f *Fragmenter) Next(dst []byte) (int, error) {
	if f.Done() {
		return 0, nil
	}
	payload := f.pkt[f.hl:]
	if len(f.pkt) <= f.mtu {
		if len(dst) < len(f.pkt) {
			return 0, ErrShortBuffer
		}
		f.done = true
		return copy(dst, f.pkt), nil
	}
	first := f.off == 0
	hl := f.hl
	if !first {
		hl = 20 + f.optLen
	}
	chunk := len(payload) - f.off
	last := true
	if hl+chunk > f.mtu {
		chunk, last = (f.mtu-hl)&^7, false
	}
	n := hl + chunk
	if len(dst) < n {
		return 0, ErrShortBuffer
	}
	if first {
		copy(dst, f.pkt[:hl])
	} else {
		copy(dst, f.pkt[:20])
		copy(dst[20:], f.opts[:f.optLen])
		dst[0] = 0x40 | byte(hl/4)
	}
	copy(dst[hl:n], payload[f.off:f.off+chunk])
	be.PutUint16(dst[2:], uint16(n))
	fo := uint16((f.baseOff + f.off) / 8)
	if !last || f.lastMF {
		fo |= 0x2000
	}
	be.PutUint16(dst[6:], fo)
	be.PutUint16(dst[10:], 0)
	be.PutUint16(dst[10:], ^fold(sum(dst[:hl], 0)))
	f.off += chunk
	f.done = last
	return n, nil
}
