package esp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xdpsec/xdpsec/ipsec"
)

// DFPolicy says how tunnel mode sets the DF bit of an outer IPv4 header
// (RFC 4301 §8.1; ip-xfrm's "dont-encap-dscp"/"nopmtudisc" family of flags).
type DFPolicy uint8

const (
	// DFCopy copies DF from an inner IPv4 header and sets it for inner IPv6
	// (which is never fragmented in transit). The zero value.
	DFCopy DFPolicy = iota
	// DFSet always sets DF.
	DFSet
	// DFClear never sets DF.
	DFClear
)

func (d DFPolicy) String() string {
	switch d {
	case DFCopy:
		return "copy"
	case DFSet:
		return "set"
	case DFClear:
		return "clear"
	}
	return fmt.Sprintf("DFPolicy(%d)", uint8(d))
}

// ParseDFPolicy accepts "copy", "set" or "clear"; "" means copy.
func ParseDFPolicy(s string) (DFPolicy, error) {
	switch strings.ToLower(s) {
	case "", "copy":
		return DFCopy, nil
	case "set":
		return DFSet, nil
	case "clear":
		return DFClear, nil
	}
	return DFCopy, fmt.Errorf("parse df policy %q: %w", s, ErrInvalidValue)
}

// AEADAlg is a combined-mode suite (ip xfrm "aead NAME KEY ICV-BITS").
// Key is the key material as RFC 4106 §8.1 / RFC 7634 §2 / RFC 4543 §6
// define it: the cipher key followed by the 4-byte salt.
type AEADAlg struct {
	Name    string // rfc4106(gcm(aes)), rfc7539esp(chacha20,poly1305), rfc4543(gcm(aes)) or an alias
	Key     []byte // key ‖ 4-byte salt
	ICVBits int    // 0 means 128
}

// EncAlg is the cipher of an encrypt-then-MAC suite (ip xfrm "enc NAME KEY").
type EncAlg struct {
	Name string // cbc(aes), ecb(cipher_null) or an alias
	Key  []byte // 16, 24 or 32 bytes for AES; empty for NULL
}

// AuthAlg is the integrity algorithm of an encrypt-then-MAC suite
// (ip xfrm "auth-trunc NAME KEY TRUNC-BITS").
type AuthAlg struct {
	Name      string // hmac(sha256) or an alias
	Key       []byte // 32 bytes for HMAC-SHA2-256-128 (RFC 4868 §2.1.1)
	TruncBits int    // 0 means 128 (RFC 4868 §2.1.1)
}

// UDPEncap enables ESP-in-UDP (RFC 3948), usually on port 4500 both ways.
// SrcPort/DstPort are the ports of the outer UDP header as sent on this SA's
// direction: for an outbound SA, ours then the peer's; for an inbound SA, the
// peer's then ours (Decap checks DstPort, not SrcPort, since a NAT may rewrite
// the peer's port).
type UDPEncap struct {
	SrcPort, DstPort uint16
}

// Params describes one SA. New copies everything it keeps, so the caller may
// reuse or zero the key slices after New returns.
type Params struct {
	SPI uint32
	// Src and Dst are the outer addresses in tunnel mode and the two
	// endpoints in transport mode. Both of one family.
	Src, Dst netip.Addr
	Mode     ipsec.Mode

	// Either AEAD, or Enc together with Auth. An empty Name means absent.
	AEAD AEADAlg
	Enc  EncAlg
	Auth AuthAlg

	// ESN enables 64-bit Extended Sequence Numbers (RFC 4304).
	ESN bool
	// ReplayWindow is the anti-replay window in packets: 0 disables the check,
	// otherwise MinReplayWindow..MaxReplayWindow.
	ReplayWindow uint32
	// UDPEncap, when non-nil, carries ESP in UDP (RFC 3948).
	UDPEncap *UDPEncap
	// Seq restores state: outbound, the last sequence number already used
	// (the next packet carries Seq+1); inbound, the highest sequence number
	// already received (the top of the replay window). 64-bit; without ESN it
	// must fit in 32 bits.
	Seq uint64

	// TTL is the outer IPv4 TTL / IPv6 hop limit in tunnel mode; 0 means 64.
	TTL uint8
	// DF is the outer IPv4 DF bit policy in tunnel mode.
	DF DFPolicy
	// TFCPadTo, in tunnel mode, pads short inner packets with zeros up to this
	// many bytes before the ESP padding (RFC 4303 §2.7 TFC padding). 0 disables.
	// The caller must leave TFCPadTo-n bytes more than Tailroom behind a
	// packet of n bytes, or Encap fails with ErrNoRoom.
	TFCPadTo uint16
}

