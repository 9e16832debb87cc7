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

// BenchmarkCard measures ns per packet through BPF_PROG_TEST_RUN, per verdict and SPD size:
// "established" repeats one flow (flow-cache hit); "first" invalidates the flow cache before every
// packet (an SPD generation bump of 2, which keeps the live buffer) so each run scans the whole SPD.
// The figure is the kernel's own per-run time (ns/pkt), which excludes the syscall.
func BenchmarkCard(b *testing.B) {
	requireRoot(b)
	r := runner(b)
	pkt := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1000, 2000, 64)).build()
	for _, n := range []int{1, 64, 4096, 16384} {
		c, err := Load(Config{Policies: 16384, SAs: 1024})
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
					)
					r.do(func() { ret, d, err = c.program(SideProtected).Benchmark(pkt, 1, nil) })
					if err != nil || ret != verdict.want {
						b.Fatalf("verdict %s, %v", verdictName(ret), err)
					}
					total += d
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
			})
		}
		c.Close()
	}
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
// plane makes it: loader bookkeeping, the policy table write, and the rule lists rewritten and swapped.
func BenchmarkPutPolicy(b *testing.B) {
	for _, n := range []int{64, 4096, 16384} {
		b.Run(fmt.Sprintf("spd=%d", n), func(b *testing.B) {
			c := newTestCard(b, Config{Policies: 16384})
			if err := c.ReplaceSPD(benchSPD(n, ipsec.ActionBypass, 0)); err != nil {
				b.Fatal(err)
			}
			p := ipsec.Policy{ID: uint32(n - 2), Dir: ipsec.DirOut, Priority: 150, Selector: anySel("198.18.3.0/24", "198.18.4.0/24"), Action: ipsec.ActionDiscard, SA: ipsec.NoSA}
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
