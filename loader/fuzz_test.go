package loader

import (
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

// additionalReasons move beside a packet's final reason, never instead of it (InNoStates: ESP whose
// SA the card does not hold, which the inbound SPD then decides).
var additionalReasons = map[string]bool{"FibNoNeigh": true, "AcquireSent": true, "AcquireLost": true, "InNoStates": true}

var (
	fuzzCardOnce sync.Once
	fuzzCard     *Card
)

// FuzzCard feeds arbitrary frames to both programs: each must end in XDP_PASS or XDP_DROP (no socket
// is bound, so never a redirect; never XDP_ABORTED) with exactly one final reason counted. `go test`
// runs the seeds; `go test -fuzz FuzzCard ./loader/` explores.
func FuzzCard(f *testing.F) {
	requireRoot(f) // not each input: a fuzz target whose every seed skipped would report PASS
	for _, p := range []pkt{
		v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(1, 2, 10)),
		v4("198.18.6.1", "198.18.2.1", ipsec.ProtoTCP, ports(1, 80, 0)),
		{vlans: []uint16{0x88a8, 0x8100}, src: ip("198.18.1.1"), dst: ip("198.18.2.1"), proto: ipsec.ProtoICMP, l4: icmp(8, 0)},
		{src: ip("2001:2:1::1"), dst: ip("2001:2:2::1"), proto: ipsec.ProtoTCP, exts: []ext{{0, 8}, {43, 16}}, fragOff: 2, l4: ports(1, 2, 0)},
		v4("198.18.0.2", "198.18.0.1", ipsec.ProtoESP, espPayload(0x2001, 1, 32)),
		v4("198.18.0.2", "198.18.0.1", ipsec.ProtoUDP, udpESP(4500, 4500, 0x2002, 1, 32)),
		v4("198.18.0.2", "198.18.0.1", ipsec.ProtoUDP, udpESP(4500, 4500, 0, 0, 8)),
		{ethType: 0x0806},
	} {
		f.Add(p.build(), false)
		f.Add(p.build(), true)
	}
	f.Fuzz(func(t *testing.T, frame []byte, wire bool) {
		if len(frame) < 14 || len(frame) > 3000 {
			testutil.Skip(t, "BPF_PROG_TEST_RUN takes 14 to ~3,500 bytes")
		}
		fuzzCardOnce.Do(func() { fuzzCard = verdictCardFor(t) })
		c := fuzzCard
		side := SideProtected
		if wire {
			side = SideWire
		}
		r := runner(t)
		var v uint32
		d := reasonDelta(t, c, func() { v, _ = r.run(t, c.program(side), frame) })
		if v != xdpPass && v != xdpDrop {
			t.Fatalf("verdict %s for % x", verdictName(v), frame)
		}
		final := 0
		for k, n := range d {
			if !additionalReasons[k] {
				final += int(n)
			}
		}
		if final != 1 {
			t.Fatalf("reasons %v for one frame % x", d, frame)
		}
	})
}

// verdictCardFor builds verdictCard's tables on a card that outlives the calling test: fuzz inputs
// share it, and the process's exit frees it.
func verdictCardFor(t *testing.T) *Card {
	requireRoot(t)
	c, err := Load(Config{Policies: 1024, SAs: 1024, FlowCache: 4096, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fillVerdictTables(t, c)
	return c
}
