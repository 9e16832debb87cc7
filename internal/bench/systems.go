//go:build linux

package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testbed/pair"
	"github.com/xdpsec/xdpsec/internal/xsfwd"
)

// Env is what a system runs in: the testbed, its path (names and addresses: the bench uses no
// other) and how many queues its interfaces have.
type Env struct {
	TB     *testbed.Testbed
	Topo   testbed.Topology
	Queues int
	Log    *slog.Logger
}

// Carried is what a system says it carried from h1's side to h2's so far, by its own counters:
// packets and IP bytes.
type Carried struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (c Carried) minus(o Carried) Carried {
	return Carried{Packets: c.Packets - o.Packets, Bytes: c.Bytes - o.Bytes}
}

// A System carries traffic between h1 and h2 through gw1 and gw2.
type System interface {
	// Name identifies the system in tables and JSON ("kernel", "xsfwd", "xdpsec/aes-gcm-128", …).
	Name() string
	// Describe says in a few words what runs.
	Describe() string
	Start(ctx context.Context, env *Env) error
	// Carried reads the system's own counters of what it carried towards h2.
	Carried(ctx context.Context) (Carried, error)
	Stop() error
}

// linkCounters reads an interface's transmitted (rx: received) packets and bytes in a node.
func linkCounters(tb *testbed.Testbed, n testbed.Node, dev string, rx bool) (Carried, error) {
	var c Carried
	err := tb.InNS(n, func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		s := l.Attrs().Statistics
		if s == nil {
			return fmt.Errorf("%s: no statistics", dev)
		}
		if rx {
			c = Carried{Packets: s.RxPackets, Bytes: s.RxBytes}
		} else {
			c = Carried{Packets: s.TxPackets, Bytes: s.TxBytes}
		}
		return nil
	})
	return c, err
}

// kernel is plain IP forwarding on gw1 and gw2: the ceiling.
type kernel struct{ env *Env }

func (k *kernel) Name() string { return "kernel" }
func (k *kernel) Describe() string {
	return "plain kernel forwarding gw1 → gw2, no encryption (the ceiling)"
}
func (k *kernel) Start(ctx context.Context, env *Env) error { k.env = env; return nil }
func (k *kernel) Stop() error                               { return nil }
func (k *kernel) Carried(ctx context.Context) (Carried, error) {
	return linkCounters(k.env.TB, testbed.GW2, k.env.Topo.GW2LAN.Dev, false)
}

// bareXSK is the bare AF_XDP forwarder (internal/xsfwd) on both gateways: the pipe without the card's
// classification and without crypto.
type bareXSK struct {
	env      *Env
	gw1, gw2 *xsfwd.Forwarder
}

func (b *bareXSK) Name() string { return "xsfwd" }
func (b *bareXSK) Describe() string {
	return "bare AF_XDP forwarder on both gateways (xdpsec's pipe: XDP redirect, copy-mode AF_XDP, no classification, no crypto; UDP only: it leaves hosts' partial TCP checksums alone)"
}

// packetsOnly: the bare forwarder does not complete the checksums hosts leave to the hardware
// (CHECKSUM_PARTIAL, their default transmit offload: xdpsec's workers do), so hosts' TCP does not
// cross it. It is the packet-rate ceiling, measured with the generator's complete packets.
func (b *bareXSK) packetsOnly() {}

func (b *bareXSK) Start(ctx context.Context, env *Env) error {
	b.env = env
	tb := env.TB
	t := &env.Topo
	// A side is a gateway's interface and the one at the other end of its link.
	type side struct{ port, peer testbed.Port }
	cfgFor := func(lan, wan side) (xsfwd.Config, error) {
		cfg := xsfwd.Config{Queues: env.Queues}
		for i, s := range []side{lan, wan} {
			src, err := tb.MAC(ctx, s.port.Node, s.port.Dev)
			if err != nil {
				return cfg, err
			}
			dst, err := tb.MAC(ctx, s.peer.Node, s.peer.Dev)
			if err != nil {
				return cfg, err
			}
			var idx int
			if err := tb.InNS(s.port.Node, func() error {
				ifc, err := net.InterfaceByName(s.port.Dev)
				if err == nil {
					idx = ifc.Index
				}
				return err
			}); err != nil {
				return cfg, err
			}
			sd := xsfwd.Side{Ifindex: idx, Src: src, Dst: dst}
			if i == 0 {
				cfg.LAN = sd
			} else {
				cfg.WAN = sd
			}
		}
		return cfg, nil
	}
	for _, g := range []struct {
		n        testbed.Node
		lan, wan side
		out      **xsfwd.Forwarder
	}{
		{testbed.GW1, side{t.GW1LAN, t.H1}, side{t.GW1WAN, t.GW2WAN}, &b.gw1},
		{testbed.GW2, side{t.GW2LAN, t.H2}, side{t.GW2WAN, t.GW1WAN}, &b.gw2},
	} {
		cfg, err := cfgFor(g.lan, g.wan)
		if err != nil {
			b.Stop()
			return err
		}
		ns, err := tb.NsHandle(g.n)
		if err != nil {
			b.Stop()
			return err
		}
		f, err := xsfwd.Start(ns, cfg)
		ns.Close()
		if err != nil {
			b.Stop()
			return fmt.Errorf("%s: %w", g.n, err)
		}
		*g.out = f
	}
	return nil
}

