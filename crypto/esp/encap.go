package esp

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/crypto/internal/inetsum"

	"github.com/xdpsec/xdpsec/ipsec"
)

const (
	protoIPIP   = 4
	protoUDP    = 17
	protoIPv6   = 41
	protoESP    = 50
	protoNoNext = 59 // RFC 4303 §2.6 dummy packet
	protoHBH    = 0
	protoRoute  = 43
	protoFrag   = 44
	protoDstOpt = 60
)

var be = binary.BigEndian

// Encap protects the inner packet at buf[off:off+n] in place and returns the
// outer packet at buf[start:end]: in tunnel mode a new outer IP header
// [+ UDP] + ESP; in transport mode the packet's own IP header (moved forward,
// with protocol, length and checksum rewritten) + [UDP] + ESP. buf must hold
// Headroom bytes before off and Tailroom bytes after off+n. Bytes beyond an
// IP packet's own length (e.g. Ethernet padding) are ignored.
//
// On error nothing was sent, the error is one of the sentinels (see Reason)
// and its counter was incremented; buf may have been changed.
func (sa *SA) Encap(buf []byte, off, n int) (start, end int, err error) {
	st := sa.st.Load()
	if st == nil {
		return sa.fail(ErrWiped)
	}
	if off < Headroom || n < 0 || off+n < off || off+n+Tailroom > len(buf) {
		return sa.fail(ErrNoRoom)
	}
	pkt := buf[off : off+n]
	var (
		hl    int  // transport: IP header bytes kept in front of ESP
		nh    byte // ESP next header
		nhOff = 9  // transport: offset of the protocol / next-header byte to rewrite
		tos   byte // inner DSCP+ECN
		df    bool
		inLen int
	)
	if n == 0 {
		return sa.fail(ErrBadHeader)
	}
	switch pkt[0] >> 4 {
	case 4:
		if n < 20 {
			return sa.fail(ErrBadHeader)
		}
		ihl := int(pkt[0]&0xf) * 4
		inLen = int(be.Uint16(pkt[2:]))
		if ihl < 20 || inLen < ihl || inLen > n {
			return sa.fail(ErrBadHeader)
		}
		tos, df = pkt[1], pkt[6]&0x40 != 0
		if sa.mode == ipsec.ModeTunnel {
			nh = protoIPIP
		} else {
			if sa.outer6 {
				return sa.fail(ErrBadHeader)
			}
			// RFC 4303 §3.1.1: transport mode protects whole datagrams only.
			if be.Uint16(pkt[6:])&0x3fff != 0 {
				return sa.fail(ErrFragment)
			}
			// The header is rewritten with a fresh checksum: a corrupt one
			// must not be laundered.
			if inetsum.Fold(inetsum.Sum(pkt[:ihl], 0)) != 0xffff {
				return sa.fail(ErrBadHeader)
			}
			hl, nh = ihl, pkt[9]
		}
	case 6:
		if n < 40 {
			return sa.fail(ErrBadHeader)
		}
		inLen = 40 + int(be.Uint16(pkt[4:]))
		if inLen > n {
			return sa.fail(ErrBadHeader)
		}
		tos, df = byte(be.Uint16(pkt[0:])>>4), true
		if sa.mode == ipsec.ModeTunnel {
			nh = protoIPv6
		} else {
			if !sa.outer6 {
				return sa.fail(ErrBadHeader)
			}
			var e *Error
			if hl, nh, nhOff, e = walkExt6(pkt[:inLen]); e != nil {
				return sa.fail(e)
			}
		}
	default:
		return sa.fail(ErrBadHeader)
	}

	payloadStart := off + hl
	pl := inLen - hl
	padded := pl
	if sa.mode == ipsec.ModeTunnel && pl < sa.tfcPadTo {
		padded = sa.tfcPadTo
	}
	padLen := sa.padLen(padded)
	icvPos := payloadStart + padded + padLen + 2
	end = icvPos + sa.icvLen
	if end+4 > len(buf) { // +4: the ESN high half is placed behind the trailer for HMAC
		return sa.fail(ErrNoRoom)
	}
	e := payloadStart - 8 - sa.ivLen
	front := sa.frontHdrLen(hl)
	start = e - front
	if end-start > MaxPacket {
		return sa.fail(ErrTooBig)
	}
	seq, serr := sa.nextSeq()
	if serr != nil {
		return sa.fail(serr)
	}

	if sa.mode == ipsec.ModeTransport {
		// The header must leave before the ESP header overwrites it.
		copy(buf[start:start+hl], buf[off:off+hl])
	}
	t := payloadStart + pl
	if padded > pl {
		clear(buf[t : payloadStart+padded]) // TFC padding (RFC 4303 §2.7)
	}
	t = payloadStart + padded
	for i := range padLen {
		buf[t+i] = byte(i + 1) // RFC 4303 §2.4: 1, 2, 3, …
	}
	buf[t+padLen] = byte(padLen)
	buf[t+padLen+1] = nh
	if sa.trailerFunc != nil {
		sa.trailerFunc(buf[t:icvPos])
	}

	be.PutUint32(buf[e:], sa.spi)
	be.PutUint32(buf[e+4:], uint32(seq))
	scratch := buf[off-Headroom : off-Headroom+scratchLen : off-Headroom+scratchLen]

	switch sa.kind {
	case kindGCM, kindChaCha, kindGMAC:
		// The explicit IV goes into the packet and, behind the salt, into
		// the nonce, both written from a register.
		iv := buf[e+8 : e+16]
		var ivv uint64
		if sa.ivFunc != nil {
			sa.ivFunc(seq, iv)
			ivv = be.Uint64(iv)
		} else {
			// RFC 4106 §3.1 / RFC 7634 §2 / RFC 4543 §3.1: the IV must
			// never repeat under a key. seq never repeats and XOR with a
			// fixed mask is a bijection (iv.go).
			ivv = seq ^ sa.ivMask
			be.PutUint64(iv, ivv)
		}
		nonce := scratch[0:12]
		be.PutUint32(nonce, be.Uint32(st.salt))
		be.PutUint64(nonce[4:], ivv)
		if sa.kind == kindGMAC {
			sa.gmac(st, buf, e, icvPos, seq, nonce, false)
		} else {
			aad := sa.aad(buf, e, seq, scratch)
			st.aead.Seal(buf[payloadStart:payloadStart], nonce, buf[payloadStart:icvPos], aad)
		}
	case kindCBC, kindNull:
		sa.sealETM(st, buf, e, payloadStart, icvPos, seq, scratch)
	}

	if sa.udp {
		u := buf[e-8 : e]
		be.PutUint16(u[0:], sa.sport)
		be.PutUint16(u[2:], sa.dport)
		be.PutUint16(u[4:], uint16(end-(e-8)))
		be.PutUint16(u[6:], 0) // RFC 3948 §2.1: zero over IPv4
	}
	if sa.mode == ipsec.ModeTunnel {
		if sa.outer6 {
			h := (*[40]byte)(buf[start : start+40])
			*h = sa.hdr
			be.PutUint32(h[0:], 6<<28|uint32(tos)<<20)
			be.PutUint16(h[4:], uint16(end-start-40))
		} else {
			h := (*[20]byte)(buf[start : start+20])
			*h = [20]byte(sa.hdr[:20])
			h[1] = tos // DSCP copied (RFC 4301 §5.1.2.1), ECN copied (RFC 6040 §4.1 normal mode)
			tot := uint16(end - start)
			be.PutUint16(h[2:], tot)
			id := uint16(seq) // unique per SA for 65536 packets (RFC 6864)
			be.PutUint16(h[4:], id)
			var frag uint16
			if sa.df == DFSet || (sa.df == DFCopy && df) {
				frag = 0x4000
			}
			be.PutUint16(h[6:], frag)
			// The template's sum plus the fields that were zero in it.
			sum := sa.hdrSum + uint32(tos) + uint32(tot) + uint32(id) + uint32(frag)
			be.PutUint16(h[10:], ^inetsum.Fold(uint64(sum)))
		}
	} else {
		sa.transportHdr(buf[start:end], hl, nhOff)
	}
	if sa.udp && sa.outer6 {
		// A zero UDP checksum is not allowed over IPv6 (RFC 8200 §8.1).
		h := buf[start : start+40]
		u := buf[e-8 : end]
		be.PutUint16(u[6:], udp6Checksum(h[8:24], h[24:40], u))
	}

	// The packet count is the sequence counter's (Counters).
	sa.out.bytes.Add(uint64(inLen))
	return start, end, nil
}

