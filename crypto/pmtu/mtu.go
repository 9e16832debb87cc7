package pmtu

// MaxInner returns the largest inner packet that still fits linkMTU once the encapsulation adds
// overhead(n) bytes to an n-byte packet (crypto/esp's SA.Overhead: outer IP, UDP, ESP header, IV,
// padding, trailer, ICV). overhead need not be linear, since padding rounds up to the cipher's
// block, but must not shrink as n grows. It returns 0 if not even an empty packet fits.
// The worker calls it once per SA and wire MTU, not per packet.
func MaxInner(linkMTU int, overhead func(n int) int) int {
	lo, hi := 0, linkMTU // invariant: lo fits (or is 0); hi+1 does not
	if overhead(0) > linkMTU {
		return 0
	}
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if mid+overhead(mid) <= linkMTU {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}
