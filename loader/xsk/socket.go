//go:build linux

package xsk

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Mode is the way a socket moves packets between the driver and the UMEM.
type Mode int

const (
	// ModeAuto tries zero-copy and falls back to copy mode.
	ModeAuto Mode = iota
	// ModeCopy copies every packet between the driver's buffers and the UMEM
	// (XDP_COPY); every driver with XDP can do it, veth included.
	ModeCopy
	// ModeZeroCopy has the driver DMA straight into the UMEM (XDP_ZEROCOPY).
	ModeZeroCopy
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeCopy:
		return "copy"
	case ModeZeroCopy:
		return "zero-copy"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// DefaultRingSize is the default number of entries of each ring.
const DefaultRingSize = 2048

// SocketConfig describes one AF_XDP socket: the interface queue it binds to
// and its rings.
type SocketConfig struct {
	Ifindex int
	QueueID int
	// Ring sizes, powers of two (default DefaultRingSize each). A zero-sized
	// RX or TX ring is not allowed: the workers need both.
	FillSize, CompletionSize, RXSize, TXSize uint32
	// Mode asks for copy or zero-copy mode; ModeAuto takes zero-copy where
	// the driver offers it. Sockets after the first on a UMEM inherit the
	// first's mode (a kernel rule), so asking them for another mode fails.
	Mode Mode
	// NoNeedWakeup turns XDP_USE_NEED_WAKEUP off: the kernel then never asks
	// to be woken and the caller must kick TX after every batch.
	NoNeedWakeup bool
	// SG binds with XDP_USE_SG (multi-buffer, Linux 6.6+): a packet larger
	// than a frame arrives as a chain of RX descriptors, every one but the
	// last flagged PktContd in Desc.Options. Without it the kernel drops
	// such packets. Like the mode, SG is a property of the UMEM's first
	// socket; later sockets inherit it (Socket.SG reports it).
	SG bool
	// BusyPoll sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL (BusyPollUsecs,
	// default 20) and SO_BUSY_POLL_BUDGET (BusyPollBudget, default 64), so
	// that poll/sendto run the driver's NAPI in the caller's context.
	BusyPoll       bool
	BusyPollUsecs  int
	BusyPollBudget int
}

// Socket is one AF_XDP socket with its four rings. Its rings are not safe
// for concurrent use: one goroutine (a worker) owns a socket.
type Socket struct {
	Fill       FillQueue
	Completion CompletionQueue
	RX         RXQueue
	TX         TXQueue

	fd      int
	umem    *UMEM
	mode    Mode
	ifindex int
	queue   int
	maps    [][]byte
	closed  bool
	// needWakeup: bound with XDP_USE_NEED_WAKEUP (or sharing a UMEM whose
	// first socket was), so the ring flags say when to kick.
	needWakeup bool
	sg         bool       // bound with XDP_USE_SG (or sharing a UMEM whose first socket was)
	mem        *MemKernel // set for sockets whose rings live in Go memory
}

func ringSize(v uint32, what string) (uint32, error) {
	if v == 0 {
		v = DefaultRingSize
	}
	if v&(v-1) != 0 {
		return 0, fmt.Errorf("%s ring size %d is not a power of two", what, v)
	}
	return v, nil
}

// Open creates a socket on the UMEM and binds it to cfg's interface queue.
// The first socket registers the UMEM; later ones share it (XDP_SHARED_UMEM)
// and get fill and completion rings of their own, as the kernel requires
// since 5.10 for a socket on another device or queue. Every socket of a UMEM
// must be bound to a distinct (interface, queue).
func (u *UMEM) Open(cfg SocketConfig) (_ *Socket, err error) {
	var sizes [4]uint32
	for i, v := range []struct {
		n    uint32
		what string
	}{{cfg.FillSize, "fill"}, {cfg.CompletionSize, "completion"}, {cfg.RXSize, "rx"}, {cfg.TXSize, "tx"}} {
		if sizes[i], err = ringSize(v.n, v.what); err != nil {
			return nil, fmt.Errorf("open xsk on ifindex %d queue %d: %w", cfg.Ifindex, cfg.QueueID, err)
		}
	}
	if sizes[0] > u.frameCount/2 || sizes[3] > u.frameCount/2 {
		// More descriptors than half the frames would let one ring hold
		// every frame and starve the other direction.
		return nil, fmt.Errorf("open xsk on ifindex %d queue %d: fill/tx ring sizes %d/%d exceed half of %d frames",
			cfg.Ifindex, cfg.QueueID, sizes[0], sizes[3], u.frameCount)
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, ErrClosed
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open xsk: create AF_XDP socket: %w", err)
	}
	s := &Socket{fd: fd, umem: u, ifindex: cfg.Ifindex, queue: cfg.QueueID}
	defer func() {
		if err != nil {
			s.unmap()
			unix.Close(fd)
			err = fmt.Errorf("open xsk on ifindex %d queue %d: %w", cfg.Ifindex, cfg.QueueID, err)
		}
	}()

	if u.regFD == -2 {
		return nil, errNotShared
	}
	first := u.regFD == -1
	if first {
		if err := registerUMEM(fd, u.mem, u.frameSize, u.headroom); err != nil {
			return nil, err
		}
	}
	for _, o := range []struct {
		opt  int
		size uint32
	}{
		{unix.XDP_UMEM_FILL_RING, sizes[0]},
		{unix.XDP_UMEM_COMPLETION_RING, sizes[1]},
		{unix.XDP_RX_RING, sizes[2]},
		{unix.XDP_TX_RING, sizes[3]},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, int(o.size)); err != nil {
			return nil, fmt.Errorf("set ring size option %d: %w", o.opt, err)
		}
	}
	if err := s.mapRings(sizes); err != nil {
		return nil, err
	}

	sa := &unix.SockaddrXDP{Ifindex: uint32(cfg.Ifindex), QueueID: uint32(cfg.QueueID)}
	if first {
		var flags uint16
		if !cfg.NoNeedWakeup {
			flags |= unix.XDP_USE_NEED_WAKEUP
		}
		if cfg.SG {
			flags |= unix.XDP_USE_SG
		}
		switch cfg.Mode {
		case ModeCopy:
			sa.Flags = flags | unix.XDP_COPY
			err = unix.Bind(fd, sa)
		case ModeZeroCopy:
			sa.Flags = flags | unix.XDP_ZEROCOPY
			err = unix.Bind(fd, sa)
		default:
			sa.Flags = flags | unix.XDP_ZEROCOPY
			if err = unix.Bind(fd, sa); err != nil {
				// A failed bind leaves the socket unbound; try again in copy mode.
				sa.Flags = flags | unix.XDP_COPY
				err = unix.Bind(fd, sa)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bind (flags %#x): %w", sa.Flags, err)
		}
	} else {
		if (cfg.Mode == ModeZeroCopy && !u.zeroCopy) || (cfg.Mode == ModeCopy && u.zeroCopy) {
			return nil, fmt.Errorf("bind: %v asked for, but the shared umem is bound in %v mode", cfg.Mode, modeOf(u.zeroCopy))
		}
		if cfg.SG != u.sg {
			return nil, fmt.Errorf("bind: sg=%v asked for, but the shared umem is bound with sg=%v", cfg.SG, u.sg)
		}
		// Shared sockets take their mode, need-wakeup and SG from the first
		// (the kernel refuses those flags together with XDP_SHARED_UMEM).
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(u.regFD)
		if err := unix.Bind(fd, sa); err != nil {
			return nil, fmt.Errorf("bind sharing the umem of fd %d (in %v mode): %w", u.regFD, modeOf(u.zeroCopy), err)
		}
	}
	opts, err := getOptions(fd)
	if err != nil {
		return nil, err
	}
	s.mode = modeOf(opts&unix.XDP_OPTIONS_ZEROCOPY != 0)
	if first {
		u.regFD = fd
		u.zeroCopy = s.mode == ModeZeroCopy
		u.needWakeup = !cfg.NoNeedWakeup
		u.sg = cfg.SG
	}
	s.needWakeup = u.needWakeup
	s.sg = u.sg
	if cfg.BusyPoll {
		if err := setBusyPoll(fd, cfg); err != nil {
			return nil, err
		}
	}
	// Let one sendto transmit a whole TX ring in copy mode instead of the
	// kernel's default 32 packets (XDP_MAX_TX_SKB_BUDGET, Linux 6.17). Older
	// kernels refuse the option; the caller then simply kicks more often.
	_ = unix.SetsockoptInt(fd, unix.SOL_XDP, unix.XDP_MAX_TX_SKB_BUDGET, int(sizes[3]))
	u.sockets++
	return s, nil
}

func modeOf(zc bool) Mode {
	if zc {
		return ModeZeroCopy
	}
	return ModeCopy
}

func setBusyPoll(fd int, cfg SocketConfig) error {
	usecs, budget := cfg.BusyPollUsecs, cfg.BusyPollBudget
	if usecs == 0 {
		usecs = 20
	}
	if budget == 0 {
		budget = 64
	}
	for _, o := range []struct {
		name     string
		opt, val int
	}{
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1},
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, usecs},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, budget},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
			return fmt.Errorf("set %s: %w", o.name, err)
		}
	}
	return nil
}

