package loader

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
)

// LocalAddrCapacity is how many of the gateway's own addresses the card can hold (local_addrs).
const LocalAddrCapacity = 1024

func localKey(a netip.Addr) bpf.CardXdpsecAddrKey {
	a = a.Unmap()
	return bpf.CardXdpsecAddrKey{Addr: addrWords(a), Family: familyOf(a)}
}

// SetLocalAddrs makes the card's set of the gateway's own addresses equal to addrs (the addresses
// of every interface of its namespace): UDP to the encapsulation port is ESP-in-UDP only towards
// them, and IKE's non-ESP marker or a NAT-keepalive to them goes to the gateway's stack. Addresses
// that are not valid are ignored. New addresses are added before old ones leave, so an address
// kept is never missing.
func (c *Card) SetLocalAddrs(addrs []netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	want := map[bpf.CardXdpsecAddrKey]bool{}
	for _, a := range addrs {
		if a.IsValid() {
			want[localKey(a)] = true
		}
	}
	if len(want) > LocalAddrCapacity {
		return fmt.Errorf("set local addresses: %w: %d addresses, the card holds %d", ErrCapacity, len(want), LocalAddrCapacity)
	}
	have, err := c.localKeys()
	if err != nil {
		return err
	}
	one := uint8(1)
	for k := range want {
		if !slices.Contains(have, k) {
			if err := c.objs.LocalAddrs.Put(&k, &one); err != nil {
				return fmt.Errorf("add local address: %w", err)
			}
		}
	}
	for _, k := range have {
		if !want[k] {
			if err := c.objs.LocalAddrs.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("remove local address: %w", err)
			}
		}
	}
	return nil
}

// LocalAddrs reads the gateway's own addresses the card holds, sorted.
func (c *Card) LocalAddrs() ([]netip.Addr, error) {
	keys, err := c.localKeys()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(keys))
	for _, k := range keys {
		out = append(out, wordsAddr(k.Addr, k.Family))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

func (c *Card) localKeys() ([]bpf.CardXdpsecAddrKey, error) {
	var keys []bpf.CardXdpsecAddrKey
	var (
		k bpf.CardXdpsecAddrKey
		v uint8
	)
	it := c.objs.LocalAddrs.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read local addresses: %w", err)
	}
	return keys, nil
}
