package config

import (
	"strings"
	"testing"
)

// CheckFile reports the file's mode, every field problem and the SAs no policy uses, and tells
// which entries are valid, so that later checks take only those.
func TestCheckFile(t *testing.T) {
	path := write(t, t.TempDir(), `interfaces: {protected: lan0}
policies:
  - {name: p, dir: out, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: a}
  - {name: q, dir: out, src: 198.18.1.0/24, dst: 198.18.3.0/33, action: bypass}
  - {name: r, dir: out, src: 198.18.1.0/24, dst: 198.18.4.0/24, action: protect, reqid: 9}
sas:
`+shortKeySA+`  - {name: b, spi: 0x2002, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: aes-gcm-128, key: "`+gcmKey+`"}}
  - {name: c, spi: 0x2003, reqid: 9, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: aes-gcm-128, key: "`+gcmKey+`"}}
`, 0o640)
	ck := CheckFile(path)
	defer ck.Config.Wipe()
	var got []string
	for _, f := range ck.Findings {
		got = append(got, f.Error.Error()+map[bool]string{true: " (warning)"}[f.Warning])
	}
	want := []string{
		path + ": unsafe configuration file: mode 0640 lets its group read its keys",
		path + ":1: interfaces.wire: missing field: a gateway needs both interfaces",
		path + `:4: policy "q": dst: invalid value: prefix "198.18.3.0/33"`,
		path + `:12: sa "a": aead.key: rfc4106(gcm(aes)) needs 20`,
		path + `:13: sa "b": no policy uses it (by name): no traffic is selected for it (warning)`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("finding %d: %q, want it to begin %q", i, got[i], want[i])
		}
	}
	if ck.Errors() != 4 {
		t.Errorf("Errors() = %d, want 4", ck.Errors())
	}
	valid := func(f func(int) bool, n int) (s string) {
		for i := range n {
			s += map[bool]string{true: "y", false: "n"}[f(i)]
		}
		return s
	}
	if v := valid(ck.ValidSA, 3) + " " + valid(ck.ValidPolicy, 3); v != "nyy yny" || ck.ValidTop() {
		t.Errorf("valid SAs and policies %q (want nyy yny), top %v (want false)", v, ck.ValidTop())
	}
}

func TestCloneOwnsItsKeys(t *testing.T) {
	c, err := Parse("t.yaml", []byte(withKeys))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.SAs[0].Clone()
	c.Wipe()
	if cl.AEAD.Key.Len() != 20 || cl.AEAD.Key.Reveal() != gcmKey {
		t.Fatalf("wiping the original wiped the clone: %d bytes", cl.AEAD.Key.Len())
	}
	cl.Wipe()
}
