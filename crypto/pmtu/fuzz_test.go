package pmtu

import (
	"testing"
)

// FuzzReplies feeds arbitrary bytes as the offending packet: nothing may panic, every reply must
// fit its bound and the output buffer, and every fragment the MTU.
func FuzzReplies(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 1, 10, 198, 18, 2, 10}, uint16(1400))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 58, 64, 0x20, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10,
		0x20, 1, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x10, 1, 0, 0, 0, 0, 0, 0, 0}, uint16(1280))
	f.Add([]byte{0x46, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 1, 10, 198, 18, 2, 10, 0x82, 3, 0, 0}, uint16(68))
	f.Fuzz(func(t *testing.T, pkt []byte, mtu uint16) {
		dst := make([]byte, 1500)
		if n, err := FragNeeded(dst, gw4, pkt, int(mtu)); err == nil && (n > MaxReply4 || n < 28) {
			t.Fatalf("FragNeeded reply of %d bytes", n)
		}
		if n, err := PacketTooBig(dst, gw6, pkt, int(mtu)); err == nil && (n > MaxReply6 || n < 48) {
			t.Fatalf("PacketTooBig reply of %d bytes", n)
		}
		var fr Fragmenter
		if fr.Reset(pkt, int(mtu)) != nil {
			return
		}
		want := fr.Count()
		got := 0
		for {
			n, err := fr.Next(dst)
			if err != nil || n == 0 {
				break
			}
			got++
			if n > int(mtu) && want > 1 {
				t.Fatalf("fragment of %d bytes over mtu %d", n, mtu)
			}
			if got > 10000 {
				t.Fatal("fragmenter does not terminate")
			}
		}
		if got != want && len(dst) >= int(mtu) {
			t.Fatalf("Count %d, Next gave %d", want, got)
		}
	})
}
