package worker

// The only use of unsafe in package worker: viewing the card's mmap'd
// counters as []SAStats.

import (
	"errors"
	"unsafe"
)

// statsSize is the size of one SAStats, and of one struct xdpsec_worker_stats.
const statsSize = unsafe.Sizeof(SAStats{})

func statsView(mem []byte) ([]SAStats, error) {
	size := int(unsafe.Sizeof(SAStats{}))
	if len(mem) < size || len(mem)%size != 0 {
		return nil, errors.New("memory length is not a multiple of the stats element size")
	}
	if uintptr(unsafe.Pointer(&mem[0]))%8 != 0 {
		return nil, errors.New("memory is not 8-byte aligned")
	}
	return unsafe.Slice((*SAStats)(unsafe.Pointer(&mem[0])), len(mem)/size), nil
}
