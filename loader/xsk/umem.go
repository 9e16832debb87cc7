//go:build linux

package xsk

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Defaults for a UMEM. PERF-NOTES: on this shared 2-core machine a Go
// receiver with 4,096 frames lost ~30 % of packets when another process held
// its core; 65,536 frames of 2 KiB (128 MiB) lost nothing.
const (
	DefaultFrameCount = 65536
	DefaultFrameSize  = 2048
)

// PacketHeadroom is the room the kernel leaves in front of every received
// packet (XDP_PACKET_HEADROOM), on top of UMEMConfig.Headroom. The card's
// metadata (bpf_xdp_adjust_meta) occupies the last bytes of it, right before
// the packet: the kernel copies it along in copy mode too, to desc.Addr-metalen.
const PacketHeadroom = unix.XDP_PACKET_HEADROOM

// ErrClosed is returned by operations on a closed UMEM or socket.
var ErrClosed = errors.New("xsk: closed")

// UMEMConfig sizes a UMEM.
type UMEMConfig struct {
	// FrameCount is the number of frames (default DefaultFrameCount).
	FrameCount uint32
	// FrameSize is the size of a frame, a power of two from 2048 to the page
	// size (default DefaultFrameSize).
	FrameSize uint32
	// Headroom is extra room the kernel leaves in front of each received
	// packet besides PacketHeadroom (XDP_UMEM_REG headroom; default 0).
	Headroom uint32
}

// UMEM is the packet memory shared by every socket opened on it: one
// anonymous mapping cut into equal frames, addressed by byte offset.
// The first socket opened on a UMEM registers it with the kernel; the others
// bind with XDP_SHARED_UMEM to that socket, so a frame received on one
// interface can be transmitted on another without a copy.
type UMEM struct {
	mem        []byte
	frameSize  uint32
	frameCount uint32
	headroom   uint32

	mu         sync.Mutex
	regFD      int // socket that registered the UMEM, -1 before the first Open
	zeroCopy   bool
	needWakeup bool
	sg         bool // the first socket bound with XDP_USE_SG
	sockets    int
	closed     bool
}

// NewUMEM maps the memory for a UMEM. It needs no privileges; registering it
// with the kernel happens when the first socket is opened.
func NewUMEM(cfg UMEMConfig) (*UMEM, error) {
	if cfg.FrameCount == 0 {
		cfg.FrameCount = DefaultFrameCount
	}
	if cfg.FrameSize == 0 {
		cfg.FrameSize = DefaultFrameSize
	}
	page := uint32(unix.Getpagesize())
	if cfg.FrameSize&(cfg.FrameSize-1) != 0 || cfg.FrameSize < 2048 || cfg.FrameSize > page {
		return nil, fmt.Errorf("create umem: frame size %d is not a power of two in [2048, %d]", cfg.FrameSize, page)
	}
	if cfg.Headroom+PacketHeadroom+64 > cfg.FrameSize {
		return nil, fmt.Errorf("create umem: headroom %d leaves no room for a packet in a %d-byte frame", cfg.Headroom, cfg.FrameSize)
	}
	size := int(cfg.FrameCount) * int(cfg.FrameSize)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("create umem: mmap %d bytes: %w", size, err)
	}
	return &UMEM{mem: mem, frameSize: cfg.FrameSize, frameCount: cfg.FrameCount, headroom: cfg.Headroom, regFD: -1}, nil
}

// FrameSize is the size of one frame.
func (u *UMEM) FrameSize() uint32 { return u.frameSize }

// FrameCount is the number of frames.
func (u *UMEM) FrameCount() uint32 { return u.frameCount }

// RXOffset is where, inside its frame, a received packet starts:
// UMEMConfig.Headroom + PacketHeadroom. Use it too for packets you build in
// a free frame, so that every frame has the same room in front.
func (u *UMEM) RXOffset() uint32 { return u.headroom + PacketHeadroom }

