//go:build linux

package xsk

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Stopper wakes a goroutine blocked in Poller.Wait from any other goroutine,
// through an eventfd that the poller watches beside its sockets.
type Stopper struct {
	fd int
}

// NewStopper creates the eventfd.
func NewStopper() (*Stopper, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("create stop eventfd: %w", err)
	}
	return &Stopper{fd: fd}, nil
}

// Stop makes every current and future Wait on a poller of this stopper
// return stopped=true. It is safe to call from any goroutine, several times.
func (s *Stopper) Stop() error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(s.fd, one[:]); err != nil && err != unix.EAGAIN {
		return fmt.Errorf("signal stop eventfd: %w", err)
	}
	return nil
}

// Close closes the eventfd; no poller may use it afterwards.
func (s *Stopper) Close() error { return unix.Close(s.fd) }

// Poller waits for any of a fixed set of sockets to become readable (or
// writable, when asked) or for its stopper to fire. It is owned by one
// goroutine and allocates nothing per Wait.
type Poller struct {
	fds []unix.PollFd // fds[0] is the stopper
}

// NewPoller watches the sockets (POLLIN) and the stopper.
func NewPoller(stop *Stopper, socks ...*Socket) *Poller {
	p := &Poller{fds: make([]unix.PollFd, 1, 1+len(socks))}
	p.fds[0] = unix.PollFd{Fd: int32(stop.fd), Events: unix.POLLIN}
	for _, s := range socks {
		p.fds = append(p.fds, unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN})
	}
	return p
}

// WantWrite sets whether Wait also wakes when socket i (in NewPoller's
// order) can take more TX descriptors or has completions to reap, which a
// worker wants while frames are in flight.
func (p *Poller) WantWrite(i int, on bool) {
	if on {
		p.fds[1+i].Events = unix.POLLIN | unix.POLLOUT
	} else {
		p.fds[1+i].Events = unix.POLLIN
	}
}

// Wait blocks up to timeoutMs milliseconds (-1: forever). poll(2) on an
// AF_XDP socket also wakes a zero-copy driver whose fill ring asked for it.
// It reports stopped=true once the stopper has fired.
func (p *Poller) Wait(timeoutMs int) (stopped bool, err error) {
	for i := range p.fds {
		p.fds[i].Revents = 0
	}
	for {
		_, err = unix.Poll(p.fds, timeoutMs)
		if err == unix.EINTR {
			continue
		}
		break
	}
	if err != nil {
		return false, fmt.Errorf("poll xsk: %w", err)
	}
	return p.fds[0].Revents&unix.POLLIN != 0, nil
}
