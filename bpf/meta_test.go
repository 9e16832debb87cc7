package bpf

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

func TestMetaLayout(t *testing.T) {
	// The kernel allows at most 32 bytes of XDP metadata, in 4-byte units.
	if MetaSize != 32 {
		t.Fatalf("MetaSize = %d, want 32", MetaSize)
	}
	var m CardXdpsecMeta
	for _, f := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"sa_index", unsafe.Offsetof(m.SaIndex), 4},
		{"policy_id", unsafe.Offsetof(m.PolicyId), 8},
		{"flags", unsafe.Offsetof(m.Flags), 10},
		{"l3_off", unsafe.Offsetof(m.L3Off), 12},
		{"l4_off", unsafe.Offsetof(m.L4Off), 14},
		{"egress_ifindex", unsafe.Offsetof(m.EgressIfindex), 16},
		{"smac", unsafe.Offsetof(m.Smac), 20},
		{"dmac", unsafe.Offsetof(m.Dmac), 26},
	} {
		if f.got != f.want {
			t.Errorf("offset of %s = %d, want %d (DecodeMeta depends on it)", f.name, f.got, f.want)
		}
	}
}

func TestDecodeMeta(t *testing.T) {
	b := make([]byte, MetaSize)
	ne := binary.NativeEndian
	ne.PutUint16(b[0:], MetaMagic)
	b[2] = MetaVersion
	b[3] = 1
	ne.PutUint32(b[4:], 70000)
	ne.PutUint16(b[8:], 12)
	ne.PutUint16(b[10:], MetaUDPEncap|MetaIPv6)
	b[12], b[13] = 14, 17
	ne.PutUint16(b[14:], 54)
	ne.PutUint32(b[16:], 7)
	copy(b[20:], []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	var m CardXdpsecMeta
	if err := DecodeMeta(b, &m); err != nil {
		t.Fatal(err)
	}
	want := CardXdpsecMeta{Magic: MetaMagic, Version: MetaVersion, Dir: 1, SaIndex: 70000, PolicyId: 12,
		Flags: MetaUDPEncap | MetaIPv6, L3Off: 14, L4Proto: 17, L4Off: 54, EgressIfindex: 7,
		Smac: [6]uint8{1, 2, 3, 4, 5, 6}, Dmac: [6]uint8{7, 8, 9, 10, 11, 12}}
	if m != want {
		t.Errorf("DecodeMeta = %+v, want %+v", m, want)
	}
	b[2] = 99
	if err := DecodeMeta(b, &m); err != ErrBadMeta {
		t.Errorf("wrong version: err = %v, want ErrBadMeta", err)
	}
	if err := DecodeMeta(b[:10], &m); err != ErrBadMeta {
		t.Errorf("short: err = %v, want ErrBadMeta", err)
	}
}
