package daemon

import "github.com/xdpsec/xdpsec/control/seqstate"

// Stats are the state directory's counters for the metrics (zero without one: tests of the
// driver alone).
func (d *driver) Stats() seqstate.Stats {
	if d.state == nil {
		return seqstate.Stats{}
	}
	return d.state.Stats()
}
