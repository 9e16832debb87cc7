package esp

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Keys must never reach a log, an error or an API response. Params and the
// three algorithm types therefore format themselves (every fmt verb, %#v
// included, and JSON) through views that hold a key's length instead of its
// bytes: even where fmt skips a Format method (a bad verb on an enclosing
// value) there is nothing secret to print. What remains possible is printing
// a Key slice itself, or a Params kept in an unexported struct field (fmt
// cannot call methods there and prints it raw): keep Params in exported
// fields or behind a pointer, and pass it around as briefly as it is needed.

// keyLen stands in for key bytes in the views.
type keyLen int

func (n keyLen) redacted() string { return fmt.Sprintf("[%d-byte key redacted]", int(n)) }

// Format prints the placeholder for every verb.
func (n keyLen) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(n.redacted())) }

// MarshalJSON writes the placeholder as a JSON string.
func (n keyLen) MarshalJSON() ([]byte, error) { return json.Marshal(n.redacted()) }

type aeadView struct {
	Name    string
	Key     keyLen
	ICVBits int
}

type encView struct {
	Name string
	Key  keyLen
}

type authView struct {
	Name      string
	Key       keyLen
	TruncBits int
}

func (a AEADAlg) view() aeadView { return aeadView{a.Name, keyLen(len(a.Key)), a.ICVBits} }
func (e EncAlg) view() encView   { return encView{e.Name, keyLen(len(e.Key))} }
func (a AuthAlg) view() authView { return authView{a.Name, keyLen(len(a.Key)), a.TruncBits} }

// formatView prints v, a view of a value of type name, with the caller's verb
// and flags; %#v gets the public type name instead of the view's.
func formatView(f fmt.State, verb rune, name string, v any) {
	if verb == 'v' && f.Flag('#') {
		s := fmt.Sprintf("%#v", v)
		if i := strings.IndexByte(s, '{'); i >= 0 {
			s = name + s[i:]
		}
		_, _ = f.Write([]byte(s))
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), v)
}

// String describes the suite with the key redacted.
func (a AEADAlg) String() string { return fmt.Sprint(a) }

// GoString describes the suite with the key redacted (%#v).
func (a AEADAlg) GoString() string { return fmt.Sprintf("%#v", a) }

// Format prints the suite with the key redacted, whatever the verb.
func (a AEADAlg) Format(f fmt.State, verb rune) { formatView(f, verb, "esp.AEADAlg", a.view()) }

// MarshalJSON writes the suite with the key redacted.
func (a AEADAlg) MarshalJSON() ([]byte, error) { return json.Marshal(a.view()) }

// String describes the cipher with the key redacted.
func (e EncAlg) String() string { return fmt.Sprint(e) }

// GoString describes the cipher with the key redacted (%#v).
func (e EncAlg) GoString() string { return fmt.Sprintf("%#v", e) }

// Format prints the cipher with the key redacted, whatever the verb.
func (e EncAlg) Format(f fmt.State, verb rune) { formatView(f, verb, "esp.EncAlg", e.view()) }

// MarshalJSON writes the cipher with the key redacted.
func (e EncAlg) MarshalJSON() ([]byte, error) { return json.Marshal(e.view()) }

// String describes the integrity algorithm with the key redacted.
func (a AuthAlg) String() string { return fmt.Sprint(a) }

// GoString describes the integrity algorithm with the key redacted (%#v).
func (a AuthAlg) GoString() string { return fmt.Sprintf("%#v", a) }

// Format prints the integrity algorithm with the key redacted, whatever the verb.
func (a AuthAlg) Format(f fmt.State, verb rune) { formatView(f, verb, "esp.AuthAlg", a.view()) }

// MarshalJSON writes the integrity algorithm with the key redacted.
func (a AuthAlg) MarshalJSON() ([]byte, error) { return json.Marshal(a.view()) }

// paramsView has Params' fields but not its methods (so formatting it does
// not recurse); its AEAD, Enc and Auth fields format themselves redacted.
type paramsView Params

// String describes the SA's parameters with the keys redacted.
func (p Params) String() string { return fmt.Sprint(p) }

// GoString describes the SA's parameters with the keys redacted (%#v).
func (p Params) GoString() string { return fmt.Sprintf("%#v", p) }

// Format prints the parameters with the keys redacted, whatever the verb.
func (p Params) Format(f fmt.State, verb rune) { formatView(f, verb, "esp.Params", paramsView(p)) }

// MarshalJSON writes the parameters with the keys redacted.
func (p Params) MarshalJSON() ([]byte, error) { return json.Marshal(paramsView(p)) }
