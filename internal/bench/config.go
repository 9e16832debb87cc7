package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// Suites xdpsec is measured with, by their bench names.
var suites = map[string]struct {
	alg    string
	keyLen int // key ‖ 4-byte salt
}{
	"aes-gcm-128":       {testbed.AlgAESGCM, 16 + 4},
	"aes-gcm-256":       {testbed.AlgAESGCM, 32 + 4},
	"chacha20-poly1305": {testbed.AlgChaCha, 32 + 4},
}

// GatewayConfig is what differs between the xdpsec gateway pairs the bench starts. Everything
// else is the daemon's default configuration: no dataplane settings unless named here.
type GatewayConfig struct {
	Suite string // a key of suites
	// Workers sets dataplane.workers (0: the default, one per receive queue).
	Workers int
	// PortSAs adds that many extra SA/policy pairs, gw1 → gw2 only: policy i protects UDP from
	// LAN1 to LAN2 with destination port 1024 + i%32768 and source port 1 + i/32768 (the
	// generator's PerPolicy workload) with its own SA.
	PortSAs int
	// Storm adds the storm's SA gw1 → gw2 (storm.go): its policy protects UDP from LAN1 to
	// LAN2's StormPort, which no other traffic uses, so its counters are the storm's alone.
	Storm bool
}

// Keys is what the bench needs to craft ESP packets of one of gw1 → gw2's SAs itself: the storm's SA
// with GatewayConfig.Storm, the IPv4 tunnel's otherwise.
type Keys struct {
	SPI uint32
	Alg string
	Key []byte // key ‖ salt
}

// The SPIs of the bench's SAs.
const (
	spiV4     = 0x1000 // gw1→gw2; +1 gw2→gw1
	spiV6     = 0x2000
	spiPort0  = 0x100000
	spiStorm  = 0x3000
	portBase  = 1024
	portsPerS = 32768
)

// YAML returns the two gateways' configuration files for topology t of tb and the IPv4 SA's keys.
// The IPv6 tunnel is there when the path has IPv6.
func (c GatewayConfig) YAML(tb *testbed.Testbed, t *testbed.Topology) (gw1, gw2 string, keys *Keys, err error) {
	s, ok := suites[c.Suite]
	if !ok {
		return "", "", nil, fmt.Errorf("unknown suite %q", c.Suite)
	}
	newKey := func() (string, []byte, error) {
		k := make([]byte, s.keyLen)
		if _, err := rand.Read(k); err != nil {
			return "", nil, err
		}
		return "0x" + hex.EncodeToString(k), k, nil
	}
	var b [2]strings.Builder // gw1, gw2
	for i, gw := range []testbed.Node{testbed.GW1, testbed.GW2} {
		lan, wan := t.GW1LAN.Dev, t.GW1WAN.Dev
		if gw == testbed.GW2 {
			lan, wan = t.GW2LAN.Dev, t.GW2WAN.Dev
		}
		st, err := tb.StateDir(gw)
		if err != nil {
			return "", "", nil, err
		}
		// on_exit: detach: the next system measured on this testbed must find the interfaces bare
		// (the default, guard, leaves the card attached and pinned for the next start to adopt).
		fmt.Fprintf(&b[i], "instance: %s\ninterfaces: {protected: %s, wire: %s}\nstate_dir: %s\non_exit: detach\n",
			tb.Instance(gw), lan, wan, st)
		if c.PortSAs > 0 {
			n := c.PortSAs + 16
			// The flow cache at twice the flows, as docs/operations.md asks (an LRU hash near its
			// capacity evicts flows still in use).
			fmt.Fprintf(&b[i], "capacities: {policies: %d, sas: %d, flow_cache: %d}\n", min(max(n, 16384), maxPolicies),
				max(2*n, 65536), max(2*n, 65536))
		}
		if c.Workers > 0 {
			fmt.Fprintf(&b[i], "dataplane: {workers: %d}\n", c.Workers)
		}
	}
	var pol, sas [2]strings.Builder
	for i := range pol {
		fmt.Fprintf(&pol[i], "policies:\n  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, priority: 10, action: bypass}\n")
		sas[i].WriteString("sas:\n")
	}
	sa := func(name string, spi uint32, src, dst netip.Addr, key string) {
		for i := range sas {
			fmt.Fprintf(&sas[i], "  - {name: %s, spi: 0x%x, src: %s, dst: %s, mode: tunnel, aead: {alg: %q, key: %q, icv_bits: 128}}\n",
				name, spi, src, dst, s.alg, key)
		}
	}
	policy := func(gw int, name, dir string, src, dst netip.Prefix, extra, saName string, prio int) {
		fmt.Fprintf(&pol[gw], "  - {name: %s, dir: %s, src: %s, dst: %s, %spriority: %d, action: protect, sa: %s}\n",
			name, dir, src, dst, extra, prio, saName)
	}
	type tunnel struct {
		name string
		spi  uint32
		v6   bool
	}
	tunnels := []tunnel{{"v4", spiV4, false}}
	if t.IPv6() {
		tunnels = append(tunnels, tunnel{"v6", spiV6, true})
	}
	for _, tun := range tunnels {
		l1, l2 := t.LAN1(tun.v6), t.LAN2(tun.v6)
		w1, w2 := t.GW1WAN.Addr(tun.v6), t.GW2WAN.Addr(tun.v6)
		k12, raw, err := newKey()
		if err != nil {
			return "", "", nil, err
		}
		k21, _, err := newKey()
		if err != nil {
			return "", "", nil, err
		}
		if !tun.v6 {
			keys = &Keys{SPI: tun.spi, Alg: s.alg, Key: raw}
		}
		o, in := tun.name+"-gw1-to-gw2", tun.name+"-gw2-to-gw1"
		sa(o, tun.spi, w1, w2, k12)
		sa(in, tun.spi+1, w2, w1, k21)
		policy(0, tun.name+"-out", "out", l1, l2, "proto: any, ", o, 100)
		policy(0, tun.name+"-in", "in", l2, l1, "proto: any, ", in, 100)
		policy(1, tun.name+"-out", "out", l2, l1, "proto: any, ", in, 100)
		policy(1, tun.name+"-in", "in", l1, l2, "proto: any, ", o, 100)
	}
	if c.Storm {
		k, raw, err := newKey()
		if err != nil {
			return "", "", nil, err
		}
		keys = &Keys{SPI: spiStorm, Alg: s.alg, Key: raw}
		sa("storm", spiStorm, t.GW1WAN.Addr(false), t.GW2WAN.Addr(false), k)
		ports := fmt.Sprintf("proto: udp, dport: %d, ", StormPort)
		policy(0, "storm-out", "out", t.LAN1(false), t.LAN2(false), ports, "storm", 50)
		policy(1, "storm-in", "in", t.LAN1(false), t.LAN2(false), ports, "storm", 50)
	}
	for i := range c.PortSAs {
		k, _, err := newKey()
		if err != nil {
			return "", "", nil, err
		}
		name := fmt.Sprintf("p%d", i)
		sa(name, spiPort0+uint32(i), t.GW1WAN.Addr(false), t.GW2WAN.Addr(false), k)
		ports := fmt.Sprintf("proto: udp, sport: %d, dport: %d, ", 1+i/portsPerS, portBase+i%portsPerS)
		policy(0, name+"-out", "out", t.LAN1(false), t.LAN2(false), ports, name, 50)
		policy(1, name+"-in", "in", t.LAN1(false), t.LAN2(false), ports, name, 50)
	}
	return b[0].String() + pol[0].String() + sas[0].String(), b[1].String() + pol[1].String() + sas[1].String(), keys, nil
}
