package loader

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func TestPinsReopenAndDestroy(t *testing.T) {
	requireRoot(t)
	cfg := Config{Instance: "t" + randHex(4), Policies: 128, SAs: 128, FlowCache: 256, Logger: quiet}
	c, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.PinDir()
	t.Cleanup(func() { os.RemoveAll(dir) })

	sa := SA{Dir: ipsec.DirIn, SPI: 0xc0ffee, Src: ip("2001:2::2"), Dst: ip("2001:2::1"), Mode: ipsec.ModeTransport, EncapSrcPort: 4500, EncapDstPort: 4500, PolicyID: 7, ReqID: 42}
	if err := c.PutSA(3, sa); err != nil {
		t.Fatal(err)
	}
	sel := anySel("198.18.1.0/24", "198.18.2.0/25")
	sel.Proto, sel.SrcPorts, sel.DstPorts = ipsec.ProtoTCP, ipsec.Ports(1000, 2000), ipsec.Ports(443, 443)
	pols := []ipsec.Policy{
		{ID: 7, Dir: ipsec.DirIn, Priority: 5, Selector: anySel("2001:2:2::/48", "2001:2:1::/48"), Action: ipsec.ActionProtect, SA: 3},
		{ID: 9, Dir: ipsec.DirOut, Priority: 5, Selector: sel, Action: ipsec.ActionDiscard, SA: ipsec.NoSA},
	}
	if err := c.PutPolicies(pols...); err != nil {
		t.Fatal(err)
	}
	c.WorkerStats().Add(3, 10, 1500)
	if err := c.SetLocalAddrs([]netip.Addr{ip("198.18.0.1")}); err != nil {
		t.Fatal(err)
	}
	c.WorkerStats().AddError(3, uint8(bpf.CardXdpsecWorkerErrorXDPSEC_WERR_ICV), 2)

	// A second process (here: a second Load) cannot drive the same instance.
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Load of a held instance: %v; want an in-use error", err)
	}

	// bpftool reads the pinned tables as structs with field names (BTF): every command the README and
	// bpf/doc.go show, on this card (SA 3, policies 7 and 9).
	testutil.RequireTools(t, "bpftool")
	for _, b := range []struct {
		args []string
		want []string // field names and values the output must show
	}{
		{[]string{"dump", "sa_table"}, []string{`"spi": `, `"reqid": 42`, `"encap_dport": `}},
		{[]string{"dump", "sa_in_lookup"}, []string{`"key": {`, `"spi": `, `"dst": [`, `"value": 3`}},
		{[]string{"dump", "policy_table"}, []string{`"sa_index": 3`, `"priority": 5`, `"action": `}},
		{[]string{"dump", "spd_state"}, []string{`"gen": `}},
		{[]string{"dump", "spd_tuples"}, []string{`"policies": 1`, `"src_bits": 24`, `"dst_bits": 25`, `"dport_mask": 65535`}},
		{[]string{"dump", "spd_buckets"}, []string{`"frag": 1`, `"rule": {`, `"sport_lo": 1000`, `"dport_hi": 443`, `"policy_id": 9`, `"priority": 5`}},
		{[]string{"dump", "flow_cache"}, nil}, // empty: no traffic
		{[]string{"dump", "reasons"}, []string{`"values": [{`, `"cpu": 0`}},
		{[]string{"lookup", "sa_stats", "key", "3", "0", "0", "0"}, []string{`"packets": 0`, `"first_use_ns": 0`}},
		{[]string{"lookup", "worker_stats", "key", "3", "0", "0", "0"}, []string{`"packets": 10`, `"errors": [0,2,`}},
		{[]string{"dump", "policy_stats"}, []string{`"packets": 0`, `"bytes": 0`}},
		{[]string{"dump", "spd_chain"}, []string{`"src_mask": [`, `"dport_hi": `}}, // unused: zeros
		{[]string{"dump", "spd_filter"}, []string{`"value": `}},
		{[]string{"dump", "card_config"}, []string{`"default_action": [`, `"acquire_interval_ms": `, `"guard": 0`}},
		{[]string{"dump", "local_addrs"}, []string{`"addr": [`, `"family": 4`}},
	} {
		args := append([]string{"map", b.args[0], "pinned", filepath.Join(dir, b.args[1])}, b.args[2:]...)
		out, err := exec.Command("bpftool", args...).CombinedOutput()
		if err != nil {
			t.Errorf("bpftool %s: %v\n%.400s", strings.Join(args, " "), err, out)
			continue
		}
		// Without BTF bpftool falls back to hex bytes ("key: 03 00 00 00").
		if strings.Contains(string(out), "key: ") || strings.Contains(string(out), "value: ") {
			t.Errorf("bpftool %s printed raw bytes, not structs:\n%.400s", strings.Join(args, " "), out)
		}
		for _, w := range b.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("bpftool %s lacks %s:\n%.600s", strings.Join(args, " "), w, out)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Other capacities do not fit the pins.
	bad := cfg
	bad.SAs = 256
	if _, err := Load(bad); !errors.Is(err, ErrIncompatiblePin) {
		t.Errorf("reopen with other capacities: %v; want ErrIncompatiblePin", err)
	}

	c, err = Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Policies()
	if len(got) != 2 || got[0] != pols[1] || got[1] != pols[0] {
		t.Errorf("reopened policies %+v, want %+v", got, pols)
	}
	if g, err := c.GetSA(3); err != nil || g != sa {
		t.Errorf("reopened SA %+v, %v; want %+v", g, err, sa)
	}
	if w := c.WorkerStats().Read(3); w.Packets != 10 || w.Bytes != 1500 || w.Errors[1] != 2 {
		t.Errorf("reopened worker stats %+v", w)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Destroy left %s", dir)
	}
}

