package esp

import (
	"crypto/hmac"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"

	"github.com/xdpsec/xdpsec/ipsec"
)

// Decap verifies and decrypts the outer packet at buf[off:off+n] in place and
// returns the inner packet (tunnel mode) or the rebuilt IP packet (transport
// mode) at buf[start:end]. buf must hold Headroom bytes before off (scratch
// space); bytes beyond the outer packet's IP length are ignored.
//
// The order follows RFC 4303 §3.4: the replay window is consulted first (a
// cheap drop for duplicates), then the ICV is verified in constant time (for
// encrypt-then-MAC before any decryption; an AEAD authenticates and decrypts
// in one pass and clears its output on failure), and only then is the window
// updated, so forged packets cannot move it. Padding and next header are
// checked last.
//
// On error the error is one of the sentinels (see Reason) and its counter
// was incremented; buf may have been changed. A packet that fails the ICV is
// never decrypted into buf (AEAD Open clears its output on failure); a
// packet refused after the ICV (padding, next header) leaves its authentic
// plaintext in buf, which the caller drops with the frame.
func (sa *SA) Decap(buf []byte, off, n int) (start, end int, err error) {
	st := sa.st.Load()
	if st == nil {
		return sa.fail(ErrWiped)
	}
	if off < Headroom || n < 0 || off+n < off || off+n > len(buf) {
		return sa.fail(ErrNoRoom)
	}
	if n == 0 {
		return sa.fail(ErrTruncated)
	}
	pkt := buf[off : off+n]
	var (
		hl    int  // outer IP header bytes (with IPv6 extension headers)
		nhOff = 9  // offset of the protocol / next-header byte naming ESP or UDP
		proto byte // protocol after the IP header(s)
		tos   byte // outer DSCP+ECN
	)
	switch pkt[0] >> 4 {
	case 4:
		if sa.outer6 {
			return sa.fail(ErrBadHeader)
		}
		if n < 20 {
			return sa.fail(ErrTruncated)
		}
		hl = int(pkt[0]&0xf) * 4
		tot := int(be.Uint16(pkt[2:]))
		if hl < 20 || tot < hl {
			return sa.fail(ErrBadHeader)
		}
		if tot > n {
			return sa.fail(ErrTruncated)
		}
		if inetsum.Fold(inetsum.Sum(pkt[:hl], 0)) != 0xffff {
			return sa.fail(ErrBadHeader)
		}
		if be.Uint16(pkt[6:])&0x3fff != 0 {
			return sa.fail(ErrFragment)
		}
		n, proto, tos = tot, pkt[9], pkt[1]
	case 6:
		if !sa.outer6 {
			return sa.fail(ErrBadHeader)
		}
		if n < 40 {
			return sa.fail(ErrTruncated)
		}
		tot := 40 + int(be.Uint16(pkt[4:]))
		if tot > n {
			return sa.fail(ErrTruncated)
		}
		n = tot
		var e *Error
		if hl, proto, nhOff, e = walkExt6(pkt[:n]); e != nil {
			return sa.fail(e)
		}
		tos = byte(be.Uint16(pkt[0:]) >> 4)
	default:
		return sa.fail(ErrBadHeader)
	}
	pkt = pkt[:n]

	e := off + hl // start of the ESP header
	switch proto {
	case protoESP:
		if sa.udp {
			// The SA was negotiated with UDP encapsulation (RFC 3948): plain
			// ESP is not its traffic (Linux: XfrmInStateMismatch).
			return sa.fail(ErrNotESP)
		}
	case protoUDP:
		if !sa.udp {
			return sa.fail(ErrNotESP)
		}
		if n-hl < 8 {
			return sa.fail(ErrTruncated)
		}
		u := pkt[hl:]
		if be.Uint16(u[2:]) != sa.dport {
			return sa.fail(ErrNotESP)
		}
		if int(be.Uint16(u[4:])) != n-hl {
			return sa.fail(ErrBadHeader)
		}
		u = u[8:]
		// RFC 3948 §2.2/§2.3: a zero non-ESP marker means IKE; one 0xff
		// byte is a NAT-keepalive.
		if len(u) == 1 && u[0] == 0xff || len(u) >= 4 && be.Uint32(u) == 0 {
			return sa.fail(ErrNotESP)
		}
		e += 8
	default:
		return sa.fail(ErrNotESP)
	}

	end = off + n
	if end-e < 8 {
		return sa.fail(ErrTruncated)
	}
	if be.Uint32(buf[e:]) != sa.spi {
		return sa.fail(ErrWrongSPI)
	}
	payloadStart := e + 8 + sa.ivLen
	icvPos := end - sa.icvLen
	ctLen := icvPos - payloadStart
	if ctLen < 2 || ctLen%sa.align != 0 && sa.kind == kindCBC {
		return sa.fail(ErrTruncated)
	}

	seq, ok := sa.inferSeq(be.Uint32(buf[e+4:]))
	if !ok || !sa.window.Check(seq) {
		return sa.fail(ErrReplay)
	}

	iv := buf[e+8 : payloadStart]
	scratch := buf[off-Headroom : off-Headroom+scratchLen : off-Headroom+scratchLen]
	switch sa.kind {
	case kindGCM, kindChaCha, kindGMAC:
		nonce := scratch[0:12]
		copy(nonce, st.salt)
		copy(nonce[4:], iv)
		if sa.kind == kindGMAC {
			if !sa.gmac(st, buf, e, icvPos, seq, nonce, true) {
				return sa.fail(ErrICV)
			}
		} else {
			// Open compares the tag in constant time and clears its
			// output when it does not match, so no unauthenticated
			// plaintext is left in buf.
			aad := sa.aad(buf, e, seq, scratch)
			if _, err := st.aead.Open(buf[payloadStart:payloadStart], nonce, buf[payloadStart:end], aad); err != nil {
				return sa.fail(ErrICV)
			}
		}
	case kindCBC, kindNull:
		es := st.pool.get()
		// Keep the received ICV aside: with ESN the high half is written
		// where it lies.
		recv := scratch[40:56]
		copy(recv, buf[icvPos:end])
		sum := sa.hmacICV(es, buf, e, icvPos, seq, scratch)
		if !hmac.Equal(sum[:sa.icvLen], recv[:sa.icvLen]) {
			st.pool.put(es)
			return sa.fail(ErrICV)
		}
		if sa.kind == kindCBC {
			es.dec.(ivSetter).SetIV(iv)
			es.dec.CryptBlocks(buf[payloadStart:icvPos], buf[payloadStart:icvPos])
		}
		st.pool.put(es)
	}
	if !sa.window.Accept(seq) {
		return sa.fail(ErrReplay) // a concurrent worker accepted the same number
	}

	padLen := int(buf[icvPos-2])
	nh := buf[icvPos-1]
	if padLen+2 > ctLen {
		return sa.fail(ErrBadPadding)
	}
	padStart := icvPos - 2 - padLen
	for i := range padLen {
		if buf[padStart+i] != byte(i+1) {
			return sa.fail(ErrBadPadding)
		}
	}
	if nh == protoNoNext {
		return sa.fail(ErrDummy)
	}
	pl := padStart - payloadStart

	if sa.mode == ipsec.ModeTunnel {
		in := buf[payloadStart:padStart]
		var inLen int
		switch nh {
		case protoIPIP:
			if pl < 20 || in[0]>>4 != 4 {
				return sa.fail(ErrBadNextHeader)
			}
			inLen = int(be.Uint16(in[2:]))
			if ihl := int(in[0]&0xf) * 4; ihl < 20 || inLen < ihl || inLen > pl {
				return sa.fail(ErrBadHeader)
			}
		case protoIPv6:
			if pl < 40 || in[0]>>4 != 6 {
				return sa.fail(ErrBadNextHeader)
			}
			inLen = 40 + int(be.Uint16(in[4:]))
			if inLen > pl {
				return sa.fail(ErrBadHeader)
			}
		default:
			return sa.fail(ErrBadNextHeader)
		}
		if e := decapECN(in, tos&3); e != nil {
			return sa.fail(e)
		}
		sa.ctr.inPackets.Add(1)
		sa.ctr.inBytes.Add(uint64(inLen))
		return payloadStart, payloadStart + inLen, nil
	}

	// Transport: the IP header moves back to meet the payload.
	start = payloadStart - hl
	copy(buf[start:payloadStart], buf[off:off+hl])
	h := buf[start:payloadStart]
	h[nhOff] = nh
	if sa.outer6 {
		be.PutUint16(h[4:], uint16(hl-40+pl))
	} else {
		be.PutUint16(h[2:], uint16(hl+pl))
		h[10], h[11] = 0, 0
		be.PutUint16(h[10:], ipv4Checksum(h))
	}
	sa.ctr.inPackets.Add(1)
	sa.ctr.inBytes.Add(uint64(hl + pl))
	return start, padStart, nil
}

