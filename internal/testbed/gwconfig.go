package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// ESP algorithm names as ip xfrm spells them (crypto/esp accepts these).
const (
	AlgAESGCM = "rfc4106(gcm(aes))"
	AlgChaCha = "rfc7539esp(chacha20,poly1305)"
)

// Tunnel is one pair of SAs between gw1 and gw2 protecting h1's LAN to h2's LAN for one IP
// version.
type Tunnel struct {
	Name    string // short word; SA and policy names derive from it
	IPv6    bool   // outer and inner IPv6 (else IPv4)
	Alg     string // AlgAESGCM or AlgChaCha
	KeyBits int    // AES key size: 128 (default) or 256; ignored for ChaCha20
	SPI     uint32 // SPI of gw1→gw2; gw2→gw1 uses SPI+1
	// Transport makes the SAs transport-mode SAs between h1 and h2 themselves (the gateways
	// offload the hosts' own ESP, as for the gateway host's traffic through a veth), with
	// policies for those two addresses only.
	Transport bool
}

// DefaultTunnels are the demo's: one IPv4 and one IPv6 tunnel with AES-GCM-128.
var DefaultTunnels = []Tunnel{
	{Name: "v4", Alg: AlgAESGCM, SPI: 0x1000},
	{Name: "v6", IPv6: true, Alg: AlgAESGCM, SPI: 0x2000},
}

// Dataplane tunes the gateways' data path in GatewayConfigsWith.
type Dataplane struct {
	BusyPoll   bool   // workers spin instead of sleeping in poll (config dataplane.busy_poll)
	UMEMFrames uint32 // default 16384
	// MultiBuffer loads the cards frags-aware and binds the sockets with XDP_USE_SG (config
	// dataplane.multi_buffer): the workers then segment the hosts' GSO super-packets.
	MultiBuffer bool
	// ProtectedXDPMode overrides the protected side's XDP mode (config
	// dataplane.protected_xdp_mode): "generic" keeps TSO on the hosts' veths, which native XDP
	// on their peers turns off.
	ProtectedXDPMode string
}

// GatewayConfigs returns the configuration files (YAML, as `xdpsec run --config` reads them) of
// gw1 and gw2 for the tunnels, with fresh random keys shared by the two, and on_exit: detach. The
// instances are named after the testbed's prefix, so their pins never meet another test's.
func (tb *Testbed) GatewayConfigs(tunnels []Tunnel) (gw1, gw2 string, err error) {
	return tb.GatewayConfigsWith(tunnels, Dataplane{})
}