// sealETM encrypts (CBC) and authenticates (HMAC-SHA-256) the ESP packet
// at buf[e:icvPos], writing the ICV behind it: the encrypt-then-MAC suites,
// out of Encap's AEAD path.
func (sa *SA) sealETM(st *state, buf []byte, e, payloadStart, icvPos int, seq uint64, scratch []byte) {
	es := st.pool.get()
	if sa.kind == kindCBC {
		iv := buf[e+8 : e+8+sa.ivLen]
		if sa.ivFunc != nil {
			sa.ivFunc(seq, iv)
		} else {
			es.nextIV(iv)
		}
		es.enc.(ivSetter).SetIV(iv)
		es.enc.CryptBlocks(buf[payloadStart:icvPos], buf[payloadStart:icvPos])
	}
	sum := sa.hmacICV(es, buf, e, icvPos, seq, scratch)
	copy(buf[icvPos:icvPos+sa.icvLen], sum[:sa.icvLen])
	st.pool.put(es)
}

// transportHdr fixes up the packet's own IP header of hl bytes, moved to the
// front of the outer packet p: next header ESP (or UDP), the new length and,
// for IPv4, the checksum.
func (sa *SA) transportHdr(p []byte, hl, nhOff int) {
	p[nhOff] = protoESP
	if sa.udp {
		p[nhOff] = protoUDP
	}
	if sa.outer6 {
		be.PutUint16(p[4:], uint16(len(p)-40))
		return
	}
	be.PutUint16(p[2:], uint16(len(p)))
	p[10], p[11] = 0, 0
	be.PutUint16(p[10:], ipv4Checksum(p[:hl]))
}

