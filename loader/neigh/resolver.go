package neigh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// entry is the resolver's view of one destination.
type entry struct {
	ifindex int
	via     netip.Addr // the neighbour to resolve: the route's gateway, or dst itself
	ok      bool
	src     [6]byte
	dst     [6]byte
	tried   int64 // mono ns of the last resolution attempt
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

// resolver is the background goroutine's state; only run touches it.
type resolver struct {
	c      *Cache
	routes chan netlink.RouteUpdate
	neighs chan netlink.NeighUpdate
	links  chan netlink.LinkUpdate
	errs   chan error

	dsts    map[netip.Addr]*entry
	neigh   map[neighKey][6]byte // usable neighbour entries
	linkMAC map[int][6]byte
	dirty   bool // the published map is out of date
	reroute bool // routes or links changed: look every destination up again, once per batch
}

func newResolver(ctx context.Context, c *Cache) (*resolver, error) {
	r := &resolver{
		c:       c,
		routes:  make(chan netlink.RouteUpdate, 256),
		neighs:  make(chan netlink.NeighUpdate, 256),
		links:   make(chan netlink.LinkUpdate, 64),
		errs:    make(chan error, 4),
		dsts:    map[netip.Addr]*entry{},
		neigh:   map[neighKey][6]byte{},
		linkMAC: map[int][6]byte{},
	}
	onErr := func(err error) {
		select {
		case r.errs <- err:
		default:
		}
	}
	var ns = &c.ns
	if !c.ns.IsOpen() {
		ns = nil
	}
	done := ctx.Done()
	if err := netlink.RouteSubscribeWithOptions(r.routes, done, netlink.RouteSubscribeOptions{
		Namespace: ns, ErrorCallback: onErr}); err != nil {
		return nil, fmt.Errorf("subscribe to route events: %w", err)
	}
	if err := netlink.NeighSubscribeWithOptions(r.neighs, done, netlink.NeighSubscribeOptions{
		Namespace: ns, ErrorCallback: onErr}); err != nil {
		return nil, fmt.Errorf("subscribe to neighbour events: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(r.links, done, netlink.LinkSubscribeOptions{
		Namespace: ns, ErrorCallback: onErr}); err != nil {
		return nil, fmt.Errorf("subscribe to link events: %w", err)
	}
	// Read the neighbour table after subscribing: an entry that changes in between arrives as
	// an event and overrides what the dump said.
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := c.h.NeighList(0, fam)
		if err != nil {
			return nil, fmt.Errorf("list neighbours: %w", err)
		}
		for i := range ns {
			r.neighEvent(unix.RTM_NEWNEIGH, &ns[i])
		}
	}
	return r, nil
}

func (r *resolver) run(ctx context.Context) {
	refresh := time.NewTicker(r.c.opts.Refresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case dst := <-r.c.reqs:
			r.request(dst)
		case u, ok := <-r.neighs:
			if !ok {
				r.neighs = nil
				continue
			}
			r.neighEvent(u.Type, &u.Neigh)
		case _, ok := <-r.routes:
			if !ok {
				r.routes = nil
				continue
			}
			r.reroute = true
		case u, ok := <-r.links:
			if !ok {
				r.links = nil
				continue
			}
			delete(r.linkMAC, int(u.Index))
			r.reroute = true
		case err := <-r.errs:
			// An overrun socket lost events: what we hold may be stale.
			r.c.opts.Log.Warn("netlink subscription error; re-resolving all next hops", "err", err)
			r.reroute = true
		case <-refresh.C:
			r.refresh()
		}
		// Apply everything that is already waiting, look routes up again once however many
		// route events came (a routing daemon may send thousands), then publish once.
		r.drain()
		if r.reroute {
			r.reroute = false
			r.reresolveAll()
		}
		if r.dirty {
			r.publish()
		}
	}
}

// drain handles pending events without blocking, bounded so a storm cannot starve publishing.
func (r *resolver) drain() {
	for i := 0; i < 256; i++ {
		select {
		case dst := <-r.c.reqs:
			r.request(dst)
		case u, ok := <-r.neighs:
			if ok {
				r.neighEvent(u.Type, &u.Neigh)
			}
		case _, ok := <-r.routes:
			if ok {
				r.reroute = true
			}
		default:
			return
		}
	}
}

func (r *resolver) request(dst netip.Addr) {
	e := r.dsts[dst]
	now := mono()
	if e != nil && (e.ok || now-e.tried < r.c.retry) {
		return // a duplicate request, or too soon to try again
	}
	if e == nil {
		r.evict()
		e = &entry{}
		r.dsts[dst] = e
	}
	r.resolve(dst, e, now)
}