// FrameBase returns the address of the frame that holds addr.
func (u *UMEM) FrameBase(addr uint64) uint64 { return addr &^ uint64(u.frameSize-1) }

// Frame returns the whole frame that holds addr, so that callers can move a
// packet's start backwards into the headroom or grow it into the tailroom.
func (u *UMEM) Frame(addr uint64) []byte {
	base := addr &^ uint64(u.frameSize-1)
	return u.mem[base : base+uint64(u.frameSize) : base+uint64(u.frameSize)]
}

// Bytes returns the n bytes at addr (a descriptor's packet).
func (u *UMEM) Bytes(addr uint64, n uint32) []byte { return u.mem[addr : addr+uint64(n)] }

// ZeroCopy reports whether the sockets of this UMEM run in zero-copy mode
// (all of them do, or none: the kernel gives shared sockets the mode of the
// first).
func (u *UMEM) ZeroCopy() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.zeroCopy
}

// Pools cuts the UMEM's frames into n disjoint pools of equal size (the
// remainder is left out), one per worker, so that no two goroutines ever
// share a free list.
func (u *UMEM) Pools(n int) ([]*FramePool, error) {
	if n <= 0 || uint32(n) > u.frameCount {
		return nil, fmt.Errorf("split umem: %d pools of %d frames", n, u.frameCount)
	}
	per := u.frameCount / uint32(n)
	pools := make([]*FramePool, n)
	for i := range pools {
		p := &FramePool{frames: make([]uint64, 0, per), size: int(per), frameMask: ^uint64(u.frameSize - 1)}
		// Push in reverse so that Get hands out low addresses first.
		for f := int(per) - 1; f >= 0; f-- {
			p.frames = append(p.frames, uint64(uint32(i)*per+uint32(f))*uint64(u.frameSize))
		}
		pools[i] = p
	}
	return pools, nil
}

// Close unmaps the memory. Close every socket of the UMEM first: the kernel
// keeps its own pin on the pages until the last socket goes, but the Go side
// must not touch them after Close.
func (u *UMEM) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	if u.sockets > 0 {
		return fmt.Errorf("close umem: %d sockets still open", u.sockets)
	}
	u.closed = true
	if err := unix.Munmap(u.mem); err != nil {
		return fmt.Errorf("close umem: %w", err)
	}
	u.mem = nil
	return nil
}

// FramePool is a stack of free frame addresses owned by one goroutine. It is
// not safe for concurrent use: each worker has its own pool.
type FramePool struct {
	frames    []uint64
	size      int
	frameMask uint64
}

// Get pops a free frame's base address.
func (p *FramePool) Get() (uint64, bool) {
	n := len(p.frames)
	if n == 0 {
		return 0, false
	}
	a := p.frames[n-1]
	p.frames = p.frames[:n-1]
	return a, true
}

// GetN pops up to len(out) free frames into out and returns how many.
func (p *FramePool) GetN(out []uint64) int {
	n := min(len(out), len(p.frames))
	copy(out, p.frames[len(p.frames)-n:])
	p.frames = p.frames[:len(p.frames)-n]
	return n
}

// Put pushes the frame holding addr back (any address inside a frame names
// it: completion addresses carry the packet's offset). It reports false, and
// keeps nothing, when the pool is already full: a frame was returned twice,
// which the caller should count as an accounting error.
func (p *FramePool) Put(addr uint64) bool {
	if len(p.frames) == cap(p.frames) {
		return false
	}
	p.frames = append(p.frames, addr&p.frameMask)
	return true
}

// Len is the number of free frames.
func (p *FramePool) Len() int { return len(p.frames) }

// Size is the number of frames the pool was cut with.
func (p *FramePool) Size() int { return p.size }

// Free returns the free frames' addresses (for accounting checks; do not
// modify).
func (p *FramePool) Free() []uint64 { return p.frames }
