package daemon

import "github.com/xdpsec/xdpsec/crypto/worker"

// FrameAccounts reports where each worker's AF_XDP frames are, and how many frames came back twice
// or from outside a pool. Call it after Close, when every frame must be free or on a fill ring
// (worker.FrameAccount.Balanced) and there must be no frame errors: a soak's proof that the data
// path lost no frame.
func (d *Daemon) FrameAccounts() ([]worker.FrameAccount, uint64) {
	out := make([]worker.FrameAccount, len(d.workers))
	var errs uint64
	for i, w := range d.workers {
		out[i] = w.Frames()
		errs += w.Stats().FrameErrors.Load()
	}
	return out, errs
}
