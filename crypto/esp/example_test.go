package esp_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

// An SA built from ip-xfrm style parameters protects an inner IPv4 packet in
// tunnel mode; an SA with the same parameters on the other gateway takes it
// back out. Buffers carry esp.Headroom bytes in front and esp.Tailroom
// behind the packet.
func Example() {
	p := esp.Params{
		SPI:          0x1001,
		Src:          netip.MustParseAddr("198.18.0.1"),
		Dst:          netip.MustParseAddr("198.19.0.1"),
		Mode:         ipsec.ModeTunnel,
		AEAD:         esp.AEADAlg{Name: "rfc4106(gcm(aes))", Key: make([]byte, 20), ICVBits: 128}, // key ‖ salt
		ReplayWindow: 128,
	}
	out, err := esp.New(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	in, _ := esp.New(p)

	inner := make([]byte, 60) // an IPv4 header and 40 bytes of payload
	inner[0] = 0x45
	binary.BigEndian.PutUint16(inner[2:], uint16(len(inner)))
	inner[9] = 17

	buf := make([]byte, esp.Headroom+len(inner)+esp.Tailroom)
	copy(buf[esp.Headroom:], inner)
	start, end, err := out.Encap(buf, esp.Headroom, len(inner))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("outer packet:", end-start, "bytes, overhead", out.Overhead(len(inner)))

	wire := make([]byte, esp.Headroom+end-start)
	copy(wire[esp.Headroom:], buf[start:end])
	s, e, err := in.Decap(wire, esp.Headroom, end-start)
	fmt.Println("inner packet:", e-s, "bytes, err", err)

	// Decap worked in place, but the replay check comes first anyway.
	_, _, err = in.Decap(wire, esp.Headroom, end-start)
	r, _ := esp.ReasonOf(err)
	fmt.Println("again:", r, in.Counters().Errors[esp.ReasonReplay])
	// Output:
	// outer packet: 116 bytes, overhead 56
	// inner packet: 60 bytes, err <nil>
	// again: replay 1
}
