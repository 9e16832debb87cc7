package esp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// TestParamsRedactKeys prints Params and the algorithm types with every fmt
// verb, through JSON and through slog, and checks that no rendering of the
// key bytes appears while the rest of the description does.
func TestParamsRedactKeys(t *testing.T) {
	secret := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i)*7 // printable and non-printable bytes alike
		}
		return b
	}
	aead := Params{SPI: 0x1001, Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.19.0.1"),
		Mode: ipsec.ModeTunnel, AEAD: AEADAlg{Name: AlgGCM, Key: secret(20, 0x41)}, ReplayWindow: 64,
		UDPEncap: &UDPEncap{SrcPort: 4500, DstPort: 4500}}
	etm := Params{SPI: 0x1002, Src: netip.MustParseAddr("2001:2::1"), Dst: netip.MustParseAddr("2001:2::2"),
		Mode: ipsec.ModeTransport, Enc: EncAlg{Name: AlgCBC, Key: secret(32, 0x61)},
		Auth: AuthAlg{Name: AlgHMAC256, Key: secret(32, 0x81)}}
	keys := [][]byte{aead.AEAD.Key, etm.Enc.Key, etm.Auth.Key}

	// leaks lists the renderings of a key that must not appear: raw, hex,
	// decimal list, base64 (JSON of []byte), Go quoting; on 6-byte
	// windows so a partial print is caught too.
	leaks := func(out string) string {
		for _, k := range keys {
			for i := 0; i+6 <= len(k); i += 3 {
				w := k[i : i+6]
				for _, form := range []string{
					string(w), hex.EncodeToString(w), strings.ToUpper(hex.EncodeToString(w)),
					strings.Trim(fmt.Sprint([]byte(w)), "[]"), fmt.Sprintf("%#v", w)[len("[]byte{"):],
					base64.StdEncoding.EncodeToString(w)[:6], strings.Trim(fmt.Sprintf("%q", w), `"`),
				} {
					if strings.Contains(out, form) {
						return form
					}
				}
			}
		}
		return ""
	}

	type holder struct {
		P  Params
		PP *Params
		A  AEADAlg
	}
	var renders []string
	for _, p := range []Params{aead, etm} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%o", "%b", "%10.3v", "%-v", "% x"} {
			renders = append(renders,
				fmt.Sprintf(verb, p), fmt.Sprintf(verb, &p),
				fmt.Sprintf(verb, p.AEAD), fmt.Sprintf(verb, p.Enc), fmt.Sprintf(verb, p.Auth),
				fmt.Sprintf(verb, holder{P: p, PP: &p, A: p.AEAD}), fmt.Sprintf(verb, []Params{p}),
				fmt.Sprintf(verb, map[string]Params{"sa": p}))
		}
		renders = append(renders, p.String(), p.GoString(), p.AEAD.String(), p.Enc.GoString(), p.Auth.String(),
			fmt.Errorf("add sa %v: %w", p, ErrInvalidValue).Error())
		j, err := json.Marshal(holder{P: p, PP: &p, A: p.AEAD})
		if err != nil {
			t.Fatal(err)
		}
		renders = append(renders, string(j))
		var text, js bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("sa", "params", p, "ptr", &p, "aead", p.AEAD)
		slog.New(slog.NewJSONHandler(&js, nil)).Info("sa", "params", p, "ptr", &p, "enc", p.Enc)
		renders = append(renders, text.String(), js.String())
	}
	for _, out := range renders {
		if l := leaks(out); l != "" {
			t.Errorf("key material %q printed in %q", l, out)
		}
	}

	// The description stays useful: names, lengths and other fields show.
	for _, c := range []struct{ got, want string }{
		{fmt.Sprintf("%+v", aead), "Key:[20-byte key redacted]"},
		{fmt.Sprintf("%+v", aead), "Name:rfc4106(gcm(aes))"},
		{fmt.Sprintf("%v", aead), "198.19.0.1"},
		{fmt.Sprintf("%#v", etm), "esp.Params{SPI:0x1002"},
		{fmt.Sprintf("%#v", etm), `Enc:esp.EncAlg{Name:"cbc(aes)", Key:[32-byte key redacted]}`},
		{fmt.Sprintf("%#v", etm.Auth), `esp.AuthAlg{Name:"hmac(sha256)", Key:[32-byte key redacted], TruncBits:0}`},
		{etm.Auth.String(), "{hmac(sha256) [32-byte key redacted] 0}"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%q lacks %q", c.got, c.want)
		}
	}
	j, _ := json.Marshal(aead)
	var back map[string]any
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	if k := back["AEAD"].(map[string]any)["Key"]; k != "[20-byte key redacted]" {
		t.Errorf("json key = %v", k)
	}
	// Formatting must not change the values the engine uses.
	if !bytes.Equal(aead.AEAD.Key, secret(20, 0x41)) {
		t.Error("formatting changed the key")
	}
}
