package packet

import (
	"testing"

	"github.com/xdpsec/xdpsec/crypto/internal/packet/packettest"
)

// TestClampMSS: the MSS option of SYNs and SYN-ACKs is lowered, at an even
// or an odd offset among other options, with a checksum that verifies;
// smaller MSS values, non-SYNs, SYNs without the option and malformed
// options are left alone.
func TestClampMSS(t *testing.T) {
	mssOpt := []byte{2, 4, 0x05, 0xb4} // 1460
	ts := []byte{8, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	for _, c := range []struct {
		name    string
		v6      bool
		flags   byte
		opts    []byte
		at      int // offset of the MSS value in the TCP header
		clamp   int
		want    int
		changed bool
	}{
		{"v4 syn even", false, 0x02, append(append([]byte{}, mssOpt...), 4, 2), 22, 1360, 1360, true},
		{"v4 syn odd", false, 0x02, append([]byte{1}, append(mssOpt, 1, 1, 1)...), 23, 1000, 1000, true},
		{"v6 syn-ack after timestamps", true, 0x12, append(append([]byte{1, 1}, ts...), mssOpt...), 34, 1340, 1340, true},
		{"v6 syn odd after sack-permitted", true, 0x02, append([]byte{4, 2, 1}, mssOpt...), 25, 1200, 1200, true},
		{"already smaller", false, 0x02, mssOpt, 22, 1460, 1460, false},
		{"not a syn", false, 0x10, mssOpt, 22, 1000, 1460, false},
		{"after end of options", false, 0x02, append([]byte{0, 0, 0, 0}, mssOpt...), 26, 1000, 1460, false},
		{"option overruns header", false, 0x02, []byte{1, 1, 2, 8, 0x05, 0xb4, 0, 0}, 24, 1000, 1460, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := packettest.SYN(c.v6, c.flags, c.opts)
			orig := append([]byte(nil), p...)
			if got := ClampMSS(p, c.clamp); got != c.changed {
				t.Fatalf("clampMSS = %v, want %v", got, c.changed)
			}
			if m := packettest.MSS(p, c.at); m != c.want {
				t.Errorf("mss %d, want %d", m, c.want)
			}
			if !packettest.L4Verifies(p) {
				t.Error("checksum does not verify")
			}
			if !c.changed && string(p) != string(orig) {
				t.Error("packet changed")
			}
		})
	}
}
