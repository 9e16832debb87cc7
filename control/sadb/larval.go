package sadb

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/ipsec"
)

// Larval SAs: SPIs reserved for an SA being negotiated, like XFRM_MSG_ALLOCSPI. An IKE daemon takes
// an inbound SPI before the negotiation and adds the SA (with its keys) only when it succeeds; in
// between the SPI must not go to anyone else. A larval entry is not an SA: it is not listed, not
// offloaded (the card treats ESP for it as for any unknown SPI), has no events and is not counted as
// an SA. Adding the SA consumes it, deleting the SA's identity removes it, and it expires unused.

// DefaultMaxLarval bounds the larval entries (Options.MaxLarval).
const DefaultMaxLarval = 1 << 16

// Larval lifetimes: the default when none is asked for, and the most one may ask for.
const (
	DefaultLarvalLifetime = 30 * time.Second
	MaxLarvalLifetime     = time.Hour
)

// SPIRequest asks for a free SPI in [Min, Max] for an SA to Dst.
type SPIRequest struct {
	Dst      netip.Addr
	Proto    ipsec.Proto // ESP; 0 is taken for ESP
	Min, Max uint32
	// Lifetime is how long the reservation lives unused; 0 means DefaultLarvalLifetime.
	Lifetime time.Duration
}

// Larval is a reserved SPI.
type Larval struct {
	SAID
	Expires time.Time
}

// AllocSPI reserves a random SPI in [req.Min, req.Max] that no SA (live, or deleted and still held by
// the card) and no other larval entry with the same destination and protocol has. ErrFull when none is
// free or the larval entries are at their bound.
func (s *Store) AllocSPI(req SPIRequest) (Larval, error) {
	if req.Proto == 0 {
		req.Proto = ipsec.ProtoESP
	}
	switch {
	case req.Proto != ipsec.ProtoESP:
		return Larval{}, fmt.Errorf("allocate spi: %w: proto %s: only esp", ErrInvalid, req.Proto)
	case !req.Dst.IsValid():
		return Larval{}, fmt.Errorf("allocate spi: %w: dst missing", ErrInvalid)
	case req.Min < 256 || req.Min > req.Max:
		// RFC 4303 §2.1: 1..255 are reserved by IANA, 0 is never sent.
		return Larval{}, fmt.Errorf("allocate spi: %w: want 256 <= min <= max, got min %d max %d", ErrInvalid, req.Min, req.Max)
	case req.Lifetime < 0 || req.Lifetime > MaxLarvalLifetime:
		return Larval{}, fmt.Errorf("allocate spi: %w: lifetime %s: at most %s", ErrInvalid, req.Lifetime, MaxLarvalLifetime)
	}
	if req.Lifetime == 0 {
		req.Lifetime = DefaultLarvalLifetime
	}
	dst := req.Dst.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.purgeLarvalLocked(now)
	if len(s.larval) >= s.opts.MaxLarval {
		return Larval{}, fmt.Errorf("allocate spi: %w: %d SPIs reserved and not used yet", ErrFull, len(s.larval))
	}
	taken := func(spi uint32) bool {
		id := SAID{SPI: spi, Dst: dst, Proto: req.Proto}
		if _, ok := s.sas.byKey[id]; ok {
			return true
		}
		if _, ok := s.larval[id]; ok {
			return true
		}
		return s.inGraveLocked(id)
	}
	span := uint64(req.Max) - uint64(req.Min) + 1
	start := uint64(randUint32()) % span
	// A random start, then the next free one: among any n+1 consecutive SPIs one is free when n are
	// taken, so this ends after at most as many steps as there are entries.
	limit := min(span, uint64(len(s.sas.all)+len(s.grave)+len(s.larval))+1)
	for i := uint64(0); i < limit; i++ {
		spi := uint32(uint64(req.Min) + (start+i)%span)
		if taken(spi) {
			continue
		}
		l := Larval{SAID: SAID{SPI: spi, Dst: dst, Proto: req.Proto}, Expires: now.Add(req.Lifetime)}
		s.larval[l.SAID] = l.Expires
		return l, nil
	}
	return Larval{}, fmt.Errorf("allocate spi: %w: no free spi in %#x..%#x for dst %s", ErrFull, req.Min, req.Max, dst)
}

// DeleteLarval removes the larval entry id, reporting whether there was one (unexpired).
func (s *Store) DeleteLarval(id SAID) bool {
	if id.Proto == 0 {
		id.Proto = ipsec.ProtoESP
	}
	id.Dst = id.Dst.Unmap()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLarvalLocked(s.opts.Now())
	_, ok := s.larval[id]
	delete(s.larval, id)
	return ok
}

// Larvals returns the number of unexpired larval entries.
func (s *Store) Larvals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLarvalLocked(s.opts.Now())
	return len(s.larval)
}

// purgeLarvalLocked forgets expired entries. Expiry is checked whenever the entries are used, so an
// expired one never blocks an SPI; the bound keeps their number finite in between.
func (s *Store) purgeLarvalLocked(now time.Time) {
	for id, exp := range s.larval {
		if !now.Before(exp) {
			delete(s.larval, id)
		}
	}
}

func (s *Store) inGraveLocked(id SAID) bool {
	for _, r := range s.grave {
		if r.e.ID() == id {
			return true
		}
	}
	return false
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on Linux
	return binary.LittleEndian.Uint32(b[:])
}
