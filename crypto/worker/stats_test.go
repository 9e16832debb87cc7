//go:build linux

package worker

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/loader/xsk/xsktest"
)

// TestStatsLayout: SAStats must be the card's struct xdpsec_worker_stats,
// field for field, and the reasons must fit its error array.
func TestStatsLayout(t *testing.T) {
	var c bpf.CardXdpsecWorkerStats
	var s SAStats
	if unsafe.Sizeof(c) != unsafe.Sizeof(s) || unsafe.Offsetof(c.Errors) != unsafe.Offsetof(s.Errors) ||
		len(c.Errors) != len(s.Errors) || unsafe.Offsetof(c.Bytes) != unsafe.Offsetof(s.Bytes) {
		t.Fatalf("SAStats (%d bytes) differs from xdpsec_worker_stats (%d bytes)", unsafe.Sizeof(s), unsafe.Sizeof(c))
	}
	if int(ReasonPMTU) >= NumErrorSlots || int(esp.NumReasons) > int(ReasonPolicyMismatch) {
		t.Fatal("the engine's and the worker's reasons overlap or do not fit the error slots")
	}
	if _, err := StatsTableFromMem(make([]byte, 100)); err == nil {
		t.Fatal("odd-sized memory accepted")
	}
}

// TestMapStats writes counters through the mmap'd view of a real
// BPF_F_MMAPABLE array and reads them back with a map lookup, as bpftool
// and the control plane do.
func TestMapStats(t *testing.T) {
	xsktest.RequireRoot(t)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xs_wstats", Type: ebpf.Array, KeySize: 4,
		ValueSize: uint32(unsafe.Sizeof(SAStats{})), MaxEntries: 100, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tab, unmap, err := MapStats(m.FD(), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	tab.SA(42).Packets.Add(3)
	tab.SA(42).Bytes.Add(4500)
	tab.SA(42).Errors[ReasonPolicyMismatch].Add(2)
	tab.SA(99).Errors[esp.ReasonReplay].Add(1)
	var v bpf.CardXdpsecWorkerStats
	if err := m.Lookup(uint32(42), &v); err != nil {
		t.Fatal(err)
	}
	if v.Packets != 3 || v.Bytes != 4500 || v.Errors[ReasonPolicyMismatch] != 2 {
		t.Fatalf("map holds %+v", v)
	}
	if err := m.Lookup(uint32(99), &v); err != nil || v.Errors[esp.ReasonReplay] != 1 {
		t.Fatalf("last element: %+v %v", v, err)
	}
}
