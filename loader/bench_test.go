package loader

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// benchSPD builds an SPD of n outbound IPv4 policies in which the benchmark packet
// (198.18.1.1:1000 → 198.18.2.1:2000/UDP) matches only the last one in SPD order, so a first packet
// scans all n rules: the worst case. The others are /32 pairs that never match it.
func benchSPD(n int, action ipsec.Action, sa uint32) []ipsec.Policy {
	pols := make([]ipsec.Policy, 0, n)
	for i := 0; i < n-1; i++ {
		src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		s := anySel(netip.PrefixFrom(src, 32).String(), "198.18.2.0/24")
		if i%2 == 0 {
			s.Proto, s.DstPorts = ipsec.ProtoUDP, ipsec.Ports(1, 1024)
		}
		pols = append(pols, ipsec.Policy{ID: uint32(i), Dir: ipsec.DirOut, Priority: 100, Selector: s, Action: ipsec.ActionDiscard, SA: ipsec.NoSA})
	}
	return append(pols, ipsec.Policy{ID: uint32(n - 1), Dir: ipsec.DirOut, Priority: 200,
		Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: action, SA: sa})
}

// shapesSPD builds an SPD of n outbound IPv4 policies spread over 64 tuples, in which the benchmark packet
// matches only the last policy, the only one of its tuple; the others all come first in SPD order and
// never match it, so a first packet probes every tuple the card allows: the tuple space's worst case
// (the linear scan's too).
func shapesSPD(n int, action ipsec.Action, sa uint32) []ipsec.Policy {
	pols := make([]ipsec.Policy, 0, n)
	for i := 0; i < n-1; i++ {
		shape := 1 + i%63 // 63 shapes: source /17../32 × destination /25../28, but one
		src := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 17+shape%16).Masked()
		dst := netip.PrefixFrom(netip.MustParseAddr("198.18.2.0"), 25+shape/16)
		pols = append(pols, ipsec.Policy{ID: uint32(i), Dir: ipsec.DirOut, Priority: 100, Selector: anySel(src.String(), dst.String()), Action: ipsec.ActionDiscard, SA: ipsec.NoSA})
	}
	return append(pols, ipsec.Policy{ID: uint32(n - 1), Dir: ipsec.DirOut, Priority: 200,
		Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: action, SA: sa})
}

// gatewaySPD builds what a VPN gateway's outbound SPD of n policies may look like: mostly road warriors
// (the protected /16 to one remote /32), site-to-site subnets (/24 to /24), service exceptions with an
// exact port, a few port ranges, with priorities that put the more specific first as strongSwan's do.
// The benchmark packet matches the last policy, a site-to-site one.
func gatewaySPD(n int, action ipsec.Action, sa uint32) []ipsec.Policy {
	pols := make([]ipsec.Policy, 0, n)
	for i := 0; i < n-1; i++ {
		remote := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		p := ipsec.Policy{ID: uint32(i), Dir: ipsec.DirOut, Action: ipsec.ActionProtect, SA: ipsec.NoSA}
		switch i % 50 {
		case 0:
			p.Priority, p.Action = 100, ipsec.ActionBypass
			p.Selector = anySel("198.18.1.0/24", netip.PrefixFrom(remote, 32).String())
			p.Selector.Proto, p.Selector.DstPorts = ipsec.ProtoTCP, ipsec.Ports(22, 22)
		case 1:
			p.Priority, p.Action = 150, ipsec.ActionDiscard
			p.Selector = anySel("198.18.1.0/24", subnet.String())
			p.Selector.Proto, p.Selector.DstPorts = ipsec.ProtoUDP, ipsec.Ports(1000, 1999)
		case 2, 3, 4, 5, 6, 7, 8, 9:
			p.Priority = 200
			p.Selector = anySel("198.18.1.0/24", subnet.String())
		default:
			p.Priority = 300
			p.Selector = anySel("198.18.0.0/16", netip.PrefixFrom(remote, 32).String())
		}
		pols = append(pols, p)
	}
	return append(pols, ipsec.Policy{ID: uint32(n - 1), Dir: ipsec.DirOut, Priority: 200,
		Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: action, SA: sa})
}