func TestSATable(t *testing.T) {
	c := newTestCard(t, Config{Policies: 16, SAs: 16})
	in := SA{Dir: ipsec.DirIn, SPI: 0x11, Src: ip("198.18.0.2"), Dst: ip("198.18.0.1"), Mode: ipsec.ModeTunnel, PolicyID: NoPolicy}
	if err := c.PutSA(1, in); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSA(2, in); !errors.Is(err, ErrSAExists) {
		t.Errorf("duplicate (SPI, dst, ESP): %v; want ErrSAExists", err)
	}
	if err := c.PutSA(16, in); !errors.Is(err, ErrCapacity) {
		t.Errorf("index beyond capacity: %v; want ErrCapacity", err)
	}
	bad := in
	bad.Dst = ip("2001:2::1")
	if err := c.PutSA(2, bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("mixed families: %v; want ErrInvalid", err)
	}
	// Changing the SPI moves the inbound key.
	in2 := in
	in2.SPI = 0x12
	if err := c.PutSA(1, in2); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, c); n != 1 {
		t.Errorf("%d inbound keys after an SPI change, want 1", n)
	}
	if err := c.PutSA(2, in); err != nil {
		t.Errorf("old SPI should be free again: %v", err)
	}
	for _, i := range []uint32{1, 2, 5} {
		if err := c.DeleteSA(i); err != nil {
			t.Fatal(err)
		}
	}
	if n := countKeys(t, c); n != 0 {
		t.Errorf("%d inbound keys after deleting every SA", n)
	}
	if _, err := c.GetSA(1); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted SA: %v; want ErrNotFound", err)
	}
}

