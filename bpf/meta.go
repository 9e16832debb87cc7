package bpf

import (
	"encoding/binary"
	"errors"
	"unsafe"
)

// Metadata constants, mirrored from xdpsec.h (a test checks they agree with the generated type).
const (
	MetaMagic   = 0x5853 // XDPSEC_META_MAGIC, "XS"
	MetaVersion = 1      // XDPSEC_META_VERSION
	// MetaSize is the length of the metadata in front of each packet a worker receives: in an AF_XDP frame
	// it occupies the MetaSize bytes just before the descriptor's address.
	MetaSize = int(unsafe.Sizeof(CardXdpsecMeta{}))
)

// Meta flags (enum xdpsec_meta_flags), as untyped constants for the worker's convenience.
const (
	MetaIPv6      = uint16(CardXdpsecMetaFlagsXDPSEC_META_F_IPV6)
	MetaUDPEncap  = uint16(CardXdpsecMetaFlagsXDPSEC_META_F_UDP_ENCAP)
	MetaNoNeigh   = uint16(CardXdpsecMetaFlagsXDPSEC_META_F_NO_NEIGH)
	MetaVLAN      = uint16(CardXdpsecMetaFlagsXDPSEC_META_F_VLAN)
	MetaOuterIPv6 = uint16(CardXdpsecMetaFlagsXDPSEC_META_F_OUTER_IPV6)
)

// ErrBadMeta is returned by DecodeMeta for bytes that are not the card's metadata.
var ErrBadMeta = errors.New("bad card metadata")

// DecodeMeta reads the metadata from b, the MetaSize bytes in front of a packet (host byte order), and
// checks magic and version. It does not allocate.
func DecodeMeta(b []byte, m *CardXdpsecMeta) error {
	if len(b) < MetaSize {
		return ErrBadMeta
	}
	ne := binary.NativeEndian
	m.Magic = ne.Uint16(b[0:])
	m.Version = b[2]
	if m.Magic != MetaMagic || m.Version != MetaVersion {
		return ErrBadMeta
	}
	m.Dir = b[3]
	m.SaIndex = ne.Uint32(b[4:])
	m.PolicyId = ne.Uint16(b[8:])
	m.Flags = ne.Uint16(b[10:])
	m.L3Off = b[12]
	m.L4Proto = b[13]
	m.L4Off = ne.Uint16(b[14:])
	m.EgressIfindex = ne.Uint32(b[16:])
	copy(m.Smac[:], b[20:26])
	copy(m.Dmac[:], b[26:32])
	return nil
}
