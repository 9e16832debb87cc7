package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/loader"
)

// localAddrRefresh is how often the watch reads the whole address list again, whatever the events
// said: a netlink subscription that overran, or ended, loses events silently.
const localAddrRefresh = 10 * time.Second

// localAddrs keeps the card's set of the gateway's own addresses (loader.Card.SetLocalAddrs: where
// ESP-in-UDP ends, where IKE on the encapsulation port goes) equal to the addresses of every
// interface in the gateway's network namespace, from netlink address events. The subscription
// and the handle are opened in the namespace during start; reading them later needs no capability.
type localAddrs struct {
	card *loader.Card
	log  *slog.Logger
	h    *netlink.Handle
	ch   chan netlink.AddrUpdate
	errs chan error
	done chan struct{} // closed by close: ends the subscription and the goroutine
	wg   sync.WaitGroup

	mu  sync.Mutex
	set []netip.Addr // as last written to the card, sorted
}

// watchLocalAddrs reads the namespace's addresses into the card and keeps them current until close.
func watchLocalAddrs(ns netns.NsHandle, card *loader.Card, log *slog.Logger) (*localAddrs, error) {
	l := &localAddrs{card: card, log: log, ch: make(chan netlink.AddrUpdate, 256), errs: make(chan error, 1),
		done: make(chan struct{})}
	var err error
	var nsp *netns.NsHandle
	if ns > 0 {
		nsp = &ns
		l.h, err = netlink.NewHandleAt(ns)
	} else {
		l.h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("watch local addresses: open netlink: %w", err)
	}
	onErr := func(err error) {
		select {
		case l.errs <- err:
		default:
		}
	}
	// Subscribe first, then list: an address that changes in between arrives as an event too,
	// and applying events after the list converges on the namespace's state.
	if err := netlink.AddrSubscribeWithOptions(l.ch, l.done, netlink.AddrSubscribeOptions{Namespace: nsp,
		ErrorCallback: onErr, ReceiveBufferSize: 1 << 20}); err != nil {
		l.h.Close()
		return nil, fmt.Errorf("watch local addresses: subscribe: %w", err)
	}
	if err := l.refresh(); err != nil {
		close(l.done)
		l.h.Close()
		return nil, err
	}
	l.wg.Add(1)
	go l.run()
	return l, nil
}

// refresh lists every address of the namespace and writes the set to the card.
func (l *localAddrs) refresh() error {
	addrs, err := l.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list local addresses: %w", err)
	}
	set := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			set = append(set, ip.Unmap())
		}
	}
	return l.write(set)
}

func (l *localAddrs) write(set []netip.Addr) error {
	slices.SortFunc(set, netip.Addr.Compare)
	set = slices.Compact(set)
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Equal(set, l.set) {
		return nil
	}
	if err := l.card.SetLocalAddrs(set); err != nil {
		return fmt.Errorf("write local addresses to the card: %w", err)
	}
	l.set = set
	return nil
}

func (l *localAddrs) run() {
	defer l.wg.Done()
	tick := time.NewTicker(localAddrRefresh)
	defer tick.Stop()
	ch := l.ch
	for {
		stale := false
		select {
		case <-l.done:
			return
		case u, ok := <-ch:
			if !ok {
				// The subscription ended (an overrun ends it): the ticker's lists carry on.
				l.log.Warn("local address events ended; reading the address list every " + localAddrRefresh.String())
				ch = nil
				continue
			}
			l.update(u)
		case err := <-l.errs:
			l.log.Warn("local address events", "err", err)
			stale = true
		case <-tick.C:
			stale = true
		}
		if stale {
			if err := l.refresh(); err != nil && !errors.Is(err, loader.ErrClosed) {
				l.log.Warn("refresh local addresses", "err", err)
			}
		}
	}
}

// update applies one event: the new address joins the set, a removed one leaves it.
func (l *localAddrs) update(u netlink.AddrUpdate) {
	ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	if !ok {
		return
	}
	ip = ip.Unmap()
	l.mu.Lock()
	set := slices.Clone(l.set)
	l.mu.Unlock()
	i := slices.Index(set, ip)
	switch {
	case u.NewAddr && i < 0:
		set = append(set, ip)
	case !u.NewAddr && i >= 0:
		// Another interface may still have it: the list decides.
		if err := l.refresh(); err != nil && !errors.Is(err, loader.ErrClosed) {
			l.log.Warn("refresh local addresses", "err", err)
		}
		return
	default:
		return
	}
	if err := l.write(set); err != nil && !errors.Is(err, loader.ErrClosed) {
		l.log.Warn("update local addresses", "err", err)
	}
}

// has reports whether a is one of the gateway's addresses.
func (l *localAddrs) has(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := slices.BinarySearchFunc(l.set, a.Unmap(), netip.Addr.Compare)
	return ok
}

// close ends the watch (the card keeps the last set).
func (l *localAddrs) close() {
	close(l.done)
	l.wg.Wait()
	l.h.Close()
}