func countKeys(t *testing.T, c *Card) int {
	var (
		k bpf.CardXdpsecSaKey
		v uint32
		n int
	)
	it := c.objs.SaInLookup.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPolicyValidation(t *testing.T) {
	c := newTestCard(t, Config{Policies: 16, SAs: 16})
	ok := ipsec.Policy{ID: 1, Dir: ipsec.DirOut, Selector: anySel("0.0.0.0/0", "0.0.0.0/0"), Action: ipsec.ActionBypass, SA: ipsec.NoSA}
	for _, tc := range []struct {
		name string
		p    ipsec.Policy
		want error
	}{
		{"id beyond capacity", func() ipsec.Policy { p := ok; p.ID = 16; return p }(), ErrCapacity},
		{"SA beyond capacity", func() ipsec.Policy { p := ok; p.Action, p.SA = ipsec.ActionProtect, 16; return p }(), ErrCapacity},
		{"bad selector", func() ipsec.Policy { p := ok; p.Selector.Dst = pfx("2001:2::/48"); return p }(), ipsec.ErrBadSelector},
	} {
		if err := c.PutPolicies(tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		}
	}
	if err := c.PutPolicies(ok, ok); !errors.Is(err, ErrInvalid) {
		t.Errorf("same id twice: %v; want ErrInvalid", err)
	}
	if len(c.Policies()) != 0 {
		t.Errorf("failed puts left policies: %+v", c.Policies())
	}
}

// TestSPDChangeInvalidatesFlows classifies a flow, changes the SPD under it, and checks the next packet
// of the same flow follows the new SPD (the flow cache entry is stale by generation).
func TestSPDChangeInvalidatesFlows(t *testing.T) {
	c := verdictCard(t, Config{})
	r := runner(t)
	flow := v4("198.18.1.1", "198.18.2.1", ipsec.ProtoUDP, ports(5000, 6000, 10)).build()
	if v, out := r.run(t, c.program(SideProtected), flow); v != xdpDrop || decodeMeta(t, out).SaIndex != saOut {
		t.Fatalf("flow not protected with SA %d", saOut)
	}
	// Rekey: point policy 1 at another SA; the cached flow follows at once.
	if err := c.PutSA(30, SA{Dir: ipsec.DirOut, SPI: 0x3030, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel, PolicyID: 1}); err != nil {
		t.Fatal(err)
	}
	var p ipsec.Policy
	for _, q := range c.Policies() {
		if q.ID == 1 {
			p = q
		}
	}
	p.SA = 30
	if err := c.PutPolicies(p); err != nil {
		t.Fatal(err)
	}
	if v, out := r.run(t, c.program(SideProtected), flow); v != xdpDrop || decodeMeta(t, out).SaIndex != 30 {
		t.Errorf("after rekey the flow does not use SA 30")
	}
	// A higher-priority bypass for the flow.
	byp := anySel("198.18.1.1/32", "198.18.2.1/32")
	if err := c.PutPolicies(ipsec.Policy{ID: 100, Dir: ipsec.DirOut, Priority: 1, Selector: byp, Action: ipsec.ActionBypass, SA: ipsec.NoSA}); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.run(t, c.program(SideProtected), flow); v != xdpPass {
		t.Errorf("after adding a bypass the flow got %s, want PASS", verdictName(v))
	}
	if err := c.DeletePolicies(100); err != nil {
		t.Fatal(err)
	}
	if v, out := r.run(t, c.program(SideProtected), flow); v != xdpDrop || decodeMeta(t, out).SaIndex != 30 {
		t.Errorf("after deleting the bypass the flow is not protected again")
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for i, n := range reasonNames {
		if n == "" || seen[n] {
			t.Errorf("reason %d has no or a duplicate name %q", i, n)
		}
		seen[n] = true
	}
}

func TestWorkerErrorNamesMatchESP(t *testing.T) {
	if int(esp.NumReasons) > int(WorkerErrPolicy) {
		t.Fatalf("crypto/esp has %d reasons; the worker's own start at %d: move them", esp.NumReasons, WorkerErrPolicy)
	}
	for r := esp.Reason(0); r < esp.NumReasons; r++ {
		if got := WorkerErrorName(uint8(r)); got != r.String() {
			t.Errorf("worker error %d is %q, crypto/esp calls it %q", r, got, r.String())
		}
	}
}

func TestWorkerStatsView(t *testing.T) {
	c := newTestCard(t, Config{Policies: 16, SAs: 16})
	w := c.WorkerStats()
	w.Add(15, 2, 300)
	w.AddError(15, WorkerErrPolicy, 1)
	w.Add(16, 1, 1) // beyond the capacity: ignored
	var v bpf.CardXdpsecWorkerStats
	if err := c.objs.WorkerStats.Lookup(uint32(15), &v); err != nil {
		t.Fatal(err)
	}
	if v.Packets != 2 || v.Bytes != 300 || v.Errors[WorkerErrPolicy] != 1 {
		t.Errorf("the map (as bpftool sees it) holds %+v", v)
	}
	if r := w.Read(15); r.Packets != 2 || r.Errors[WorkerErrPolicy] != 1 {
		t.Errorf("Read = %+v", r)
	}
	// A new SA at a used index starts from zero.
	if err := c.PutSA(15, SA{Dir: ipsec.DirOut, SPI: 1, Src: ip("198.18.0.1"), Dst: ip("198.18.0.2"), Mode: ipsec.ModeTunnel}); err != nil {
		t.Fatal(err)
	}
	if r := w.Read(15); r.Packets != 0 || r.Errors[WorkerErrPolicy] != 0 {
		t.Errorf("after PutSA of a new SA: %+v", r)
	}
}

func TestDumpSPDAndEachSAStats(t *testing.T) {
	c := verdictCard(t, Config{})
	got, err := c.DumpSPD()
	if err != nil {
		t.Fatal(err)
	}
	want := c.Policies()
	if len(got) != len(want) {
		t.Fatalf("DumpSPD has %d policies, the loader %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("policy %d: card %+v, loader %+v", i, got[i], want[i])
		}
	}
	// The card counts an SA only when it redirects to a worker socket; none is bound here.
	n := 0
	if err := c.EachSAStats(func(uint32, SAStats) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d SAs with counters before any traffic", n)
	}
	rs, err := c.Reasons()
	if err != nil || len(rs) != NumReasons {
		t.Fatalf("Reasons: %d, %v", len(rs), err)
	}
}