// resolve looks dst's route up, then its neighbour; without a usable neighbour it asks the kernel
// to resolve one.
func (r *resolver) resolve(dst netip.Addr, e *entry, now int64) {
	// Publish whatever the outcome: a new or failed entry carries the time before which NextHop
	// will not ask again.
	r.dirty = true
	e.tried = now
	e.ok = false
	routes, err := r.c.h.RouteGet(net.IP(dst.AsSlice()))
	if err != nil || len(routes) == 0 || routes[0].LinkIndex <= 0 {
		r.c.routeErrs.Add(1)
		e.ifindex, e.via = 0, netip.Addr{}
		return
	}
	rt := routes[0]
	e.ifindex = rt.LinkIndex
	e.via = dst
	if gw := addrOf(rt.Gw); gw.IsValid() {
		e.via = gw
	} else if rt.Via != nil {
		if v, ok := rt.Via.(*netlink.Via); ok {
			e.via = addrOf(v.Addr)
		}
	}
	src, ok := r.mac(e.ifindex)
	if !ok {
		return
	}
	e.src = src
	if mac, ok := r.neigh[neighKey{e.ifindex, e.via}]; ok {
		e.dst, e.ok = mac, true
	} else {
		r.solicit(e.ifindex, e.via)
	}
}

// solicit asks the kernel to resolve addr on ifindex: RTM_NEWNEIGH with NTF_USE creates the entry
// if needed and triggers the ARP request / neighbour solicitation (neigh_event_send), with the
// kernel's own retransmission and failure handling.
func (r *resolver) solicit(ifindex int, addr netip.Addr) {
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := r.c.h.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: net.IP(addr.AsSlice()),
		Flags: netlink.NTF_USE})
	if err == nil {
		r.c.solicits.Add(1)
	}
}

func (r *resolver) mac(ifindex int) ([6]byte, bool) {
	if m, ok := r.linkMAC[ifindex]; ok {
		return m, true
	}
	l, err := r.c.h.LinkByIndex(ifindex)
	if err != nil || len(l.Attrs().HardwareAddr) != 6 {
		return [6]byte{}, false
	}
	m := [6]byte(l.Attrs().HardwareAddr)
	r.linkMAC[ifindex] = m
	return m, true
}

// usable: states whose link-layer address the kernel itself would send to. STALE is usable (the
// kernel would send and re-confirm); refresh keeps our neighbours from lingering there.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE |
	netlink.NUD_PERMANENT

func (r *resolver) neighEvent(typ uint16, n *netlink.Neigh) {
	a := addrOf(n.IP)
	if !a.IsValid() {
		return
	}
	k := neighKey{n.LinkIndex, a}
	old, had := r.neigh[k]
	if typ == unix.RTM_NEWNEIGH && n.State&usable != 0 && len(n.HardwareAddr) == 6 {
		mac := [6]byte(n.HardwareAddr)
		r.neigh[k] = mac
		r.learn(k)
		if had && old == mac {
			return
		}
	} else {
		if !had {
			return
		}
		delete(r.neigh, k)
	}
	// Update the destinations behind this neighbour.
	for _, e := range r.dsts {
		if e.ifindex != k.ifindex || e.via != k.addr {
			continue
		}
		if mac, ok := r.neigh[k]; ok {
			if _, srcOK := r.mac(e.ifindex); srcOK {
				e.dst, e.ok = mac, true
			}
		} else {
			e.ok = false
		}
		r.dirty = true
	}
}

// learn makes a usable neighbour on a LearnOn interface a destination of its own, when its route
// is that interface directly (not a host whose traffic goes elsewhere, nor a router's address
// whose own traffic is not ours to guess). It runs once per new address: known destinations and
// a full cache are left alone.
func (r *resolver) learn(k neighKey) {
	if r.dsts[k.addr] != nil || len(r.dsts) >= r.c.opts.MaxEntries || k.addr.IsLinkLocalUnicast() ||
		k.addr.IsMulticast() || !slices.Contains(r.c.opts.LearnOn, k.ifindex) {
		return
	}
	e := &entry{}
	r.resolve(k.addr, e, mono())
	if !e.ok || e.ifindex != k.ifindex || e.via != k.addr {
		return
	}
	r.dsts[k.addr] = e
	r.c.learned.Add(1)
}

func (r *resolver) reresolveAll() {
	now := mono()
	for dst, e := range r.dsts {
		r.resolve(dst, e, now)
	}
}

// refresh re-confirms the neighbours in use: the kernel never sees the workers' traffic, so its
// entries would go STALE and be collected.
func (r *resolver) refresh() {
	seen := map[neighKey]bool{}
	for _, e := range r.dsts {
		k := neighKey{e.ifindex, e.via}
		if e.ok && !seen[k] {
			seen[k] = true
			r.solicit(k.ifindex, k.addr)
		}
	}
}

// evict makes room for one entry: an unresolved one if any, else an arbitrary one.
func (r *resolver) evict() {
	if len(r.dsts) < r.c.opts.MaxEntries {
		return
	}
	var victim netip.Addr
	for dst, e := range r.dsts {
		victim = dst
		if !e.ok {
			break
		}
	}
	delete(r.dsts, victim)
	r.dirty = true
}

func (r *resolver) publish() {
	hops := make(map[netip.Addr]hop, len(r.dsts))
	retry := r.c.retry
	for dst, e := range r.dsts {
		hops[dst] = hop{ifindex: e.ifindex, src: e.src, dst: e.dst, ok: e.ok, retryAt: e.tried + retry}
	}
	r.c.publish(hops)
	r.dirty = false
}
