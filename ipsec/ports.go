package ipsec

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports, or, in an ICMP selector, of ICMP types (source) or codes
// (destination). Its zero value is any port, 0-65535. Every range is representable, the single port
// 0 too (ICMP type 0 is an echo reply), and equal ranges are equal values, so selectors compare with
// == and serve as map keys: the range keeps its low end and the complement of its high end, whose
// zero is 65535.
type PortRange struct {
	lo, hiInv uint16
}

// AnyPorts is every port, the zero PortRange.
var AnyPorts = PortRange{}

// Ports returns the range lo-hi. A range with lo > hi is empty: Selector.Validate refuses it.
func Ports(lo, hi uint16) PortRange { return PortRange{lo: lo, hiInv: ^hi} }

// Port returns the range of the single port p.
func Port(p uint16) PortRange { return Ports(p, p) }

// Lo is the lowest port of the range.
func (r PortRange) Lo() uint16 { return r.lo }

// Hi is the highest port of the range.
func (r PortRange) Hi() uint16 { return ^r.hiInv }

// IsAny reports whether r is every port.
func (r PortRange) IsAny() bool { return r == AnyPorts }

// Contains reports whether port p is in r.
func (r PortRange) Contains(p uint16) bool { return r.lo <= p && p <= r.Hi() }

// String prints "any", "80" or "1000-2000".
func (r PortRange) String() string {
	switch {
	case r.IsAny():
		return "any"
	case r.lo == r.Hi():
		return strconv.Itoa(int(r.lo))
	}
	return strconv.Itoa(int(r.lo)) + "-" + strconv.Itoa(int(r.Hi()))
}

// ParsePorts reads "any", a port ("80") or a range ("1000-2000").
func ParsePorts(s string) (PortRange, error) {
	if s == "any" {
		return AnyPorts, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h := l
	if err == nil && isRange {
		h, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	}
	if err != nil {
		return AnyPorts, fmt.Errorf("parse ports %q: want any, a port 0-65535 or a range like 1000-2000", s)
	}
	if l > h {
		return AnyPorts, fmt.Errorf("parse ports %q: the range runs backwards", s)
	}
	return Ports(uint16(l), uint16(h)), nil
}

// MarshalText writes what String prints.
func (r PortRange) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads what ParsePorts reads.
func (r *PortRange) UnmarshalText(b []byte) error {
	v, err := ParsePorts(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// portsJSON is the API's form of a range.
type portsJSON struct {
	Lo *uint16 `json:"lo"`
	Hi *uint16 `json:"hi"`
}

// MarshalJSON writes {"lo": N, "hi": N}.
func (r PortRange) MarshalJSON() ([]byte, error) {
	lo, hi := r.lo, r.Hi()
	return json.Marshal(portsJSON{Lo: &lo, Hi: &hi})
}

// UnmarshalJSON reads {"lo": N, "hi": N} (both, lo <= hi), or {} for any port.
func (r *PortRange) UnmarshalJSON(b []byte) error {
	var j portsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("parse ports: want {\"lo\": N, \"hi\": N}: %w", err)
	}
	switch {
	case j.Lo == nil && j.Hi == nil:
		*r = AnyPorts
	case j.Lo == nil || j.Hi == nil:
		return fmt.Errorf("parse ports: want both lo and hi, or neither for any")
	case *j.Lo > *j.Hi:
		return fmt.Errorf("parse ports: the range %d-%d runs backwards", *j.Lo, *j.Hi)
	default:
		*r = Ports(*j.Lo, *j.Hi)
	}
	return nil
}