// rangesSPD builds an SPD of n outbound IPv4 policies with one selector but n-1 destination port ranges
// the benchmark packet misses, ahead of the one it matches: the tuple space's weak spot, one bucket of n
// rules walked in chunks of 8.
func rangesSPD(n int, action ipsec.Action, sa uint32) []ipsec.Policy {
	pols := make([]ipsec.Policy, 0, n)
	for i := 0; i < n-1; i++ {
		s := anySel("198.18.1.0/24", "198.18.2.0/24")
		lo := uint16(3000 + 2*(i%30000))
		s.Proto, s.DstPorts = ipsec.ProtoUDP, ipsec.Ports(lo, lo+1)
		pols = append(pols, ipsec.Policy{ID: uint32(i), Dir: ipsec.DirOut, Priority: 100, Selector: s, Action: ipsec.ActionDiscard, SA: ipsec.NoSA})
	}
	return append(pols, ipsec.Policy{ID: uint32(n - 1), Dir: ipsec.DirOut, Priority: 200,
		Selector: anySel("198.18.1.0/24", "198.18.2.0/24"), Action: action, SA: sa})
}

// benchCapacity is the policy capacity a benchmark card needs for n policies.
func benchCapacity(n int) uint32 { return uint32(max(n, DefaultPolicies)) }

// BenchmarkCard measures ns per packet through BPF_PROG_TEST_RUN, per verdict and SPD size:
// "established" repeats one flow (flow-cache hit); "first" invalidates the flow cache before every
// packet (an SPD generation bump of 2, which keeps the live buffer) so each run classifies from scratch.
// The SPD is benchSPD's (the linear scan's worst case). The figure is the kernel's own per-run time
// (ns/pkt), which excludes the syscall.
func BenchmarkCard(b *testing.B) {
	requireRoot(b)
	r := runner(b)
	pkt := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1000, 2000, 64)).build()
	for _, n := range []int{1, 1024, 16384, 65535} {
		c, err := Load(Config{Policies: benchCapacity(n), SAs: 1024})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.PutSA(1, SA{Dir: ipsec.DirOut, SPI: 0x101, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel}); err != nil {
			b.Fatal(err)
		}
		for _, verdict := range []struct {
			name   string
			action ipsec.Action
			want   uint32
		}{{"bypass", ipsec.ActionBypass, xdpPass}, {"discard", ipsec.ActionDiscard, xdpDrop}, {"protect", ipsec.ActionProtect, xdpDrop}} {
			if err := c.ReplaceSPD(benchSPD(n, verdict.action, 1)); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("spd=%d/%s/established", n, verdict.name), func(b *testing.B) {
				var (
					ret uint32
					d   time.Duration
				)
				r.do(func() { ret, d, err = c.program(SideProtected).Benchmark(pkt, b.N, nil) })
				if err != nil || ret != verdict.want {
					b.Fatalf("verdict %s, %v", verdictName(ret), err)
				}
				b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
			})
			b.Run(fmt.Sprintf("spd=%d/%s/first", n, verdict.name), func(b *testing.B) {
				benchFirst(b, c, r, pkt, verdict.want)
			})
		}
		c.Close()
	}
}

// BenchmarkFirstPacket is BenchmarkCard's "first" (bypass) on other SPDs of n policies: shapesSPD
// (every tuple probed), gatewaySPD (a realistic mix), rangesSPD (one long bucket).
func BenchmarkFirstPacket(b *testing.B) {
	requireRoot(b)
	r := runner(b)
	pkt := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1000, 2000, 64)).build()
	for _, n := range []int{1024, 16384, 65535} {
		c, err := Load(Config{Policies: benchCapacity(n), SAs: 1024})
		if err != nil {
			b.Fatal(err)
		}
		for _, kind := range []struct {
			name string
			spd  func(int, ipsec.Action, uint32) []ipsec.Policy
		}{{"shapes", shapesSPD}, {"gateway", gatewaySPD}, {"ranges", rangesSPD}} {
			if err := c.ReplaceSPD(kind.spd(n, ipsec.ActionBypass, 0)); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/spd=%d", kind.name, n), func(b *testing.B) { benchFirst(b, c, r, pkt, xdpPass) })
		}
		c.Close()
	}
}

