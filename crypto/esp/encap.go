package esp

// Encap protects the inner packet at buf[off:off+n] in place and returns the
// outer packet at buf[start:end]: in tunnel mode the outer IP header [+UDP] +
// ESP; in transport mode the packet's own IP header (moved forward, protocol,
// length and checksum rewritten) + [UDP] + ESP.
func (sa *SA) Encap(buf []byte, off, n int) (start, end int, err error) {
	return sa.fail(ErrWiped)
}

func (sa *SA) frontLen(n int) (int, int) { return 0, 0 }
func (sa *SA) trailerLen(n int) int      { return 0 }