func (b *bareXSK) Carried(ctx context.Context) (Carried, error) {
	if b.gw2 == nil {
		return Carried{}, fmt.Errorf("xsfwd not running")
	}
	s := b.gw2.Stats()
	return Carried{Packets: s.Forwarded[1], Bytes: s.Bytes[1]}, nil
}

func (b *bareXSK) Stop() error {
	var err error
	for _, f := range []**xsfwd.Forwarder{&b.gw2, &b.gw1} {
		if *f != nil {
			if e := (*f).Close(); e != nil && err == nil {
				err = e
			}
			*f = nil
		}
	}
	return err
}

// xdpsec is the product: two gateways started in this process (internal/testbed/pair) with the
// daemon's default configuration plus the tunnels of cfg.
type xdpsec struct {
	cfg  GatewayConfig
	env  *Env
	gws  *pair.Pair
	keys *Keys
}

func (x *xdpsec) Name() string {
	n := "xdpsec/" + x.cfg.Suite
	if x.cfg.Workers > 0 {
		n += fmt.Sprintf("/%dw", x.cfg.Workers)
	}
	if x.cfg.PortSAs > 0 {
		n += fmt.Sprintf("/%dsa", x.cfg.PortSAs)
	}
	return n
}

func (x *xdpsec) Describe() string {
	return "xdpsec gateways, default configuration, " + x.cfg.Suite + " tunnel"
}

func (x *xdpsec) Start(ctx context.Context, env *Env) error {
	x.env = env
	y1, y2, keys, err := x.cfg.YAML(env.TB, &env.Topo)
	if err != nil {
		return err
	}
	x.keys = keys
	x.gws, err = pair.Start(ctx, env.TB, pair.Options{Log: env.Log, HostOffloads: true,
		Edit:        func(string, string) (string, string) { return y1, y2 },
		SyncTimeout: 10*time.Second + time.Duration(x.cfg.PortSAs)*2*time.Millisecond})
	if err != nil {
		return err
	}
	if _, err := env.TB.WarmUp(ctx, testbed.H1, env.Topo.H2.Addr(false)); err != nil {
		x.Stop()
		return err
	}
	return nil
}

// Carried sums gw2's inbound SAs: what it decrypted from gw1.
func (x *xdpsec) Carried(ctx context.Context) (Carried, error) {
	if x.gws == nil {
		return Carried{}, fmt.Errorf("xdpsec not running")
	}
	var c Carried
	for _, sa := range x.gws.GW2.SAs() {
		if sa.Dir == "in" {
			c.Packets += sa.Packets
			c.Bytes += sa.Bytes
		}
	}
	return c, nil
}

func (x *xdpsec) Stop() error {
	if x.gws == nil {
		return nil
	}
	err := x.gws.Close()
	x.gws = nil
	return err
}

func (x *xdpsec) counters() map[string]uint64 {
	out := map[string]uint64{}
	if x.gws == nil {
		return out
	}
	for _, g := range []struct {
		name string
		d    *daemon.Daemon
	}{{"gw1", x.gws.GW1}, {"gw2", x.gws.GW2}} {
		for k, v := range g.d.WorkerStats() {
			switch k {
			case "rx_packets", "tx_packets", "sealed", "opened", "checksums_completed":
				continue // the traffic itself, not a cause of loss
			}
			out[g.name+"_"+k] = v
		}
		for side, s := range g.d.SocketStats() {
			out[g.name+"_"+side+"_rx_ring_full"] = s.RXRingFull
			out[g.name+"_"+side+"_fill_ring_empty"] = s.RXFillRingEmpty
		}
	}
	return out
}

// workerPackets is what each of gw1's workers sealed and each of gw2's opened.
func (x *xdpsec) workerPackets() (sealed, opened []uint64) {
	if x.gws == nil {
		return nil, nil
	}
	sealed, _ = x.gws.GW1.WorkerPackets()
	_, opened = x.gws.GW2.WorkerPackets()
	return sealed, opened
}

func (x *xdpsec) replayErrors() uint64 {
	var n uint64
	if x.gws == nil {
		return 0
	}
	for _, sa := range x.gws.GW2.SAs() {
		if sa.Dir == "in" {
			n += sa.ReplayErrors
		}
	}
	return n
}
