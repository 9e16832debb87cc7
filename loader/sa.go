package loader

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/ipsec"
)

// NoPolicy is the PolicyID of an SA that serves no policy.
const NoPolicy = 0xffff

// SA is what the card holds of an SA: the non-secret fields it needs to steer packets. Keys stay with
// the workers.
type SA struct {
	Dir      ipsec.Dir  // DirOut: used by outbound PROTECT policies; DirIn: matched by (SPI, Dst, ESP)
	SPI      uint32     // host order
	Src, Dst netip.Addr // outer addresses (transport mode: the hosts' own)
	Mode     ipsec.Mode
	// EncapSrcPort and EncapDstPort are the UDP ports of ESP-in-UDP (RFC 3948); zero for plain ESP.
	EncapSrcPort, EncapDstPort uint16
	PolicyID                   uint32 // the policy the SA serves (NoPolicy when none)
	ReqID                      uint32
	// Larval marks an SA that is reserved but not usable yet: the card treats it as missing.
	Larval bool
}

func (sa *SA) validate() error {
	if !sa.Src.IsValid() || !sa.Dst.IsValid() || sa.Src.Is4() != sa.Dst.Is4() || sa.Src.Is4In6() || sa.Dst.Is4In6() {
		return fmt.Errorf("%w: SA outer addresses %s and %s", ErrInvalid, sa.Src, sa.Dst)
	}
	if sa.Dir != ipsec.DirOut && sa.Dir != ipsec.DirIn {
		return fmt.Errorf("%w: SA direction %d", ErrInvalid, sa.Dir)
	}
	if !sa.Mode.Valid() {
		return fmt.Errorf("%w: SA mode %d", ErrInvalid, sa.Mode)
	}
	if (sa.EncapSrcPort == 0) != (sa.EncapDstPort == 0) {
		return fmt.Errorf("%w: SA UDP encapsulation needs both ports", ErrInvalid)
	}
	if sa.PolicyID != NoPolicy && sa.PolicyID > MaxPolicies {
		return fmt.Errorf("%w: SA policy %d", ErrInvalid, sa.PolicyID)
	}
	return nil
}

func saEntry(sa *SA) *bpf.CardXdpsecSa {
	e := &bpf.CardXdpsecSa{
		Spi:        wireU32(sa.SPI),
		Dir:        uint8(sa.Dir),
		Mode:       uint8(sa.Mode),
		Family:     familyOf(sa.Dst),
		EncapSport: sa.EncapSrcPort,
		EncapDport: sa.EncapDstPort,
		PolicyId:   uint16(sa.PolicyID),
		Reqid:      sa.ReqID,
		Src:        addrWords(sa.Src),
		Dst:        addrWords(sa.Dst),
	}
	if sa.Larval {
		e.Flags = uint8(bpf.CardXdpsecSaFlagsXDPSEC_SA_F_LARVAL)
	} else {
		e.Flags = uint8(bpf.CardXdpsecSaFlagsXDPSEC_SA_F_VALID)
	}
	return e
}

func entrySA(e *bpf.CardXdpsecSa) SA {
	return SA{
		Dir: ipsec.Dir(e.Dir), SPI: hostU32(e.Spi), Mode: ipsec.Mode(e.Mode),
		Src: wordsAddr(e.Src, e.Family), Dst: wordsAddr(e.Dst, e.Family),
		EncapSrcPort: e.EncapSport, EncapDstPort: e.EncapDport,
		PolicyID: uint32(e.PolicyId), ReqID: e.Reqid,
		Larval: e.Flags&uint8(bpf.CardXdpsecSaFlagsXDPSEC_SA_F_VALID) == 0,
	}
}

func inKey(e *bpf.CardXdpsecSa) bpf.CardXdpsecSaKey {
	return bpf.CardXdpsecSaKey{Spi: e.Spi, Dst: e.Dst, Family: e.Family, Proto: uint8(ipsec.ProtoESP)}
}

func installed(e *bpf.CardXdpsecSa) bool { return e.Flags != 0 }

