package packet

import "github.com/xdpsec/xdpsec/crypto/internal/inetsum"

// TCP flags a segment rewrite touches.
const (
	tcpFIN = 0x01
	tcpPSH = 0x08
	tcpCWR = 0x80
)

// Cut describes how one IP packet is cut into pieces that each carry a copy of its headers: TCP
// segments (software TSO, as the kernel's tcp_gso_segment cuts a GSO packet) or IPv4 fragments. The
// worker copies Hdr in front of each piece's payload and calls Fix; the rest (frames, sealing,
// queueing) is the worker's.
type Cut struct {
	Hdr []byte // the IP header and, for TCP, the TCP header
	L4  int    // offset of the L4 header in Hdr
	TCP bool   // segments; otherwise IPv4 fragments

	v4      bool
	id      uint16
	seq     uint32
	fragOff int // the packet's own fragment offset, in bytes
	fragMF  bool
}

// NewCut prepares cutting the packet whose headers are hdr (L4 header at l4): TCP segments when tcp,
// else IPv4 fragments.
func NewCut(hdr []byte, l4 int, tcp bool) Cut {
	c := Cut{Hdr: hdr, L4: l4, TCP: tcp, v4: hdr[0]>>4 == 4, id: be.Uint16(hdr[4:])}
	if tcp {
		c.seq = be.Uint32(hdr[l4+4:])
	} else {
		fo := be.Uint16(hdr[6:])
		c.fragOff, c.fragMF = int(fo&0x1fff)*8, fo&0x2000 != 0
	}
	return c
}

// Fix rewrites the headers of piece p — Hdr followed by the payload bytes from offset done of the
// packet's payload — as the i-th piece (from 0), the last one when last: IPv4 total length, ID (+i for
// segments) or fragment offset and MF, header checksum; IPv6 payload length; for TCP the sequence
// number, FIN and PSH on the last segment only, CWR on the first only, and a complete checksum.
func (c *Cut) Fix(p []byte, i, done int, last bool) {

	if c.v4 {
		be.PutUint16(p[2:], uint16(len(p)))
		if c.TCP {
			be.PutUint16(p[4:], c.id+uint16(i))
		} else {
			fo := uint16((c.fragOff + done) / 8)
			if !last || c.fragMF {
				fo |= 0x2000
			}
			be.PutUint16(p[6:], fo)
		}
		be.PutUint16(p[10:], 0)
		be.PutUint16(p[10:], ^inetsum.Fold(inetsum.Sum(p[:c.L4], 0)))
	} else {
		be.PutUint16(p[4:], uint16(len(p)-40))
	}
	if !c.TCP {
		return
	}
	t := p[c.L4:]
	be.PutUint32(t[4:], c.seq+uint32(done))
	flags := t[13]
	if !last {
		flags &^= tcpFIN | tcpPSH
	}
	if i > 0 {
		flags &^= tcpCWR
	}
	t[13] = flags
	be.PutUint16(t[16:], 0)
	var acc uint64
	if c.v4 {
		acc = inetsum.Sum(p[12:20], 0)
	} else {
		acc = inetsum.Sum(p[8:40], 0)
	}
	acc = inetsum.Add(acc, 6+uint64(len(t)))
	be.PutUint16(t[16:], ^inetsum.Fold(inetsum.Sum(t, acc)))
}