// padLen returns the RFC 4303 §2.4 padding for a payload of n bytes: the
// ciphertext (payload, padding, pad length, next header) must fill whole
// cipher blocks and end on a 4-byte boundary.
func (sa *SA) padLen(n int) int {
	return -(n + 2) & (sa.align - 1) // align is 4 or 16: a mask, not a division
}

// frontHdrLen is the header bytes in front of the ESP header: the outer IP
// header in tunnel mode or the kept header of hl bytes in transport mode,
// plus UDP.
func (sa *SA) frontHdrLen(hl int) int {
	f := hl
	if sa.mode == ipsec.ModeTunnel {
		f = 20
		if sa.outer6 {
			f = 40
		}
	}
	if sa.udp {
		f += 8
	}
	return f
}

// frontLen returns the bytes Encap adds in front of a packet (in transport
// mode the packet's own headers move forward; they are not added).
func (sa *SA) frontLen() int {
	f := 8 + sa.ivLen
	if sa.mode == ipsec.ModeTunnel {
		f += sa.frontHdrLen(0)
	} else if sa.udp {
		f += 8
	}
	return f
}

// trailerLen returns padding + pad length + next header + ICV for an
// n-byte payload.
func (sa *SA) trailerLen(n int) int {
	return sa.padLen(n) + 2 + sa.icvLen
}

// aad returns the AEAD additional data: SPI ‖ sequence number, which is in
// the packet already, or with ESN SPI ‖ high ‖ low in scratch (RFC 4106 §5,
// RFC 7634 §2.1).
func (sa *SA) aad(buf []byte, e int, seq uint64, scratch []byte) []byte {
	if !sa.esn {
		return buf[e : e+8]
	}
	a := scratch[12:24]
	be.PutUint32(a[0:], sa.spi)
	be.PutUint64(a[4:], seq)
	return a
}

// gmac computes (open=false) or verifies (open=true) the RFC 4543 ICV at
// buf[icvPos:icvPos+16]. Its AAD is SPI ‖ sequence number ‖ IV ‖ payload
// ‖ trailer, contiguous in the packet except for the ESN high half, which
// is spliced in by borrowing the 4 bytes in front of the ESP header.
func (sa *SA) gmac(st *state, buf []byte, e, icvPos int, seq uint64, nonce []byte, open bool) bool {
	aadStart := e
	var saved uint32
	if sa.esn {
		saved = be.Uint32(buf[e-4:])
		be.PutUint32(buf[e-4:], sa.spi)
		be.PutUint32(buf[e:], uint32(seq>>32))
		aadStart = e - 4
	}
	ok := true
	if open {
		_, err := st.aead.Open(buf[icvPos:icvPos], nonce, buf[icvPos:icvPos+sa.icvLen], buf[aadStart:icvPos])
		ok = err == nil
	} else {
		st.aead.Seal(buf[icvPos:icvPos], nonce, nil, buf[aadStart:icvPos])
	}
	if sa.esn {
		be.PutUint32(buf[e:], sa.spi)
		be.PutUint32(buf[e-4:], saved)
	}
	return ok
}

// hmacICV returns the full HMAC-SHA-256 over ESP header ‖ IV ‖ ciphertext
// [‖ ESN high half, RFC 4303 §3.3.2.1], in scratch. With ESN it writes the
// high half at buf[icvPos:icvPos+4] (behind the trailer, where the ICV goes).
func (sa *SA) hmacICV(es *etmState, buf []byte, e, icvPos int, seq uint64, scratch []byte) []byte {
	m := es.mac
	m.Reset()
	if sa.esn {
		be.PutUint32(buf[icvPos:], uint32(seq>>32))
		m.Write(buf[e : icvPos+4])
	} else {
		m.Write(buf[e:icvPos])
	}
	return m.Sum(scratch[:0])
}

// walkExt6 finds where ESP goes in a transport-mode IPv6 packet: after the
// hop-by-hop, routing and destination options headers (RFC 4303 §3.1.1). It
// returns the length of the headers kept in front, the upper protocol, and
// the offset of the next-header byte that must become ESP.
func walkExt6(p []byte) (hl int, nh byte, nhOff int, err *Error) {
	hl, nh, nhOff = 40, p[6], 6
	for nh == protoHBH || nh == protoRoute || nh == protoDstOpt {
		if hl+8 > len(p) {
			return 0, 0, 0, ErrBadHeader
		}
		nhOff = hl
		nh = p[hl]
		hl += (int(p[hl+1]) + 1) * 8
		if hl > len(p) {
			return 0, 0, 0, ErrBadHeader
		}
	}
	if nh == protoFrag {
		return 0, 0, 0, ErrFragment
	}
	return hl, nh, nhOff, nil
}