// benchFirst runs pkt through the protected side b.N times, each time the first packet of its flow.
func benchFirst(b *testing.B, c *Card, r *nsRunner, pkt []byte, want uint32) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		var st bpf.CardXdpsecSpd
		if err := c.objs.SpdState.Lookup(uint32(0), &st); err != nil {
			b.Fatal(err)
		}
		st.Gen += 2
		if err := c.objs.SpdState.Put(uint32(0), &st); err != nil {
			b.Fatal(err)
		}
		var (
			ret uint32
			d   time.Duration
			err error
		)
		r.do(func() { ret, d, err = c.program(SideProtected).Benchmark(pkt, 1, nil) })
		if err != nil || ret != want {
			b.Fatalf("verdict %s, %v", verdictName(ret), err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
}

// BenchmarkInboundESP measures the wire side's ESP path: SA lookup by (SPI, dst), metadata, no socket.
func BenchmarkInboundESP(b *testing.B) {
	c := newTestCard(b, Config{})
	r := runner(b)
	if err := c.PutSA(1, SA{Dir: ipsec.DirIn, SPI: 0x2001, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel}); err != nil {
		b.Fatal(err)
	}
	pkt := v4("198.18.0.2", "198.18.0.1", ipsec.ProtoESP, espPayload(0x2001, 1, 64)).build()
	b.Run("offloaded-sa", func(b *testing.B) {
		var (
			ret uint32
			d   time.Duration
			err error
		)
		r.do(func() { ret, d, err = c.program(SideWire).Benchmark(pkt, b.N, nil) })
		if err != nil || ret != xdpDrop {
			b.Fatalf("verdict %s, %v", verdictName(ret), err)
		}
		b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
	})
}

// BenchmarkPutPolicy measures one SPD change (a policy put into an SPD of n policies), as the control
// plane makes it: loader bookkeeping, the policy table write, the idle buffer brought up to date and made
// live.
func BenchmarkPutPolicy(b *testing.B) {
	for _, n := range []int{64, 1024, 16384, 65535} {
		b.Run(fmt.Sprintf("spd=%d", n), func(b *testing.B) {
			c := newTestCard(b, Config{Policies: benchCapacity(n)})
			if err := c.ReplaceSPD(benchSPD(n, ipsec.ActionBypass, 0)); err != nil {
				b.Fatal(err)
			}
			p := ipsec.Policy{ID: uint32(n - 2), Dir: ipsec.DirOut, Priority: 150, Selector: anySel("198.18.3.0/24", "198.18.4.0/24"), Action: ipsec.ActionDiscard, SA: ipsec.NoSA}
			// The first change after the bulk load also brings the other buffer up to date: a bulk
			// write of its own, not what this benchmark measures.
			if err := c.PutPolicies(p); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.Priority = uint32(100 + i%100)
				if err := c.PutPolicies(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplaceSPD measures installing n policies (benchSPD's, gatewaySPD's) into an empty card in
// one SPD change, as an initial offload does: compilation, table entries and the tuple space written.
func BenchmarkReplaceSPD(b *testing.B) {
	for _, n := range []int{1024, 16384, 65535} {
		for _, kind := range []struct {
			name string
			spd  func(int, ipsec.Action, uint32) []ipsec.Policy
		}{{"bench", benchSPD}, {"gateway", gatewaySPD}} {
			b.Run(fmt.Sprintf("%s/spd=%d", kind.name, n), func(b *testing.B) {
				c := newTestCard(b, Config{Policies: benchCapacity(n)})
				pols := kind.spd(n, ipsec.ActionBypass, 0)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := c.ReplaceSPD(pols); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := c.ReplaceSPD(nil); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// portSPD is n exact-port UDP policies between two subnets: one tuple, a bucket per port, and one
// fragment bucket they all share.
func portSPD(n int) []ipsec.Policy {
	ps := make([]ipsec.Policy, n)
	for i := range ps {
		sel := anySel("198.18.1.0/24", "198.18.2.0/24")
		sel.Proto = ipsec.ProtoUDP
		sel.SrcPorts = ipsec.Ports(uint16(1+i/4096), uint16(1+i/4096))
		sel.DstPorts = ipsec.Ports(uint16(10000+i%4096), uint16(10000+i%4096))
		ps[i] = ipsec.Policy{ID: uint32(i + 1), Dir: ipsec.DirOut, Priority: 100, Selector: sel, Action: ipsec.ActionBypass, SA: ipsec.NoSA}
	}
	return ps
}

// BenchmarkPutPortPolicy measures one more port policy put into an SPD of n port policies (portSPD):
// the fragment bucket they share must not be rewritten whole on every change.
func BenchmarkPutPortPolicy(b *testing.B) {
	for _, n := range []int{1024, 8192} {
		b.Run(fmt.Sprintf("spd=%d", n), func(b *testing.B) {
			c := newTestCard(b, Config{Policies: benchCapacity(n + 1)})
			if err := c.ReplaceSPD(portSPD(n)); err != nil {
				b.Fatal(err)
			}
			p := portSPD(n + 1)[n]
			if err := c.PutPolicies(p); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.Priority = uint32(100 + i%2) // alternately behind and level with the others
				if err := c.PutPolicies(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
