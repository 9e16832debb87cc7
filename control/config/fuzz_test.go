package config

import (
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser. Seeds: f.Add below and the
// committed corpus in testdata/fuzz/FuzzParse. Run longer with
// go test -run '^$' -fuzz FuzzParse ./control/config/
func FuzzParse(f *testing.F) {
	f.Add([]byte("instance: gw1\ninterfaces: {protected: a, wire: b}\n"))
	f.Add([]byte("sas:\n  - " + okSA + "\n"))
	f.Add([]byte("policies:\n  - {name: p, dir: in, src: 198.18.0.0/15, dst: \"2001:2::/48\", proto: tcp, dport: 1-2, action: bypass}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			// Every error is a located *Error.
			for _, e := range unjoin(err) {
				if _, ok := e.(*Error); !ok {
					t.Fatalf("unlocated error %T: %v", e, e)
				}
			}
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// What Parse accepts, the engine and the SPD accept too.
		for i := range c.SAs {
			p, err := c.SAs[i].ESPParams()
			if err == nil {
				err = p.Validate()
			}
			if err != nil {
				t.Fatalf("sa %q passed Parse but the engine refuses it: %v", c.SAs[i].Name, err)
			}
		}
		for i := range c.Policies {
			if err := c.Policies[i].Selector().Validate(); err != nil {
				t.Fatalf("policy %q passed Parse but the SPD refuses it: %v", c.Policies[i].Name, err)
			}
		}
		if d := Diff(c, c); !d.Empty() {
			t.Fatalf("a config differs from itself: %+v", d)
		}
	})
}