// PutSA offloads the SA at index idx (allocated by the control plane) or updates it. An inbound SA is
// written to the SA table before its (SPI, destination, ESP) key points at it. A new SA starts with
// zeroed card and worker counters; an update keeps them.
func (c *Card) PutSA(idx uint32, sa SA) error {
	if err := sa.validate(); err != nil {
		return fmt.Errorf("put SA %d: %w", idx, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if idx >= c.cfg.SAs {
		return fmt.Errorf("put SA %d: %w (%d SAs)", idx, ErrCapacity, c.cfg.SAs)
	}
	var old bpf.CardXdpsecSa
	if err := c.objs.SaTable.Lookup(idx, &old); err != nil {
		return fmt.Errorf("read SA %d: %w", idx, err)
	}
	e := saEntry(&sa)
	if sa.Dir == ipsec.DirIn {
		k := inKey(e)
		var other uint32
		if err := c.objs.SaInLookup.Lookup(&k, &other); err == nil && other != idx {
			return fmt.Errorf("put SA %d (spi 0x%08x dst %s): %w at index %d", idx, sa.SPI, sa.Dst, ErrSAExists, other)
		}
	}
	if !installed(&old) {
		if err := c.resetSACounters(idx); err != nil {
			return err
		}
	}
	// An inbound SA that moves to another destination (the daemon's /v1/sa/migrate) is found under
	// its new key before its entry changes and under its old key until after: there is no moment in
	// which ESP for it finds neither. (The card checks no address after the lookup; the workers'
	// shared replay window keeps a packet from being accepted twice.)
	moving := installed(&old) && old.Dir == uint8(ipsec.DirIn) && inKey(&old) != inKey(e)
	if moving && sa.Dir == ipsec.DirIn {
		k := inKey(e)
		if err := c.objs.SaInLookup.Put(&k, idx); err != nil {
			return fmt.Errorf("write new inbound key of SA %d: %w", idx, err)
		}
	}
	if err := c.objs.SaTable.Put(idx, e); err != nil {
		return fmt.Errorf("write SA %d: %w", idx, err)
	}
	if sa.Dir == ipsec.DirIn && !moving {
		k := inKey(e)
		if err := c.objs.SaInLookup.Put(&k, idx); err != nil {
			return fmt.Errorf("write inbound key of SA %d: %w", idx, err)
		}
	}
	if moving {
		k := inKey(&old)
		if err := c.objs.SaInLookup.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete old inbound key of SA %d: %w", idx, err)
		}
	}
	return nil
}

// DeleteSA removes the SA at idx from the card: an inbound SA's key goes first, then the table entry.
// Its counters stay readable until the index is reused. Deleting an absent SA is not an error.
func (c *Card) DeleteSA(idx uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if idx >= c.cfg.SAs {
		return fmt.Errorf("delete SA %d: %w", idx, ErrCapacity)
	}
	var old bpf.CardXdpsecSa
	if err := c.objs.SaTable.Lookup(idx, &old); err != nil {
		return fmt.Errorf("read SA %d: %w", idx, err)
	}
	if !installed(&old) {
		return nil
	}
	if old.Dir == uint8(ipsec.DirIn) {
		k := inKey(&old)
		if err := c.objs.SaInLookup.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete inbound key of SA %d: %w", idx, err)
		}
	}
	if err := c.objs.SaTable.Put(idx, &bpf.CardXdpsecSa{}); err != nil {
		return fmt.Errorf("clear SA %d: %w", idx, err)
	}
	return nil
}

// GetSA returns the SA at idx, or ErrNotFound.
func (c *Card) GetSA(idx uint32) (SA, error) {
	if idx >= c.cfg.SAs {
		return SA{}, fmt.Errorf("get SA %d: %w", idx, ErrCapacity)
	}
	var e bpf.CardXdpsecSa
	if err := c.objs.SaTable.Lookup(idx, &e); err != nil {
		return SA{}, fmt.Errorf("read SA %d: %w", idx, err)
	}
	if !installed(&e) {
		return SA{}, fmt.Errorf("get SA %d: %w", idx, ErrNotFound)
	}
	return entrySA(&e), nil
}

// SAs calls fn for every installed SA (a full table walk; for consistency checks, not the hot path).
func (c *Card) SAs(fn func(idx uint32, sa SA) bool) error {
	var (
		k uint32
		e bpf.CardXdpsecSa
	)
	it := c.objs.SaTable.Iterate()
	for it.Next(&k, &e) {
		if installed(&e) && !fn(k, entrySA(&e)) {
			return nil
		}
	}
	return it.Err()
}
