// Package packet holds what the crypto workers do to an IP packet's bytes, apart from the worker's
// rings and frames: reading its length and selector tuple, the TTL, completing CHECKSUM_PARTIAL
// checksums, clamping a SYN's MSS, and rewriting the headers of the pieces a packet is cut into
// (software TSO segments and IPv4 fragments). Every function works in place on caller-owned bytes and
// allocates nothing: they run per packet.
package packet

import "encoding/binary"

var be = binary.BigEndian
