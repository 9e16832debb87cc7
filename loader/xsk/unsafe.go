//go:build linux

package xsk

// Every use of package unsafe in xsk lives in this file: the ring headers and
// descriptor arrays the kernel shares with us over mmap, the socket options
// that take structs, and the UMEM's byte slice.

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapRing mmaps one ring of a socket and points r at the kernel's producer,
// consumer and flags words. entrySize is 8 (fill, completion) or 16 (RX, TX).
// It returns the mapping (to unmap on close) and the descriptor area.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, size uint32, entrySize uintptr, r *ring) ([]byte, unsafe.Pointer, error) {
	length := int(off.Desc) + int(size)*int(entrySize)
	mem, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap ring at offset %#x: %w", pgoff, err)
	}
	base := unsafe.Pointer(&mem[0])
	r.init(
		(*atomic.Uint32)(unsafe.Add(base, off.Producer)),
		(*atomic.Uint32)(unsafe.Add(base, off.Consumer)),
		(*atomic.Uint32)(unsafe.Add(base, off.Flags)),
		size,
	)
	return mem, unsafe.Add(base, off.Desc), nil
}

// addrSlice views n uint64 ring entries at p.
func addrSlice(p unsafe.Pointer, n uint32) []uint64 {
	return unsafe.Slice((*uint64)(p), n)
}

// descSlice views n descriptors at p.
func descSlice(p unsafe.Pointer, n uint32) []unix.XDPDesc {
	return unsafe.Slice((*unix.XDPDesc)(p), n)
}

// getMmapOffsets asks the kernel where the producer, consumer, flags and
// descriptor words of each ring sit inside its mapping.
func getMmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	n := uint32(unsafe.Sizeof(off))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return off, fmt.Errorf("get XDP_MMAP_OFFSETS: %w", errno)
	}
	return off, nil
}

// getStatistics reads XDP_STATISTICS.
func getStatistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	n := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return st, fmt.Errorf("get XDP_STATISTICS: %w", errno)
	}
	return st, nil
}

// getOptions reads XDP_OPTIONS (whether the bound socket is zero-copy).
func getOptions(fd int) (uint32, error) {
	var opts uint32
	n := uint32(unsafe.Sizeof(opts))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_OPTIONS,
		uintptr(unsafe.Pointer(&opts)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return 0, fmt.Errorf("get XDP_OPTIONS: %w", errno)
	}
	return opts, nil
}

// registerUMEM hands the UMEM's memory to the kernel on fd (XDP_UMEM_REG).
func registerUMEM(fd int, mem []byte, frameSize, headroom uint32) error {
	reg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&mem[0]))),
		Len:      uint64(len(mem)),
		Size:     frameSize,
		Headroom: headroom,
	}
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0)
	if errno != 0 {
		return fmt.Errorf("set XDP_UMEM_REG: %w", errno)
	}
	return nil
}
