package esp

// Decap verifies and decrypts the outer packet at buf[off:off+n] in place and
// returns the inner packet (tunnel mode) or the rebuilt IP packet (transport
// mode) at buf[start:end].
func (sa *SA) Decap(buf []byte, off, n int) (start, end int, err error) {
	return sa.fail(ErrWiped)
}