const (
	// MinReplayWindow and MaxReplayWindow bound Params.ReplayWindow (when not 0).
	MinReplayWindow = 32
	MaxReplayWindow = 1 << 16
	// DefaultTTL is the outer TTL/hop limit when Params.TTL is 0.
	DefaultTTL = 64
)

var (
	// ErrInvalidValue is wrapped by Validate for a value out of range.
	ErrInvalidValue = errors.New("invalid value")
	// ErrMissing is wrapped by Validate for a required field that is absent.
	ErrMissing = errors.New("missing")
	// ErrUnknownAlgorithm is wrapped by Validate for an algorithm name it does not know.
	ErrUnknownAlgorithm = errors.New("unknown algorithm")
	// ErrKeyLength is wrapped by Validate for a key whose length does not fit the algorithm.
	ErrKeyLength = errors.New("wrong key length")
)

// FieldError names the Params field (in the configuration file's spelling,
// e.g. "aead.key") that Validate rejected.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error, format string, args ...any) error {
	if format == "" {
		return &FieldError{Field: field, Err: err}
	}
	return &FieldError{Field: field, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)}
}

// Validate checks p and returns a *FieldError naming the first bad field.
func (p Params) Validate() error {
	_, err := p.suite()
	return err
}

// suite validates p and resolves the algorithm suite.
func (p Params) suite() (suiteSpec, error) {
	var s suiteSpec
	if p.SPI < 256 {
		// RFC 4303 §2.1: 1..255 are reserved by IANA, 0 for local use.
		return s, fieldErr("spi", ErrInvalidValue, "spi %#x is reserved (must be >= 256)", p.SPI)
	}
	if !p.Src.IsValid() {
		return s, fieldErr("src", ErrMissing, "")
	}
	if !p.Dst.IsValid() {
		return s, fieldErr("dst", ErrMissing, "")
	}
	if p.Src.Unmap().Is4() != p.Dst.Unmap().Is4() {
		return s, fieldErr("dst", ErrInvalidValue, "%s is not of the same family as src %s", p.Dst, p.Src)
	}
	if p.Src.Zone() != "" || p.Dst.Zone() != "" {
		return s, fieldErr("src", ErrInvalidValue, "zoned addresses are not supported")
	}
	switch {
	case p.Mode == 0:
		// Unspecified: never silently taken for tunnel mode.
		return s, fieldErr("mode", ErrMissing, "")
	case !p.Mode.Valid():
		return s, fieldErr("mode", ErrInvalidValue, "%s", p.Mode)
	}
	var err error
	s, err = resolveSuite(p.AEAD, p.Enc, p.Auth)
	if err != nil {
		return s, err
	}
	if p.ReplayWindow != 0 && (p.ReplayWindow < MinReplayWindow || p.ReplayWindow > MaxReplayWindow) {
		return s, fieldErr("replay_window", ErrInvalidValue, "%d is outside 0 or %d..%d",
			p.ReplayWindow, MinReplayWindow, MaxReplayWindow)
	}
	if !p.ESN && p.Seq > 0xffffffff {
		return s, fieldErr("seq", ErrInvalidValue, "%d needs esn (more than 32 bits)", p.Seq)
	}
	if p.UDPEncap != nil && (p.UDPEncap.SrcPort == 0 || p.UDPEncap.DstPort == 0) {
		return s, fieldErr("encap", ErrInvalidValue, "udp ports must be non-zero")
	}
	if p.DF > DFClear {
		return s, fieldErr("df", ErrInvalidValue, "policy %d", p.DF)
	}
	if p.TFCPadTo != 0 && p.Mode != ipsec.ModeTunnel {
		// In transport mode the receiver cannot tell TFC padding from the
		// upper-layer payload without parsing it (RFC 4303 §2.7).
		return s, fieldErr("tfc_pad", ErrInvalidValue, "tfc padding needs tunnel mode")
	}
	if int(p.TFCPadTo) > MaxPacket {
		return s, fieldErr("tfc_pad", ErrInvalidValue, "%d exceeds %d", p.TFCPadTo, MaxPacket)
	}
	return s, nil
}
