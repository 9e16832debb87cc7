package testbed

import (
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"time"
)

// SinkResult is what a TCP sink received before its peer closed: the
// SHA-256 of the bytes, their count, and the error that ended the read.
type SinkResult struct {
	Sum [32]byte
	N   int64
	Err error
}

// DialSink starts a TCP sink on dst (an address of h2, any port) that
// hashes everything it receives, and dials it from h1. It returns h1's
// connection and a channel that yields the sink's result once the sender
// half-closes or closes the connection. Both ends get a deadline of timeout
// from now. The caller closes conn.
func (tb *Testbed) DialSink(dst netip.Addr, timeout time.Duration) (net.Conn, <-chan SinkResult, error) {
	var ln net.Listener
	if err := tb.InNS(H2, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, 0).String())
		return err
	}); err != nil {
		return nil, nil, err
	}
	res := make(chan SinkResult, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close() // one connection only
		if err != nil {
			res <- SinkResult{Err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		h := sha256.New()
		n, err := io.Copy(h, c)
		res <- SinkResult{Sum: [32]byte(h.Sum(nil)), N: n, Err: err}
	}()
	var conn net.Conn
	if err := tb.InNS(H1, func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		ln.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	return conn, res, nil
}