func (s *Socket) mapRings(sizes [4]uint32) error {
	off, err := getMmapOffsets(s.fd)
	if err != nil {
		return err
	}
	m, p, err := mapRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, sizes[0], 8, &s.Fill.r)
	if err != nil {
		return err
	}
	s.maps = append(s.maps, m)
	s.Fill.addrs = addrSlice(p, sizes[0])

	if m, p, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, sizes[1], 8, &s.Completion.r); err != nil {
		return err
	}
	s.maps = append(s.maps, m)
	s.Completion.addrs = addrSlice(p, sizes[1])

	if m, p, err = mapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, sizes[2], 16, &s.RX.r); err != nil {
		return err
	}
	s.maps = append(s.maps, m)
	s.RX.descs = descSlice(p, sizes[2])

	if m, p, err = mapRing(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, sizes[3], 16, &s.TX.r); err != nil {
		return err
	}
	s.maps = append(s.maps, m)
	s.TX.descs = descSlice(p, sizes[3])
	return nil
}

func (s *Socket) unmap() {
	for _, m := range s.maps {
		_ = unix.Munmap(m)
	}
	s.maps = nil
}

// FD is the socket's file descriptor: the value to put in the XSKMAP at
// the queue's index, and to poll.
func (s *Socket) FD() int { return s.fd }

