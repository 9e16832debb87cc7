package bench

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/ipsec"
)

// StormPort is the UDP destination port of the inner packets of the storm's SA (replays, bad ICVs,
// the primer): the only traffic its policy covers. The sink on h2 counts what reaches it apart.
const StormPort = 7779

// The storm's kinds of bad packets, by their names in the report.
const (
	StormRunt       = "runt"        // ESP shorter than its own 8-byte header (SPI, sequence number)
	StormTruncated  = "truncated"   // ESP of the storm's SA, shorter than header + IV + ICV
	StormUnknownSPI = "unknown-spi" // ESP with an SPI no SA has, from h1 to h2: forged, towards the protected host
	StormReplay     = "replay"      // authentic ESP of the storm's SA, sequence numbers left of its window
	StormBadICV     = "bad-icv"     // ESP of the storm's SA, fresh sequence numbers, one ICV bit flipped
	StormGarbage    = "garbage"     // random bytes under the IPv4 ethertype (version nibble not 4)
)

// StormKinds lists the kinds in the order the report gives them.
var StormKinds = []string{StormRunt, StormTruncated, StormUnknownSPI, StormReplay, StormBadICV, StormGarbage}

// The storm's sequence numbers: the primer (one valid packet) moves the storm SA's window top to
// stormPrimerSeq, so that the replays' numbers 1 … N are left of any window (the largest is
// esp.MaxReplayWindow) and the bad-ICV packets' numbers, above it, are fresh.
const stormPrimerSeq = 1 << 20

// MaxStormPackets bounds the storm's packets per kind: the replays must stay left of the window.
const MaxStormPackets = stormPrimerSeq - esp.MaxReplayWindow - 1

// stormUnknownSPI0 is the first SPI of the unknown-SPI kind (no bench SA uses this range).
const stormUnknownSPI0 = 0xdead0000

// stormBuilder makes the storm's Ethernet frames, as gw1 would put them on the wire towards gw2.
type stormBuilder struct {
	dmac, smac   net.HardwareAddr // gw2's wire interface, gw1's
	outerSrc     netip.Addr       // the storm SA's outer addresses (gw1 → gw2 on the wire)
	outerDst     netip.Addr
	innerSrc     netip.Addr // h1 → h2
	innerDst     netip.Addr
	keys         Keys // the storm's SA
	innerPayload int  // UDP payload bytes of the inner packets
}

// sa is a crypto/esp SA with the storm SA's parameters whose next outbound packet has sequence
// number next.
func (b *stormBuilder) sa(next uint32) (*esp.SA, error) {
	return esp.New(esp.Params{SPI: b.keys.SPI, Mode: ipsec.ModeTunnel, Src: b.outerSrc, Dst: b.outerDst,
		AEAD: esp.AEADAlg{Name: b.keys.Alg, Key: b.keys.Key, ICVBits: 128}, ReplayWindow: 128, Seq: uint64(next) - 1})
}

// inner is the UDP packet h1 → h2:StormPort the storm SA's packets carry.
func (b *stormBuilder) inner() []byte {
	udp := make([]byte, 8+b.innerPayload)
	binary.BigEndian.PutUint16(udp[0:], StormPort)
	binary.BigEndian.PutUint16(udp[2:], StormPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], "xdpsec bench storm")
	return testbed.IPv4Frame(nil, nil, b.innerSrc, b.innerDst, 17, udp)[14:]
}

// esp returns n authentic ESP frames of the storm's SA with sequence numbers first, first+1, ….
func (b *stormBuilder) esp(first uint32, n int) ([][]byte, error) {
	sa, err := b.sa(first)
	if err != nil {
		return nil, err
	}
	defer sa.Wipe()
	pkt := b.inner()
	out := make([][]byte, 0, n)
	buf := make([]byte, esp.Headroom+len(pkt)+esp.Tailroom)
	for range n {
		copy(buf[esp.Headroom:], pkt)
		s, e, err := sa.Encap(buf, esp.Headroom, len(pkt))
		if err != nil {
			return nil, err
		}
		out = append(out, ethernet(b.dmac, b.smac, buf[s:e]))
	}
	return out, nil
}

// primer is the one valid packet that moves the storm SA's window top to stormPrimerSeq.
func (b *stormBuilder) primer() ([]byte, error) {
	f, err := b.esp(stormPrimerSeq, 1)
	if err != nil {
		return nil, err
	}
	return f[0], nil
}

