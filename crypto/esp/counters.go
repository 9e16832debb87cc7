package esp

import "sync/atomic"

// Counters is a snapshot of an SA's counters. Bytes count inner packets (the
// plaintext handed to Encap / returned by Decap), as IPsec byte lifetimes do.
// The outbound counts come from the sequence counter, which SAs made by
// Continue or Migrate share: such an SA counts, from the moment it was made,
// the packets sent through any SA sharing its counter (see Continue).
type Counters struct {
	OutPackets, OutBytes uint64
	InPackets, InBytes   uint64
	// Errors counts refused packets by Reason, both directions together
	// (each reason belongs to one direction, except no_room/too_big/wiped).
	Errors [NumReasons]uint64
}

type counters struct {
	inPackets, inBytes atomic.Uint64
	errors             [NumReasons]atomic.Uint64
}

// Counters returns a snapshot. Each field is read atomically; the fields are
// not one consistent cut (nor need they be for lifetimes or metrics).
func (sa *SA) Counters() Counters {
	var c Counters
	c.OutPackets = sa.out.last.Load() - sa.outBase
	c.OutBytes = sa.out.bytes.Load() - sa.outBytesBase
	c.InPackets = sa.ctr.inPackets.Load()
	c.InBytes = sa.ctr.inBytes.Load()
	for i := range c.Errors {
		c.Errors[i] = sa.ctr.errors[i].Load()
	}
	return c
}

// fail counts err's reason and returns it.
func (sa *SA) fail(err *Error) (int, int, error) {
	sa.ctr.errors[err.Reason].Add(1)
	return 0, 0, err
}