// Mode is the mode the kernel granted: ModeCopy or ModeZeroCopy.
func (s *Socket) Mode() Mode { return s.mode }

// SG reports whether the socket is bound multi-buffer (XDP_USE_SG): then a
// received packet may span several descriptors (PktContd).
func (s *Socket) SG() bool { return s.sg }

// Ifindex and QueueID name the interface queue the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }
func (s *Socket) QueueID() int { return s.queue }

// UMEM is the UMEM the socket's frames live in.
func (s *Socket) UMEM() *UMEM { return s.umem }

// Kick asks the kernel to transmit what is on the TX ring, but only when the
// ring's need-wakeup flag says the kernel is waiting for it (always, for a
// socket bound without XDP_USE_NEED_WAKEUP, whose flag is never set).
// It reports whether a syscall was made.
// Transient refusals (the kernel is busy, out of buffers, or has more to do
// than one call's budget) are not errors: the caller kicks again later.
func (s *Socket) Kick() (bool, error) {
	if s.needWakeup && !s.TX.NeedWakeup() {
		return false, nil
	}
	return true, s.KickAlways()
}

// KickAlways calls sendto to start transmission regardless of the flag.
func (s *Socket) KickAlways() error {
	if s.mem != nil {
		s.mem.Kicks++
		return nil
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN:
		return nil
	}
	return fmt.Errorf("kick xsk tx: %w", errno)
}

// WakeRX tells a zero-copy driver to look at the fill ring again, when it
// asked for that; copy mode never asks. It reports whether a syscall was made.
func (s *Socket) WakeRX() (bool, error) {
	if !s.Fill.NeedWakeup() {
		return false, nil
	}
	if s.mem != nil {
		return true, nil
	}
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS, unix.ENETDOWN:
		return true, nil
	}
	return true, fmt.Errorf("wake xsk rx: %w", errno)
}

// Statistics are the kernel's drop counters for a socket (XDP_STATISTICS).
type Statistics struct {
	RXDropped        uint64 // no room, or a bad frame
	RXInvalidDescs   uint64
	TXInvalidDescs   uint64
	RXRingFull       uint64 // packets lost because the RX ring was full
	RXFillRingEmpty  uint64 // times the fill ring had no frame
	TXRingEmptyDescs uint64
}

// Statistics reads the kernel's counters for the socket.
func (s *Socket) Statistics() (Statistics, error) {
	if s.mem != nil {
		return Statistics{}, nil
	}
	st, err := getStatistics(s.fd)
	if err != nil {
		return Statistics{}, err
	}
	return Statistics{
		RXDropped:        st.Rx_dropped,
		RXInvalidDescs:   st.Rx_invalid_descs,
		TXInvalidDescs:   st.Tx_invalid_descs,
		RXRingFull:       st.Rx_ring_full,
		RXFillRingEmpty:  st.Rx_fill_ring_empty_descs,
		TXRingEmptyDescs: st.Tx_ring_empty_descs,
	}, nil
}

// Close unmaps the rings and closes the socket. Frames still on its rings
// are lost to accounting: drain first (see the package documentation).
func (s *Socket) Close() error {
	u := s.umem
	u.mu.Lock()
	defer u.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	u.sockets--
	if s.mem != nil {
		return nil
	}
	s.unmap()
	err := unix.Close(s.fd)
	if u.regFD == s.fd {
		// The kernel keeps the UMEM alive for the other sockets, but new
		// sockets can no longer name it.
		u.regFD = -2
	}
	if err != nil {
		return fmt.Errorf("close xsk: %w", err)
	}
	return nil
}

// errNotShared tells that the socket that registered the UMEM is gone.
var errNotShared = errors.New("the socket that registered the umem is closed")