// replays are authentic packets with sequence numbers 1 … n: left of the window once the primer
// has been accepted.
func (b *stormBuilder) replays(n int) ([][]byte, error) {
	if n > MaxStormPackets {
		return nil, fmt.Errorf("storm: %d replays do not fit left of the window", n)
	}
	return b.esp(1, n)
}

// badICVs are packets with fresh sequence numbers (above the primer's) whose ICV's last bit is
// flipped: the worker must refuse them for integrity, and they must not move the window.
func (b *stormBuilder) badICVs(n int) ([][]byte, error) {
	fs, err := b.esp(stormPrimerSeq+1, n)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		f[len(f)-1] ^= 1 // the ICV is the packet's last 16 bytes
	}
	return fs, nil
}

// truncated are ESP packets of the storm's SA with a sequence number and 12 more bytes: shorter than
// the 8-byte IV and 16-byte ICV they must hold, but long enough for the card's ESP header check,
// so it is the worker that refuses them.
func (b *stormBuilder) truncated(n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := range n {
		e := make([]byte, 8+12)
		binary.BigEndian.PutUint32(e[0:], b.keys.SPI)
		binary.BigEndian.PutUint32(e[4:], stormPrimerSeq+1+uint32(i))
		rand.Read(e[8:])
		out = append(out, testbed.IPv4Frame(b.dmac, b.smac, b.outerSrc, b.outerDst, 50, e))
	}
	return out
}

// runts are ESP packets of 1 to 7 bytes, the storm SA's SPI cut short: the card's parser must refuse
// them (the IP header is sound).
func (b *stormBuilder) runts(n int) [][]byte {
	out := make([][]byte, 0, n)
	var spi [4]byte
	binary.BigEndian.PutUint32(spi[:], b.keys.SPI)
	for i := range n {
		e := make([]byte, 1+i%7)
		copy(e, spi[:])
		out = append(out, testbed.IPv4Frame(b.dmac, b.smac, b.outerSrc, b.outerDst, 50, e))
	}
	return out
}

// unknownSPIs are ESP packets with SPIs no SA holds, addressed from h1 to h2: a forged packet towards
// a protected host, which the card must leave to the inbound SPD (which requires ESP for that
// traffic: InTmplMismatch).
func (b *stormBuilder) unknownSPIs(n int) [][]byte {
	out := make([][]byte, 0, n)
	for i := range n {
		e := make([]byte, 8+8+len(b.inner())+2+16)
		binary.BigEndian.PutUint32(e[0:], stormUnknownSPI0+uint32(i))
		binary.BigEndian.PutUint32(e[4:], 1+uint32(i))
		rand.Read(e[8:])
		out = append(out, testbed.IPv4Frame(b.dmac, b.smac, b.innerSrc, b.innerDst, 50, e))
	}
	return out
}

// garbage are frames of random bytes (14 to 200) under the IPv4 ethertype whose first byte's version
// nibble is not 4: the card's IPv4 parser must refuse them.
func (b *stormBuilder) garbage(n int) [][]byte {
	out := make([][]byte, 0, n)
	for range n {
		p := make([]byte, 14+mrand.IntN(187))
		rand.Read(p)
		if p[0]>>4 == 4 {
			p[0] ^= 0x80
		}
		out = append(out, ethernet(b.dmac, b.smac, p))
	}
	return out
}

// frames returns every kind's frames, n each.
func (b *stormBuilder) frames(n int) (map[string][][]byte, error) {
	rep, err := b.replays(n)
	if err != nil {
		return nil, err
	}
	bad, err := b.badICVs(n)
	if err != nil {
		return nil, err
	}
	return map[string][][]byte{StormRunt: b.runts(n), StormTruncated: b.truncated(n), StormUnknownSPI: b.unknownSPIs(n),
		StormReplay: rep, StormBadICV: bad, StormGarbage: b.garbage(n)}, nil
}

// interleave orders the kinds' frames round robin (so each kind is spread over the storm).
func interleave(byKind map[string][][]byte) (frames [][]byte, kinds []string) {
	for i := 0; ; i++ {
		added := false
		for _, k := range StormKinds {
			if fs := byKind[k]; i < len(fs) {
				frames, kinds = append(frames, fs[i]), append(kinds, k)
				added = true
			}
		}
		if !added {
			return frames, kinds
		}
	}
}

// ethernet puts p behind an Ethernet header with the IPv4 ethertype.
func ethernet(dmac, smac net.HardwareAddr, p []byte) []byte {
	f := make([]byte, 14+len(p))
	copy(f[0:6], dmac)
	copy(f[6:12], smac)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	copy(f[14:], p)
	return f
}
