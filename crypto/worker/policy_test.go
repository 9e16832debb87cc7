//go:build linux

package worker

import (
	"testing"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/crypto/internal/packet"
	"github.com/xdpsec/xdpsec/ipsec"
)

// FuzzWorker feeds arbitrary metadata and frames to both directions of the
// worker: nothing panics, nothing leaves unless it was sealed or opened with
// a valid SA, and every frame is accounted for.
func FuzzWorker(f *testing.F) {
	ip := ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64)
	f.Add(outMeta(), outFrame(ip), false)
	f.Add(inMeta(), outFrame(ip), true)
	f.Add(metaBytes(metaOpt{dir: ipsec.DirOut, sa: outIdx, egress: 7, l3Off: 18}), outFrame(ip), false)
	f.Add(outMeta(), outFrame(ipv4UDP(1700, innerSrc, innerDst, 1, 2, false, 64)), false)
	r := newRig(f, 0, nil)
	f.Fuzz(func(t *testing.T, meta, frame []byte, inbound bool) {
		if len(meta) > 64 || len(frame) > 1700 {
			return
		}
		k := r.prot
		if inbound {
			k = r.wire
		}
		if !k.Receive(meta, frame) {
			return
		}
		wire, prot := r.step(t)
		for _, f := range wire {
			// Only ESP leaves on the wire.
			if len(f) < 14+20 || (f[14]>>4 == 4 && f[14+9] != 50) || (f[14]>>4 == 6 && f[14+6] != 50) {
				t.Fatalf("non-ESP frame on the wire: %x", f)
			}
		}
		_ = prot
		r.checkFrames(t)
	})
}

// FuzzWorkerInbound is FuzzWorker's inbound direction with authentic
// packets: FuzzWorker's random frames fail the ICV, so the decrypted inner
// packet, the policy check on it and the forwarding to the protected side
// are out of its reach. Here the fuzzer's bytes are the inner packet, sealed
// with the inbound SA's key as the peer gateway (buggy or hostile, but
// holding the keys) would: nothing panics, every frame is accounted for, and
// whatever reaches the protected side passes the inbound SA's check list.
func FuzzWorkerInbound(f *testing.F) {
	f.Add(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 64))
	f.Add(ipv4UDP(100, innerSrc, innerDst, 1, 2, true, 1))
	f.Add(ipv4UDP(100, innerDst, innerSrc, 1, 2, false, 64))
	f.Add(ipv4UDP(1400, innerSrc, innerDst, 1, 2, true, 64))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 17, 64})
	r := newRig(f, 0, nil)
	peerOut := newSA(f, spiOut, outerSrc, outerDst, 0)
	check := lanCheck()
	buf := make([]byte, esp.Headroom+1800+esp.Tailroom)
	f.Fuzz(func(t *testing.T, inner []byte) {
		if len(inner) > 1600 {
			return
		}
		n := copy(buf[esp.Headroom:], inner)
		s, e, err := peerOut.Encap(buf, esp.Headroom, n)
		if err != nil {
			return // not an IP packet the peer could send
		}
		outer := buf[s:e]
		if len(outer) > 1500 {
			return
		}
		if !r.wire.Receive(inMeta(), ether(gwMAC, peerGwMAC, 0x0800, outer)) {
			return
		}
		_, prot := r.step(t)
		for _, p := range prot {
			var tu ipsec.Tuple
			if !packet.Tuple(p[14:], &tu) {
				t.Fatalf("unparsable frame on the protected side: %x", p)
			}
			if !check.Accepts(&tu) {
				t.Fatalf("frame outside the SA's selectors on the protected side: %+v %x", tu, p)
			}
		}
		r.checkFrames(t)
	})
}
