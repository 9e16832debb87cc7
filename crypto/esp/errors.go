package esp

import "errors"

// Reason is why the engine refused a packet. Its values and names are stable:
// they index Counters.Errors and name metrics.
type Reason uint8

const (
	ReasonReplay        Reason = iota // sequence number replayed or left of the window
	ReasonICV                         // integrity check failed
	ReasonBadPadding                  // padding bytes not 1, 2, 3, … (RFC 4303 §2.4) or pad length too long
	ReasonBadNextHeader               // next header does not fit the mode (tunnel: 4 or 41) or the inner packet
	ReasonTruncated                   // shorter than the headers, IV and ICV it must hold
	ReasonSeqExhausted                // outbound sequence numbers used up: the SA needs a hard expiry
	ReasonWrongSPI                    // the ESP header names another SA
	ReasonNotESP                      // not ESP: another protocol, IKE or a NAT keepalive on UDP/4500, or the SA's other encapsulation
	ReasonBadHeader                   // malformed IP header (outer on decap, inner on encap)
	ReasonFragment                    // an IP fragment: reassemble first
	ReasonNoRoom                      // the caller's buffer lacks headroom or tailroom
	ReasonTooBig                      // the result would exceed 65535 bytes
	ReasonDummy                       // a dummy packet (next header 59, RFC 4303 §2.6): drop silently
	ReasonECN                         // outer CE over a not-ECT inner packet: drop (RFC 6040 §4.2)
	ReasonWiped                       // the SA was wiped (deleted)
	ReasonSeqUnreserved               // outbound: the next sequence number lies above the durable reservation (ceiling)
	NumReasons                        // number of reasons; not a reason
)

var reasonNames = [NumReasons]string{
	ReasonReplay:        "replay",
	ReasonICV:           "icv",
	ReasonBadPadding:    "bad_padding",
	ReasonBadNextHeader: "bad_next_header",
	ReasonTruncated:     "truncated",
	ReasonSeqExhausted:  "seq_exhausted",
	ReasonWrongSPI:      "wrong_spi",
	ReasonNotESP:        "not_esp",
	ReasonBadHeader:     "bad_header",
	ReasonFragment:      "fragment",
	ReasonNoRoom:        "no_room",
	ReasonTooBig:        "too_big",
	ReasonDummy:         "dummy",
	ReasonECN:           "ecn",
	ReasonWiped:         "wiped",
	ReasonSeqUnreserved: "seq_unreserved",
}

// String returns the reason's stable snake_case name.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Error is the type of every per-packet sentinel error. The hot path returns
// the sentinels themselves (never wrapped, so no allocation): compare with
// errors.Is, or read Reason.
type Error struct {
	Reason Reason
	msg    string
}

func (e *Error) Error() string { return e.msg }

// Per-packet sentinel errors, one per Reason.
var (
	ErrReplay        = &Error{ReasonReplay, "esp: replayed or too old sequence number"}
	ErrICV           = &Error{ReasonICV, "esp: authentication failed"}
	ErrBadPadding    = &Error{ReasonBadPadding, "esp: bad padding"}
	ErrBadNextHeader = &Error{ReasonBadNextHeader, "esp: bad next header"}
	ErrTruncated     = &Error{ReasonTruncated, "esp: truncated packet"}
	ErrSeqExhausted  = &Error{ReasonSeqExhausted, "esp: sequence numbers exhausted: sa needs hard expiry"}
	ErrWrongSPI      = &Error{ReasonWrongSPI, "esp: wrong spi"}
	ErrNotESP        = &Error{ReasonNotESP, "esp: not an esp packet"}
	ErrBadHeader     = &Error{ReasonBadHeader, "esp: malformed ip header"}
	ErrFragment      = &Error{ReasonFragment, "esp: ip fragment"}
	ErrNoRoom        = &Error{ReasonNoRoom, "esp: buffer lacks headroom or tailroom"}
	ErrTooBig        = &Error{ReasonTooBig, "esp: packet too big"}
	ErrDummy         = &Error{ReasonDummy, "esp: dummy packet"}
	ErrECN           = &Error{ReasonECN, "esp: ce-marked outer header over not-ect inner packet"}
	ErrWiped         = &Error{ReasonWiped, "esp: sa wiped"}
	ErrSeqUnreserved = &Error{ReasonSeqUnreserved, "esp: sequence number above the reserved ceiling"}
)

// ReasonOf returns the Reason of a per-packet error from Encap or Decap.
func ReasonOf(err error) (Reason, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason, true
	}
	return 0, false
}