// GatewayConfigsWith is GatewayConfigs with data path settings.
func (tb *Testbed) GatewayConfigsWith(tunnels []Tunnel, dp Dataplane) (gw1, gw2 string, err error) {
	if dp.UMEMFrames == 0 {
		dp.UMEMFrames = 16384
	}
	var b1, b2 strings.Builder
	for _, b := range []*strings.Builder{&b1, &b2} {
		gw := "gw1"
		lan, wan := tb.topo.GW1LAN.Dev, tb.topo.GW1WAN.Dev
		if b == &b2 {
			gw, lan, wan = "gw2", tb.topo.GW2LAN.Dev, tb.topo.GW2WAN.Dev
		}
		fmt.Fprintf(b, "instance: %s\ninterfaces: {protected: %s, wire: %s}\n", tb.Instance(Node(gw)), lan, wan)
		fmt.Fprintf(b, "capacities: {policies: 64, sas: 64, flow_cache: 4096}\n")
		fmt.Fprintf(b, "dataplane: {umem_frames: %d, frame_size: 4096, busy_poll: %v, multi_buffer: %v",
			dp.UMEMFrames, dp.BusyPoll, dp.MultiBuffer)
		if dp.ProtectedXDPMode != "" {
			fmt.Fprintf(b, ", protected_xdp_mode: %s", dp.ProtectedXDPMode)
		}
		fmt.Fprintf(b, "}\n")
		fmt.Fprintf(b, "daemon: {socket: /run/xdpsec/%s.sock}\n", tb.Instance(Node(gw)))
		st, err := tb.StateDir(Node(gw))
		if err != nil {
			return "", "", err
		}
		fmt.Fprintf(b, "state_dir: %s\n", st)
		// A throwaway testbed's gateways leave nothing behind when they stop (the default, guard,
		// leaves the card pinned for the next start to adopt; tests of it set it themselves).
		fmt.Fprintf(b, "on_exit: detach\n")
	}
	var pol1, pol2, sa1, sa2 strings.Builder
	// IKE reaches the gateways' own stacks whatever the SPD says (the data path issue's example).
	for _, b := range []*strings.Builder{&pol1, &pol2} {
		fmt.Fprintf(b, "  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, priority: 10, action: bypass}\n")
	}
	for _, t := range tunnels {
		t6, topo := t.IPv6, &tb.topo
		l1, l2 := topo.LAN1(t6), topo.LAN2(t6)
		w1, w2 := topo.GW1WAN.Addr(t6), topo.GW2WAN.Addr(t6)
		mode := "tunnel"
		if t.Transport {
			// The SAs' ends are the hosts: outer addresses = inner addresses.
			w1, w2 = topo.H1.Addr(t6), topo.H2.Addr(t6)
			l1, l2 = netip.PrefixFrom(w1, w1.BitLen()), netip.PrefixFrom(w2, w2.BitLen())
			mode = "transport"
		}
		out, in := t.Name+"-gw1-to-gw2", t.Name+"-gw2-to-gw1"
		k12, err := key(t)
		if err != nil {
			return "", "", err
		}
		k21, err := key(t)
		if err != nil {
			return "", "", err
		}
		policy(&pol1, t.Name+"-out", "out", l1, l2, out)
		policy(&pol1, t.Name+"-in", "in", l2, l1, in)
		policy(&pol2, t.Name+"-out", "out", l2, l1, in)
		policy(&pol2, t.Name+"-in", "in", l1, l2, out)
		for _, b := range []*strings.Builder{&sa1, &sa2} {
			sa(b, out, t.SPI, w1, w2, mode, t, k12)
			sa(b, in, t.SPI+1, w2, w1, mode, t, k21)
		}
	}
	return b1.String() + "policies:\n" + pol1.String() + "sas:\n" + sa1.String(),
		b2.String() + "policies:\n" + pol2.String() + "sas:\n" + sa2.String(), nil
}

// Instance is the xdpsec instance name of a gateway of this testbed (its pins go under
// /sys/fs/bpf/xdpsec/<instance>).
func (tb *Testbed) Instance(gw Node) string { return tb.Prefix + "-" + string(gw) }

func policy(b *strings.Builder, name, dir string, src, dst netip.Prefix, saName string) {
	fmt.Fprintf(b, "  - {name: %s, dir: %s, src: %s, dst: %s, proto: any, priority: 100, action: protect, sa: %s}\n",
		name, dir, src, dst, saName)
}

func sa(b *strings.Builder, name string, spi uint32, src, dst netip.Addr, mode string, t Tunnel, k string) {
	fmt.Fprintf(b, "  - name: %s\n    spi: 0x%08x\n    src: %s\n    dst: %s\n    mode: %s\n", name, spi, src, dst, mode)
	fmt.Fprintf(b, "    aead: {alg: %q, key: %q, icv_bits: 128}\n", t.Alg, k)
}

// key returns a fresh key ‖ 4-byte salt as 0x-hex (RFC 4106 §8.1, RFC 7634 §2).
func key(t Tunnel) (string, error) {
	n := 16 + 4
	switch {
	case t.Alg == AlgChaCha:
		n = 32 + 4
	case t.KeyBits == 256:
		n = 32 + 4
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return "0x" + hex.EncodeToString(b), nil
}
