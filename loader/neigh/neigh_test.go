package neigh

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func needRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "the neighbour cache test builds network namespaces")
}

func newBed(t *testing.T) *testbed.Testbed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tb, err := testbed.New(ctx, testbed.Options{Tag: "nb"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	return tb
}

// newCache starts a cache with opts in node n's namespace, closed when the test ends.
func newCache(t *testing.T, tb *testbed.Testbed, n testbed.Node, opts Options) *Cache {
	t.Helper()
	ns, err := tb.NsHandle(n)
	if err != nil {
		t.Fatal(err)
	}
	opts.NetNS = ns
	c, err := New(opts)
	ns.Close() // the cache keeps its own handle
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func macOf(t *testing.T, tb *testbed.Testbed, n testbed.Node, dev string) [6]byte {
	t.Helper()
	hw, err := tb.MAC(context.Background(), n, dev)
	if err != nil {
		t.Fatal(err)
	}
	return [6]byte(hw)
}

func ifindexOf(t *testing.T, tb *testbed.Testbed, n testbed.Node, dev string) int {
	t.Helper()
	out, err := tb.Run(context.Background(), n, "cat", "/sys/class/net/"+dev+"/ifindex")
	if err != nil {
		t.Fatal(err)
	}
	var i int
	if _, err := fmtSscan(strings.TrimSpace(out), &i); err != nil {
		t.Fatal(err)
	}
	return i
}

// TestResolvesWithoutTraffic runs a cache in gw2's namespace: a directly connected host (h2) and
// a host behind a gateway (h1, via gw1) resolve, over IPv4 and IPv6, with no packet sent by the
// test — the cache's own solicitation resolves them — and the first call answers not-ok at once.
func TestResolvesWithoutTraffic(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	c := newCache(t, tb, testbed.GW2, Options{})

	lan := ifindexOf(t, tb, testbed.GW2, testbed.GW2LAN)
	wan := ifindexOf(t, tb, testbed.GW2, testbed.GW2WAN)
	lanMAC := macOf(t, tb, testbed.GW2, testbed.GW2LAN)
	wanMAC := macOf(t, tb, testbed.GW2, testbed.GW2WAN)
	h2MAC := macOf(t, tb, testbed.H2, testbed.H2Eth)
	gw1MAC := macOf(t, tb, testbed.GW1, testbed.GW1WAN)

	for _, tc := range []struct {
		dst      netip.Addr
		ifindex  int
		src, mac [6]byte
	}{
		{testbed.H2Addr4, lan, lanMAC, h2MAC},
		{testbed.H2Addr6, lan, lanMAC, h2MAC},
		{testbed.H1Addr4, wan, wanMAC, gw1MAC},
		{testbed.H1Addr6, wan, wanMAC, gw1MAC},
	} {
		start := time.Now()
		if _, _, _, ok := c.NextHop(tc.dst); ok {
			t.Fatalf("%s resolved before anything asked for it", tc.dst)
		}
		if d := time.Since(start); d > 10*time.Millisecond {
			t.Errorf("first NextHop(%s) took %v: it must not wait for resolution", tc.dst, d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ifi, src, mac, err := c.Resolve(ctx, tc.dst)
		cancel()
		t.Logf("%s resolved in %v", tc.dst, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if ifi != tc.ifindex || src != tc.src || mac != tc.mac {
			t.Errorf("%s: ifindex %d src %x dst %x, want %d %x %x", tc.dst, ifi, src, mac, tc.ifindex, tc.src, tc.mac)
		}
	}
	if s := c.Stats(); s.Solicits == 0 || s.Resolved != 4 {
		t.Errorf("stats %+v: want solicitations and 4 resolved entries", s)
	}
}

// TestFollowsRouteChanges moves h1's prefix from the route via gw1 to none and back, and
// checks that NextHop follows without being asked again.
func TestFollowsRouteChanges(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	c := newCache(t, tb, testbed.GW2, Options{Retry: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, _, err := c.Resolve(ctx, testbed.H1Addr4); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Run(ctx, testbed.GW2, "ip", "route", "del", testbed.LAN1Prefix4.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route removal to make h1 unreachable", func() bool {
		_, _, _, ok := c.NextHop(testbed.H1Addr4)
		return !ok
	})
	// Now through h2 (a nonsense route, but a different next hop): the neighbour is h2.
	if _, err := tb.Run(ctx, testbed.GW2, "ip", "route", "add", testbed.LAN1Prefix4.String(), "via",
		testbed.H2Addr4.String()); err != nil {
		t.Fatal(err)
	}
	h2MAC := macOf(t, tb, testbed.H2, testbed.H2Eth)
	waitFor(t, "the new route via h2", func() bool {
		_, _, mac, ok := c.NextHop(testbed.H1Addr4)
		return ok && mac == h2MAC
	})
}

// TestUnresolvableIsRateLimited asks for an address on gw2's LAN that nobody holds: NextHop
// stays not-ok, and repeated calls queue at most one request per retry interval.
func TestUnresolvableIsRateLimited(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	c := newCache(t, tb, testbed.GW2, Options{Retry: time.Hour})
	ghost := netip.MustParseAddr("198.18.2.99")
	c.NextHop(ghost)
	waitFor(t, "the first request to be handled", func() bool { return c.Stats().Entries == 1 })
	for i := 0; i < 100000; i++ {
		if _, _, _, ok := c.NextHop(ghost); ok {
			t.Fatal("an address nobody holds resolved")
		}
	}
	if s := c.Stats(); s.Requests != 1 {
		t.Fatalf("%d requests queued for one unresolvable address, want 1 (stats %+v)", s.Requests, s)
	}
}

// TestNextHopNeverBlocks floods NextHop with distinct destinations from several goroutines while
// the resolver is busy: every call returns, surplus requests are dropped and counted.
func TestNextHopNeverBlocks(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	// 198.19.0.0/16 has no route in gw2: the lookups fail without touching any neighbour table.
	c := newCache(t, tb, testbed.GW2, Options{QueueLen: 8, MaxEntries: 64})
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Second)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				c.NextHop(netip.AddrFrom4([4]byte{198, 19, byte(g), byte(i)}))
			}
		}()
	}
	wg.Wait()
	if time.Now().After(deadline) {
		t.Fatal("80,000 NextHop calls took over 5 s")
	}
	if s := c.Stats(); s.QueueDrops == 0 || s.Entries > 64 {
		t.Fatalf("stats %+v: want dropped requests and at most 64 entries", s)
	}
}

func TestNextHopDoesNotAllocate(t *testing.T) {
	c := &Cache{reqs: make(chan netip.Addr, 1), retry: int64(time.Second)}
	dst := netip.MustParseAddr("198.18.2.10")
	miss := netip.MustParseAddr("198.18.2.11")
	c.snap.Store(&table{hops: map[netip.Addr]hop{
		dst:  {ifindex: 3, ok: true},
		miss: {retryAt: mono() + int64(time.Hour)},
	}})
	if a := testing.AllocsPerRun(1000, func() { c.NextHop(dst); c.NextHop(miss) }); a != 0 {
		t.Fatalf("NextHop allocates %.1f times per call", a)
	}
}

func BenchmarkNextHopHit(b *testing.B) {
	c := &Cache{reqs: make(chan netip.Addr, 1)}
	hops := map[netip.Addr]hop{}
	for i := 0; i < 1024; i++ {
		hops[netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})] = hop{ifindex: 3, ok: true}
	}
	c.snap.Store(&table{hops: hops})
	dst := netip.MustParseAddr("198.18.2.10")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, ok := c.NextHop(dst); !ok {
			b.Fatal("miss")
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestFollowsNeighbourChanges deletes a resolved neighbour: NextHop stops answering at once (a
// stale MAC would send packets into the void), and the next request resolves it again.
func TestFollowsNeighbourChanges(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	c := newCache(t, tb, testbed.GW2, Options{Retry: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, _, err := c.Resolve(ctx, testbed.H2Addr4); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Run(ctx, testbed.GW2, "ip", "neigh", "del", testbed.H2Addr4.String(), "dev", testbed.GW2LAN); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted neighbour to be withdrawn", func() bool {
		_, _, _, ok := c.NextHop(testbed.H2Addr4)
		return !ok
	})
	if _, _, _, err := c.Resolve(ctx, testbed.H2Addr4); err != nil {
		t.Fatalf("resolve again after the deletion: %v", err)
	}
}

// TestLearnsHostsThatTalkToTheGateway: with gw1's LAN side in LearnOn, a host that pinged the
// gateway (and so ARPed and solicited it) is a resolved destination before anything asks for it:
// the first NextHop answers. A cache without LearnOn, beside it, learns nothing.
func TestLearnsHostsThatTalkToTheGateway(t *testing.T) {
	needRoot(t)
	tb := newBed(t)
	lan := ifindexOf(t, tb, testbed.GW1, testbed.GW1LAN)
	learner := newCache(t, tb, testbed.GW1, Options{LearnOn: []int{lan}})
	plain := newCache(t, tb, testbed.GW1, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []netip.Addr{testbed.GW1LANAddr4, testbed.GW1LANAddr6} {
		if err := tb.Ping(ctx, testbed.H1, a, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "h1's two addresses learnt", func() bool { return learner.Stats().Learned >= 2 })
	h1MAC := macOf(t, tb, testbed.H1, testbed.H1Eth)
	misses := learner.Stats().Misses
	for _, a := range []netip.Addr{testbed.H1Addr4, testbed.H1Addr6} {
		ifi, _, mac, ok := learner.NextHop(a)
		if !ok || ifi != lan || mac != h1MAC {
			t.Errorf("first NextHop(%s) = %d %x %v, want %d %x true", a, ifi, mac, ok, lan, h1MAC)
		}
	}
	if m := learner.Stats().Misses; m != misses {
		t.Errorf("%d misses for learnt destinations", m-misses)
	}
	if s := plain.Stats(); s.Entries != 0 || s.Learned != 0 {
		t.Errorf("a cache without LearnOn holds destinations nobody asked for: %+v", s)
	}
	// The gateway's own WAN neighbours are not on a LearnOn interface.
	if err := tb.Ping(ctx, testbed.GW2, testbed.GW1WANAddr4, 1); err != nil {
		t.Fatal(err)
	}
	// The marker: a neighbour on the LearnOn interface that appears after the WAN one; once the
	// cache has learnt it, it has read the WAN neighbour's event too.
	if _, err := tb.Run(ctx, testbed.GW1, "ip", "neigh", "replace", "198.18.1.77", "lladdr", "02:00:00:00:01:77",
		"dev", testbed.GW1LAN, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker neighbour learnt", func() bool { return learner.Stats().Learned >= 3 })
	if s := learner.Stats(); s.Entries != 3 {
		t.Errorf("cache holds %d destinations, want h1's two and the marker: a neighbour off the LearnOn interface was learnt", s.Entries)
	}
}
