package pmtu

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Responder is the crypto worker's PMTU hook (crypto/worker.PMTU): it answers too-big inner
// packets in place and fragments IPv4 packets without DF. Its replies come from the gateway's
// addresses on the protected side and are rate-limited, as RFC 4443 §2.4(f) requires for ICMPv6
// and RFC 1812 §4.3.2.8 recommends for ICMPv4, so a flood of large packets cannot turn the gateway
// into an ICMP generator. One Responder serves every worker of a gateway.
type Responder struct {
	src4, src6 netip.Addr
	interval   int64 // ns between replies at the sustained rate
	burst      int64 // ns of credit: burst replies may go back to back
	tat        atomic.Int64
	now        func() int64

	// Sent counts replies built; Limited those the rate limit suppressed; Silent the packets that
	// must not be answered (ICMP errors, non-first fragments, non-unicast sources) or could not be
	// (malformed, no source address of that family, MTU below the IP version's minimum).
	Sent, Limited, Silent atomic.Uint64
}

// NewResponder returns a Responder replying from src4 / src6 (either may be invalid: that family
// is then never answered) at most rate replies per second on average with bursts of burst.
// rate <= 0 means no limit.
func NewResponder(src4, src6 netip.Addr, rate, burst int) *Responder {
	r := &Responder{src4: src4, src6: src6, now: monotonic}
	if rate > 0 {
		r.interval = int64(time.Second) / int64(rate)
		r.burst = int64(max(burst, 1)) * r.interval
	}
	return r
}

var start = time.Now()

func monotonic() int64 { return int64(time.Since(start)) }

// allow is a generic cell rate algorithm: one atomic "theoretical arrival time", no lock, no
// allocation, safe for every worker at once.
func (r *Responder) allow() bool {
	if r.interval == 0 {
		return true
	}
	now := r.now()
	for {
		tat := r.tat.Load()
		next := max(tat, now) + r.interval
		if next-now > r.burst {
			return false
		}
		if r.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// PacketTooBig turns the inner packet at buf[off:off+n] in place into an ICMPv4 "fragmentation
// needed" or ICMPv6 Packet Too Big for its sender, reporting mtu, and returns the reply at
// buf[start:end]. The headers go into the headroom in front of off (28 or 48 bytes), the quote
// is the packet's own first bytes where they already are. ok=false: send nothing, drop the packet.
func (r *Responder) PacketTooBig(buf []byte, off, n, mtu int) (start, end int, ok bool) {
	if off < 0 || n <= 0 || off+n > len(buf) {
		r.Silent.Add(1)
		return 0, 0, false
	}
	var hdr int
	var err error
	var m int
	switch buf[off] >> 4 {
	case 4:
		hdr = 28
		if off < hdr {
			break
		}
		if !r.allowFor(buf[off:off+n], true) {
			return 0, 0, false
		}
		m, err = FragNeeded(buf[off-hdr:], r.src4, buf[off:off+n], mtu)
	case 6:
		hdr = 48
		if off < hdr {
			break
		}
		if !r.allowFor(buf[off:off+n], false) {
			return 0, 0, false
		}
		m, err = PacketTooBig(buf[off-hdr:], r.src6, buf[off:off+n], mtu)
	}
	if m == 0 || err != nil {
		r.Silent.Add(1)
		return 0, 0, false
	}
	r.Sent.Add(1)
	return off - hdr, off - hdr + m, true
}

// allowFor spends a token only on packets that would be answered, so silence (an ICMP error
// quoting a too-big packet, say) does not eat the budget. The check repeats what FragNeeded and
// PacketTooBig decide, on the packet before it is overwritten.
func (r *Responder) allowFor(pkt []byte, v4 bool) bool {
	var scratch [0]byte
	var err error
	if v4 {
		_, err = FragNeeded(scratch[:], r.src4, pkt, MinMTU4)
	} else {
		_, err = PacketTooBig(scratch[:], r.src6, pkt, MinMTU6)
	}
	if err != ErrShortBuffer {
		// Refused for a reason other than the (deliberately empty) buffer.
		r.Silent.Add(1)
		return false
	}
	if !r.allow() {
		r.Limited.Add(1)
		return false
	}
	return true
}

// FragmentIPv4 writes into dst the fragment of pkt starting at payload offset offset, at most
// mtu bytes, and returns its length and the next fragment's offset (0 after the last); n == 0
// when pkt cannot be fragmented (DF set, malformed, mtu too small, dst too short).
func (r *Responder) FragmentIPv4(dst, pkt []byte, mtu, offset int) (n, next int) {
	n, next, err := FragmentAt(dst, pkt, mtu, offset)
	if err != nil {
		return 0, 0
	}
	return n, next
}
