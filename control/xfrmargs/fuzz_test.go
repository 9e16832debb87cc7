package xfrmargs

import (
	"slices"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// The parsers take whatever a user types: any argument list gives a value or an error, never a panic,
// and a parsed SA or policy always has what the grammar requires.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128",
		"src 2001:2::1 dst 2001:2::2 spi 300 enc cbc(aes) 0x00 auth-trunc hmac(sha256) 0x00 128 encap espinudp 4500 4500 0.0.0.0 limit byte-soft 5",
		"src 198.18.1.0/24 dst 198.18.2.0/24 proto tcp sport 1000-2000 dport 80 dir out priority 100 tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel",
		"dst 198.18.9.0/24 dir out action block",
		"src 2001:2::/48 proto ipv6-icmp type 128 code 0 dir in sa peer",
		"name x", "spi", "limit", "tmpl", "encap espinudp 1", "offload dev", "flag esn,esn",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if sa, err := ParseSA("sa add", args); err == nil {
			if !sa.Src.IsValid() || !sa.Dst.IsValid() || sa.SPI == 0 || (sa.AEAD == nil && sa.Enc == nil) {
				t.Fatalf("accepted an incomplete SA: %q → %+v", line, sa)
			}
		}
		if p, err := ParsePolicy("sp add", args); err == nil {
			if !p.Dir.OnCard() || !slices.Contains(args, "dir") || (p.Action == ipsec.ActionProtect && p.Tmpl == nil) {
				t.Fatalf("accepted an incomplete policy: %q → %+v", line, p)
			}
		}
		_, _ = ParseSARef("sa del", args)
		_, _ = ParsePolicyRef("sp del", args)
	})
}