// inferSeq rebuilds the 64-bit sequence number from the low 32 bits on the
// wire: without ESN it is those bits; with ESN the high half is inferred from
// the top of the replay window as in RFC 4303 Appendix A2.1. ok is false
// when the number would lie before the first one (high half below zero).
func (sa *SA) inferSeq(lo uint32) (seq uint64, ok bool) {
	if !sa.esn {
		return uint64(lo), true
	}
	top := sa.window.Top()
	th, tl := uint32(top>>32), uint32(top)
	w := sa.window.Size()
	if w == 0 {
		w = 1 << 31 // no window: pick the half of the number space around the top
	}
	var hi uint32
	if tl >= w-1 { // case A: the window lies within one high-half epoch
		hi = th
		if lo < tl-w+1 {
			hi = th + 1
		}
	} else { // case B: the window spans the previous epoch's end
		hi = th
		if lo >= tl-w+1 { // wraps: lo is in the previous epoch
			if th == 0 {
				return 0, false
			}
			hi = th - 1
		}
	}
	return uint64(hi)<<32 | uint64(lo), true
}

// decapECN combines the outer ECN field into the inner header as RFC 6040
// §4.2 (normal mode) says; in the inner IPv4 header it updates the checksum
// incrementally (RFC 1624).
func decapECN(in []byte, outer byte) *Error {
	const (
		notECT = 0
		ect1   = 1
		ect0   = 2
		ce     = 3
	)
	var inner byte
	if in[0]>>4 == 4 {
		inner = in[1] & 3
	} else {
		inner = byte(be.Uint16(in[0:])>>4) & 3
	}
	newECN := inner
	switch {
	case outer == ce && inner == notECT:
		return ErrECN
	case outer == ce:
		newECN = ce
	case outer == ect1 && inner == ect0:
		newECN = ect1
	}
	if newECN == inner {
		return nil
	}
	if in[0]>>4 == 4 {
		old := be.Uint16(in[0:])
		in[1] = in[1]&^3 | newECN
		nw := be.Uint16(in[0:])
		// RFC 1624 eq. 3: HC' = ~(~HC + ~m + m').
		acc := uint64(^be.Uint16(in[10:])) + uint64(^old) + uint64(nw)
		be.PutUint16(in[10:], ^inetsum.Fold(acc))
	} else {
		v := be.Uint16(in[0:])
		be.PutUint16(in[0:], v&^(3<<4)|uint16(newECN)<<4)
	}
	return nil
}
