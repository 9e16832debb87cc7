package esp

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// goldenFile holds, per SA configuration, a SHA-256 over every packet Encap
// produced for it in TestEncapGolden.
const goldenFile = "testdata/encap-golden.txt"

// goldenMask is the AEAD IV mask of every golden SA.
const goldenMask = 0x0123_4567_89ab_cdef

// goldenVariant adds tunnel-mode outer header policies to an saCase.
type goldenVariant struct {
	name string
	df   DFPolicy
	ttl  uint8
	tfc  uint16
}

var goldenVariants = []goldenVariant{
	{name: "default"},
	{name: "dfset-ttl9", df: DFSet, ttl: 9},
	{name: "dfclear-tfc300", df: DFClear, tfc: 300},
}

// goldenInner is a deterministic UDP packet of n bytes (n ≥ 48 for IPv6,
// 28 for IPv4) with the given DSCP/ECN byte and, for IPv4, DF bit.
func goldenInner(v6 bool, n int, tos byte, df bool) []byte {
	p := make([]byte, n)
	h := 20
	if v6 {
		h = 40
		binary.BigEndian.PutUint32(p[0:], 6<<28|uint32(tos)<<20|0xabcde)
		binary.BigEndian.PutUint16(p[4:], uint16(n-40))
		p[6], p[7] = protoUDP, 61
		a, b := v6a.As16(), v6b.As16()
		copy(p[8:], a[:])
		copy(p[24:], b[:])
	} else {
		p[0], p[1] = 0x45, tos
		binary.BigEndian.PutUint16(p[2:], uint16(n))
		binary.BigEndian.PutUint16(p[4:], 0x1357)
		if df {
			p[6] = 0x40
		}
		p[8], p[9] = 61, protoUDP
		a, b := v4a.As4(), v4b.As4()
		copy(p[12:], a[:])
		copy(p[16:], b[:])
		binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
	}
	binary.BigEndian.PutUint16(p[h:], 1234)
	binary.BigEndian.PutUint16(p[h+2:], 5678)
	binary.BigEndian.PutUint16(p[h+4:], uint16(n-h))
	for i := h + 8; i < n; i++ {
		p[i] = byte(i*13 + n)
	}
	return p
}

// goldenDigests encapsulates, for every suite × mode × family × ESN × UDP
// (and, in tunnel mode, DF/TTL/TFC variants), three packets of each of four
// sizes from two starting sequence numbers, with a fixed key, IV mask (CBC:
// a fixed IV function) and inner packets, into buffers whose head- and
// tailroom hold junk, and returns a digest of the outer packets per case.
func goldenDigests(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range allCases() {
		variants := goldenVariants
		if c.mode == ipsec.ModeTransport {
			variants = variants[:1]
		}
		inner6 := c.inner6
		if c.mode == ipsec.ModeTransport {
			inner6 = c.outer6
		}
		starts := []uint64{0, 0xfffe} // the IPv4 ID (low 16 bits of seq) wraps
		if c.esn {
			starts = []uint64{1<<32 - 2, 0x1_2345_fffe} // the high half moves; the ID wraps
		}
		minLen := 28
		if inner6 {
			minLen = 48
		}
		for _, v := range variants {
			name := fmt.Sprintf("%v/%s", c, v.name)
			h := sha256.New()
			for _, start := range starts {
				c.initSeq = start
				c.tfcPad = v.tfc
				p := c.params()
				p.DF, p.TTL = v.df, v.ttl
				sa, err := New(p, WithIVMask(goldenMask))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if sa.kind == kindCBC {
					sa.ivFunc = func(seq uint64, iv []byte) {
						for i := range iv {
							iv[i] = byte(seq) ^ byte(i*29)
						}
					}
				}
				for i, n := range []int{minLen, 64, 301, 1400} {
					for k := range 3 {
						tos := byte(0xb8 | (i+k)%4) // DSCP EF, every ECN codepoint
						pkt := goldenInner(inner6, n, tos, k != 1)
						buf := make([]byte, Headroom+n+Tailroom+int(v.tfc))
						for j := range buf {
							buf[j] = byte(0xa5 ^ j)
						}
						copy(buf[Headroom:], pkt)
						s, e, err := sa.Encap(buf, Headroom, n)
						if err != nil {
							t.Fatalf("%s: seq %d size %d: %v", name, sa.NextSeq(), n, err)
						}
						fmt.Fprintf(h, "%d:", e-s)
						h.Write(buf[s:e])
					}
				}
			}
			out[name] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out
}

// TestEncapGolden pins the exact bytes Encap puts on the wire for a fixed SA
// state (key, IV mask, sequence number, policies) across every configuration,
// so that a change meant to be an optimisation cannot change the output.
// XDPSEC_WRITE_GOLDEN=1 rewrites the file (only for a deliberate change of
// the output, said in the commit).
func TestEncapGolden(t *testing.T) {
	got := goldenDigests(t)
	if os.Getenv("XDPSEC_WRITE_GOLDEN") == "1" {
		var b strings.Builder
		b.WriteString("# TestEncapGolden: SHA-256 of the outer packets per SA configuration (XDPSEC_WRITE_GOLDEN=1 rewrites)\n")
		for _, c := range allCases() {
			for _, v := range goldenVariants {
				name := fmt.Sprintf("%v/%s", c, v.name)
				if d, ok := got[name]; ok {
					fmt.Fprintf(&b, "%s %s\n", name, d)
				}
			}
		}
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, d, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s: bad line %q", goldenFile, line)
		}
		want[name] = d
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Errorf("%s has %d cases, the test makes %d", goldenFile, len(want), len(got))
	}
	for name, d := range got {
		if want[name] != d {
			t.Errorf("%s: output digest %s, pinned %s", name, d, want[name])
		}
	}
}
