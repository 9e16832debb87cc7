package testbed

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/xdpsec/xdpsec/internal/nsenter"
)

// InNS runs fn on an OS thread that has entered node n's namespace (nsenter.Run). Sockets fn opens
// stay in n's namespace; the goroutines that later use them may run anywhere.
func (tb *Testbed) InNS(n Node, fn func() error) error {
	h, err := tb.NsHandle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := nsenter.Run(h, fn); err != nil {
		return fmt.Errorf("in %s: %w", tb.NetNS(n), err)
	}
	return nil
}

// MAC returns the hardware address of interface dev in node n.
func (tb *Testbed) MAC(ctx context.Context, n Node, dev string) (net.HardwareAddr, error) {
	out, err := tb.Run(ctx, n, "cat", "/sys/class/net/"+dev+"/address")
	if err != nil {
		return nil, err
	}
	return net.ParseMAC(strings.TrimSpace(out))
}

// UDPFrame returns a 64-byte Ethernet frame (60 bytes + FCS) from h1 to h2,
// addressed to gw1's LAN port: IPv4 UDP to the discard port (9) with an
// 18-byte zero payload and no UDP checksum (RFC 768). Benchmarks inject it
// into gw1 as a minimum-size packet to protect.
func (tb *Testbed) UDPFrame(ctx context.Context) ([]byte, error) {
	t := &tb.topo
	dmac, err := tb.MAC(ctx, GW1, t.GW1LAN.Dev)
	if err != nil {
		return nil, err
	}
	smac, err := tb.MAC(ctx, H1, t.H1.Dev)
	if err != nil {
		return nil, err
	}
	udp := make([]byte, 26) // 18 zero bytes of payload: a 60-byte frame
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], 26) // checksum 0: none (RFC 768)
	return IPv4Frame(dmac, smac, t.H1.Addr(false), t.H2.Addr(false), 17, udp), nil
}

// IPv4Frame builds an Ethernet frame carrying an IPv4 packet from src to dst (no options, TTL 64,
// the header checksum set) with l4 as its payload, as tests inject it with raw sockets.
func IPv4Frame(dmac, smac net.HardwareAddr, src, dst netip.Addr, proto byte, l4 []byte) []byte {
	f := make([]byte, 14+20+len(l4))
	copy(f[0:6], dmac)
	copy(f[6:12], smac)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	copy(ip[20:], l4)
	return f
}
