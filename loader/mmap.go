package loader

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// mmapArray maps an mmap-able BPF array (BPF_F_MMAPABLE) into the process as a slice of its values: the
// card and the process then share the memory. T's size must be a multiple of 8 bytes (the kernel's
// stride). The slice stays valid until munmap(mem).
func mmapArray[T any](m *ebpf.Map) (mem []byte, s []T, err error) {
	var v T
	if unsafe.Sizeof(v)%8 != 0 {
		return nil, nil, fmt.Errorf("mmap %s: value size %d is not a multiple of 8", m, unsafe.Sizeof(v))
	}
	n := int(m.MaxEntries())
	size := n * int(unsafe.Sizeof(v))
	if size == 0 {
		return nil, nil, nil
	}
	mem, err = unix.Mmap(m.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", m, err)
	}
	return mem, unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n), nil
}
