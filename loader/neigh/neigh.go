package neigh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options configure a Cache.
type Options struct {
	// NetNS is the namespace whose tables the cache follows; the zero value and netns.None()
	// mean the namespace of the calling thread at New.
	NetNS netns.NsHandle
	// Retry is the least time between two resolution attempts for one destination. Default 1 s.
	Retry time.Duration
	// Refresh is how often resolved neighbours are confirmed with the kernel. Default 15 s.
	Refresh time.Duration
	// MaxEntries bounds the number of destinations cached. Default 4096.
	MaxEntries int
	// QueueLen bounds the resolution requests waiting for the background goroutine. Default 1024.
	QueueLen int
	// Log receives the cache's rare events (subscription errors). Default: discard.
	Log *slog.Logger
	// LearnOn lists interfaces (indexes in the cache's namespace) whose neighbours become
	// destinations before anyone asks for them: every host the kernel holds a usable neighbour
	// entry for there — one that ARPed or solicited the gateway, which any host using it as its
	// router has done — and whose route is that interface, directly. The gateway's protected side
	// goes here, so that the first decrypted packet to such a host finds its next hop. Learning
	// never evicts: it stops at MaxEntries.
	LearnOn []int
}

// Stats are the cache's counters.
type Stats struct {
	Entries     int    // destinations cached
	Resolved    int    // of which resolved
	Misses      uint64 // NextHop calls that returned ok=false
	Requests    uint64 // resolution requests queued
	QueueDrops  uint64 // requests dropped because the queue was full
	Solicits    uint64 // neighbour resolutions asked of the kernel (NTF_USE)
	RouteErrors uint64 // destinations without a usable route
	Publishes   uint64 // new maps published
	Learned     uint64 // destinations learnt from neighbour entries (Options.LearnOn)
}

// hop is one published answer. Entries with ok=false carry retryAt, before which NextHop does
// not queue the destination again.
type hop struct {
	ifindex  int
	src, dst [6]byte
	ok       bool
	retryAt  int64 // mono ns
}

type table struct{ hops map[netip.Addr]hop }

// Cache is a route and neighbour cache for one network namespace. NextHop is safe for concurrent
// use by any number of goroutines; Close stops the cache.
type Cache struct {
	snap  atomic.Pointer[table]
	reqs  chan netip.Addr
	retry int64

	misses, requests, queueDrops atomic.Uint64
	solicits, routeErrs, pubs    atomic.Uint64
	learned                      atomic.Uint64

	opts   Options
	h      *netlink.Handle
	ns     netns.NsHandle // owned copy, or None
	cancel context.CancelFunc
	done   chan struct{}
	close  sync.Once
}

var epoch = time.Now()

func mono() int64 { return int64(time.Since(epoch)) }

// New starts a cache following the tables of opts.NetNS. It subscribes before it returns, so no
// later change is missed.
func New(opts Options) (*Cache, error) {
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 15 * time.Second
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 4096
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = 1024
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		reqs:  make(chan netip.Addr, opts.QueueLen),
		retry: int64(opts.Retry),
		opts:  opts,
		ns:    netns.None(),
		done:  make(chan struct{}),
	}
	c.snap.Store(&table{hops: map[netip.Addr]hop{}})
	var err error
	if opts.NetNS > 0 { // 0 (the zero value) and -1 (netns.None) both mean "here"
		// Keep a handle of our own: the caller may close theirs.
		fd, derr := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if derr != nil {
			return nil, fmt.Errorf("duplicate namespace handle: %w", derr)
		}
		c.ns = netns.NsHandle(fd)
		c.h, err = netlink.NewHandleAt(c.ns)
	} else {
		c.h, err = netlink.NewHandle()
	}
	if err != nil {
		c.closeNS()
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	r, err := newResolver(ctx, c)
	if err != nil {
		cancel()
		c.h.Close()
		c.closeNS()
		return nil, err
	}
	go func() {
		defer close(c.done)
		r.run(ctx)
	}()
	return c, nil
}

// NextHop returns the egress interface and the Ethernet source and destination for a packet to
// dst. It never blocks: with no answer yet it returns ok=false and, at most once per retry
// interval for dst, queues dst for resolution.
func (c *Cache) NextHop(dst netip.Addr) (ifindex int, srcMAC, dstMAC [6]byte, ok bool) {
	h, found := c.snap.Load().hops[dst]
	if found && h.ok {
		return h.ifindex, h.src, h.dst, true
	}
	c.misses.Add(1)
	if found && mono() < h.retryAt {
		return 0, srcMAC, dstMAC, false
	}
	select {
	case c.reqs <- dst:
		c.requests.Add(1)
	default:
		c.queueDrops.Add(1)
	}
	return 0, srcMAC, dstMAC, false
}

// Resolve asks for dst and waits until it is resolved or ctx is done. It is for warming the cache
// before traffic (the daemon, tests), never for the packet path.
func (c *Cache) Resolve(ctx context.Context, dst netip.Addr) (ifindex int, srcMAC, dstMAC [6]byte, err error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if i, s, d, ok := c.NextHop(dst); ok {
			return i, s, d, nil
		}
		select {
		case <-ctx.Done():
			return 0, srcMAC, dstMAC, fmt.Errorf("resolve next hop for %s: %w", dst, ctx.Err())
		case <-c.done:
			return 0, srcMAC, dstMAC, fmt.Errorf("resolve next hop for %s: %w", dst, ErrClosed)
		case <-t.C:
		}
	}
}

// ErrClosed is returned by Resolve once the cache is closed.
var ErrClosed = errors.New("neighbour cache closed")

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	t := c.snap.Load()
	s := Stats{
		Entries:     len(t.hops),
		Misses:      c.misses.Load(),
		Requests:    c.requests.Load(),
		QueueDrops:  c.queueDrops.Load(),
		Solicits:    c.solicits.Load(),
		RouteErrors: c.routeErrs.Load(),
		Publishes:   c.pubs.Load(),
		Learned:     c.learned.Load(),
	}
	for _, h := range t.hops {
		if h.ok {
			s.Resolved++
		}
	}
	return s
}

// Close stops the background goroutine and the subscriptions. NextHop keeps answering from the
// last published map.
func (c *Cache) Close() error {
	c.close.Do(func() {
		c.cancel()
		<-c.done
		c.h.Close()
		c.closeNS()
	})
	return nil
}

func (c *Cache) closeNS() {
	if c.ns.IsOpen() {
		_ = c.ns.Close()
		c.ns = netns.None()
	}
}

func (c *Cache) publish(hops map[netip.Addr]hop) {
	c.snap.Store(&table{hops: hops})
	c.pubs.Add(1)
}

// addrOf converts a netlink IP to a netip.Addr, IPv4 unmapped.
func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
