//go:build linux

package worker

import (
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
)

// TestMSSClampThroughWorker: with MSSClampAuto the sealed SYN carries the
// SA's inner MTU minus 40, counted; without the option it is untouched.
func TestMSSClampThroughWorker(t *testing.T) {
	r := newRig(t, 0, nil)
	mtu := r.sas.InnerMTU(outIdx)
	syn := packettest.SYN(false, 0x02, []byte{2, 4, 0x05, 0xb4})
	p := r.open(t, r.seal(t, syn))
	if packettest.MSS(p, 22) != 1460 || r.w.stats.MSSClamped.Load() != 0 {
		t.Fatalf("clamped without the option: mss %d", packettest.MSS(p, 22))
	}
	r.w.cfg.MSSClamp = MSSClampAuto
	p = r.open(t, r.seal(t, syn))
	if packettest.MSS(p, 22) != mtu-40 || !packettest.L4Verifies(p) || r.w.stats.MSSClamped.Load() != 1 {
		t.Fatalf("mss %d, want %d (verifies %v, counted %d)", packettest.MSS(p, 22), mtu-40, packettest.L4Verifies(p), r.w.stats.MSSClamped.Load())
	}
}
