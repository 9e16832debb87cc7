package xfrmargs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

const key20 = "0x0102030405060708090a0b0c0d0e0f1011121314"

func TestParseSAFull(t *testing.T) {
	args := strings.Fields("src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 reqid 7 mode transport " +
		"aead rfc4106(gcm(aes)) " + key20 + " 128 replay-window 64 flag esn " +
		"encap espinudp 4500 4501 0.0.0.0 limit byte-soft 100 limit byte-hard 200 limit packet-soft 1 " +
		"limit packet-hard 2 limit time-soft 3 limit time-hard 4 limit time-use-soft 5 limit time-use-hard 6 " +
		"name x offload dev wan0 offload lan0,lan1 dir out replay-oseq 9")
	sa, err := ParseSA("sa add", args)
	if err != nil {
		t.Fatal(err)
	}
	want := sadb.Lifetime{SoftBytes: 100, HardBytes: 200, SoftPackets: 1, HardPackets: 2, SoftAddSeconds: 3,
		HardAddSeconds: 4, SoftUseSeconds: 5, HardUseSeconds: 6}
	switch {
	case sa.SPI != 0x1001 || sa.Reqid != 7 || sa.Mode != ipsec.ModeTransport || !sa.ESN || sa.ReplayWindow != 64:
		t.Fatalf("ids/flags: %+v", sa)
	case sa.Src != netip.MustParseAddr("198.18.0.1") || sa.Dst != netip.MustParseAddr("198.19.0.1"):
		t.Fatalf("addresses: %+v", sa)
	case sa.AEAD == nil || sa.AEAD.Name != "rfc4106(gcm(aes))" || len(sa.AEAD.Key) != 20 || sa.AEAD.Bits != 128:
		t.Fatalf("aead: %+v", sa.AEAD)
	case sa.Encap == nil || sa.Encap.Sport != 4500 || sa.Encap.Dport != 4501:
		t.Fatalf("encap: %+v", sa.Encap)
	case sa.Limits != want:
		t.Fatalf("limits: %+v", sa.Limits)
	case sa.Name != "x" || strings.Join(sa.Offload, ",") != "wan0,lan0,lan1" || sa.Dir == nil || *sa.Dir != ipsec.DirOut || sa.Seq != 9:
		t.Fatalf("extensions: %+v", sa)
	}
}

// `ip xfrm state` prints an all-zero selector on every tunnel-mode SA; pasted back, it is accepted.
func TestParseSAAnySelector(t *testing.T) {
	for _, sel := range []string{"sel src 0.0.0.0/0 dst 0.0.0.0/0", "sel src ::/0 dst ::/0 proto any", "sel"} {
		if _, err := ParseSA("sa add", strings.Fields("src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 "+sel+
			" aead rfc4106(gcm(aes)) "+key20+" 128")); err != nil {
			t.Errorf("%s: %v", sel, err)
		}
	}
}

// TestParseSAFromIKE: what IKE daemons and ip xfrm users type: flag af-unspec on tunnel SAs, ASCII
// keys.
func TestParseSAFromIKE(t *testing.T) {
	sa, err := ParseSA("sa add", strings.Fields("src 198.18.0.1 dst 198.19.0.1 proto esp spi 0xc1234567 reqid 2 mode tunnel "+
		"flag af-unspec flag esn,af-unspec aead rfc4106(gcm(aes)) \"ABCDEFGHIJKLMNOPQRST\" 128"))
	if err != nil {
		t.Fatal(err)
	}
	if !sa.ESN || string(sa.AEAD.Key) != "ABCDEFGHIJKLMNOPQRST" {
		t.Fatalf("esn %v key %q", sa.ESN, sa.AEAD.Key)
	}
	sa, err = ParseSA("sa add", []string{"src", "198.18.0.1", "dst", "198.19.0.1", "proto", "esp", "spi", "300",
		"enc", "cbc(aes)", `"0123456789abcdef"`, "auth", "hmac(sha256)", `"0123456789abcdef0123456789abcdef"`})
	if err != nil {
		t.Fatal(err)
	}
	if string(sa.Enc.Key) != "0123456789abcdef" || len(sa.Auth.Key) != 32 {
		t.Fatalf("quoted keys: enc %q auth %q", sa.Enc.Key, sa.Auth.Key)
	}
}

func TestParseSAEncThenAuth(t *testing.T) {
	sa, err := ParseSA("sa add", strings.Fields("src 2001:2::1 dst 2001:2::2 proto esp spi 300 "+
		"enc cbc(aes) 0x00112233445566778899aabbccddeeff auth-trunc hmac(sha256) "+
		"0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff 128"))
	if err != nil {
		t.Fatal(err)
	}
	if sa.Enc == nil || len(sa.Enc.Key) != 16 || sa.Auth == nil || sa.Auth.Bits != 128 || sa.ReplayWindow != 128 {
		t.Fatalf("%+v %+v %+v", sa, sa.Enc, sa.Auth)
	}
}

func TestParseSAErrors(t *testing.T) {
	for args, want := range map[string]string{
		"src 198.18.0.1 dst 198.19.0.1 spi 1":                                "an algorithm is required",
		"dst 198.19.0.1 spi 1 aead x 0x00 128":                               "src ADDR is required",
		"src 198.18.0.1 dst 198.19.0.1 aead x 0x00 128":                      "spi SPI is required",
		"src 198.18.0.1 dst nowhere":                                         `dst: "nowhere" is not an IPv4 or IPv6 address`,
		"src 198.18.0.1 spi zz":                                              `spi: "zz" is not a number`,
		"src 198.18.0.1 proto ah":                                            "only esp",
		"src 198.18.0.1 aead rfc4106(gcm(aes)) 0x12345 128":                  "aead: parse key",
		"src 198.18.0.1 aead rfc4106(gcm(aes)) \"\" 128":                     "an empty quoted key",
		"src 198.18.0.1 aead rfc4106(gcm(aes)) abcdefghijklmnopqrst 128":     "aead: parse key: want 0x",
		"src 198.18.0.1 mark 7":                                              "marks are not supported",
		"src 198.18.0.1 output-mark 7":                                       "marks are not supported",
		"src 198.18.0.1 if_id 7":                                             "interface IDs",
		"src 198.18.0.1 ctx foo":                                             "security contexts",
		"src 198.18.0.1 dir fwd":                                             "an SA is in or out",
		"src 198.18.0.1 aead rfc4106(gcm(aes))":                              "needs a value",
		"src 198.18.0.1 limit byte-medium 5":                                 `unknown limit "byte-medium"`,
		"src 198.18.0.1 encap espintcp 4500 4500 0.0.0.0":                    "only espinudp",
		"src 198.18.0.1 flag wildrecv":                                       "not supported",
		"src 198.18.0.1 mode beet":                                           "want tunnel or transport",
		"src 198.18.0.1 frobnicate 1":                                        `unknown keyword "frobnicate"`,
		"src 198.18.0.1 sel src 198.18.1.0/24":                               "SA selectors narrower than any",
		"src 198.18.0.1 sel src 0.0.0.0/0 dst 0.0.0.0/0 proto tcp":           "SA selectors narrower than any",
		"src 198.18.0.1 sel src 0.0.0.0/0 dst nowhere":                       `dst: "nowhere" is not an address`,
		"src 198.18.0.1 dst 198.19.0.1 spi 1 aead x 0x00 128 encap espinudp": "needs a value",
	} {
		_, err := ParseSA("sa add", strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want …%s…", args, err, want)
		}
	}
}

func TestParseSARef(t *testing.T) {
	r, err := ParseSARef("sa del", strings.Fields("src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001"))
	if err != nil || r.ID == nil || r.ID.SPI != 0x1001 || r.ID.Dst != netip.MustParseAddr("198.19.0.1") {
		t.Fatalf("%+v %v", r, err)
	}
	if r, _ := ParseSARef("sa del", []string{"gw1"}); r.Name != "gw1" {
		t.Fatalf("bare name: %+v", r)
	}
	if r, _ := ParseSARef("sa del", []string{"name", "gw1"}); r.Name != "gw1" {
		t.Fatalf("name: %+v", r)
	}
	if _, err := ParseSARef("sa del", strings.Fields("spi 5")); err == nil {
		t.Fatal("an SPI without dst must not name an SA")
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy("sp add", strings.Fields("src 198.18.1.0/24 dst 198.18.2.0/24 proto tcp sport 1000-2000 dport 80 "+
		"dir out priority 100 tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel level required name web offload dev lan0"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir != ipsec.DirOut || p.Priority != 100 || p.Action != ipsec.ActionProtect || p.Tmpl.Reqid != 1 ||
		p.Sel.Proto != ipsec.ProtoTCP || p.Sel.SrcPorts != ipsec.Ports(1000, 2000) || p.Sel.DstPorts != ipsec.Port(80) ||
		p.Name != "web" || p.Offload[0] != "lan0" || p.Tmpl.Mode != ipsec.ModeTunnel {
		t.Fatalf("%+v %+v", p, p.Tmpl)
	}
	b, err := ParsePolicy("sp add", strings.Fields("src 0.0.0.0/0 dst 0.0.0.0/0 proto udp dport 500 dir in priority 10"))
	if err != nil || b.Action != ipsec.ActionBypass {
		t.Fatalf("allow without tmpl is bypass: %+v %v", b, err)
	}
	d, err := ParsePolicy("sp add", strings.Fields("dst 198.18.9.0/24 dir out ptype main action block"))
	if err != nil || d.Action != ipsec.ActionDiscard {
		t.Fatalf("block is discard: %+v %v", d, err)
	}
	i, err := ParsePolicy("sp add", strings.Fields("src 2001:2::/48 dst 2001:2::/48 proto ipv6-icmp type 128 code 0 dir in sa peer"))
	if err != nil || i.Sel.SrcPorts != ipsec.Port(128) || i.Action != ipsec.ActionProtect || i.Tmpl.SA != "peer" {
		t.Fatalf("icmp type/code and sa NAME: %+v %v", i, err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for args, want := range map[string]string{
		"src 198.18.1.0/24 dst 198.18.2.0/24":                 "dir in|out|fwd is required",
		"src 198.18.1.0/24 dir sideways":                      `"sideways": want in, out or fwd`,
		"src 198.18.1.0/24 dir out action protect":            "needs tmpl",
		"src 198.18.1.0/24 dir out action block tmpl reqid 1": "template only goes",
		"src 198.18.1.0/24 dir out tmpl mode tunnel":          "name the SA",
		"src 198.18.1.0/24 dir out tmpl reqid 1 level use":    "only required",
		"src 198.18.1.0/24 dir out action maybe":              `action "maybe"`,
		"dir out":                                             "needs src or dst",
		"src 198.18.1.0/24 dev eth0 dir out":                  "selecting by device",
		"src 198.18.1.0/24 dir out mark 5":                    "marks are not supported",
		"src 198.18.1.0/24 dir out if_id 5":                   "interface IDs",
		"src 198.18.1.0/24 dir out ptype sub":                 `"sub": only main`,
		"src 198.18.1.0/24 dport 90-80 dir out":               "is not a port",
		"src 198.18.1.0/33 dir out":                           "is not an address",
	} {
		_, err := ParsePolicy("sp add", strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want …%s…", args, err, want)
		}
	}
}

func TestParsePolicyRef(t *testing.T) {
	r, err := ParsePolicyRef("sp del", strings.Fields("dir out src 198.18.1.0/24 dst 198.18.2.0/24"))
	if err != nil || r.Key == nil || r.Key.Dir != ipsec.DirOut {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParsePolicyRef("sp del", strings.Fields("src 198.18.1.0/24 dst 198.18.2.0/24")); err == nil {
		t.Fatal("a selector without dir must not name a policy")
	}
}

// No error shows a key's characters: not for a bad digit (the position is named), not when a key
// lands where another value belongs.
func TestKeyNeverInErrors(t *testing.T) {
	const key = "0x8f3e9d2c7b1a6f5e4d3cg2b1a09f8e7d6c5b4a57" // the 23rd character is a 'g'
	const good = "0x8f3e9d2c7b1a6f5e4d3c12b1a09f8e7d6c5b4a57"
	for args, want := range map[string]string{
		"src 198.18.0.1 aead rfc4106(gcm(aes)) " + key + " 128": "aead: parse key: character 23 is not a hex digit",
		"src 198.18.0.1 aead " + good + " 128":                  "aead: parse key: want 0x", // the name forgotten
		"src 198.18.0.1 spi " + good:                            "spi: \"[a 42-character 0x value, not shown",
		"src 198.18.0.1 " + good:                                "unknown keyword \"[a 42-character 0x value",
		"src 198.18.0.1 aead " + good:                           "aead [a 42-character 0x value, not shown: it may be a key] needs a value",
	} {
		_, err := ParseSA("sa add", strings.Fields(args))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want …%s…", args, err, want)
			continue
		}
		for _, k := range []string{key, good} {
			for i := 2; i+2 <= len(k); i++ {
				if w := k[i : i+2]; strings.Contains(err.Error(), w) {
					t.Errorf("%q: the error %q shows key characters %q", args, err, w)
					break
				}
			}
		}
	}
}

func TestParseSAKeys(t *testing.T) {
	args := strings.Fields("src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x1001 mode tunnel " +
		"enc cbc(aes) - auth-trunc hmac(sha256) - 128")
	enc := []byte("0x00112233445566778899aabbccddeeff")
	auth := []byte("0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	sa, err := ParseSAKeys("sa add", args, [][]byte{enc, auth})
	if err != nil {
		t.Fatal(err)
	}
	if len(sa.Enc.Key) != 16 || len(sa.Auth.Key) != 32 || sa.Enc.Key[1] != 0x11 || sa.Auth.Key[31] != 0xff {
		t.Fatalf("keys in the wrong places: enc %d bytes, auth %d bytes", len(sa.Enc.Key), len(sa.Auth.Key))
	}
	for _, c := range []struct {
		name string
		args []string
		keys [][]byte
		want string
	}{
		{"more keys than -", args, [][]byte{enc, auth, enc}, "the key file has 3 keys, and the arguments take 2"},
		{"fewer keys than -", args, [][]byte{enc}, "auth-trunc: KEY - takes the next key from --key-file, and there is none"},
		{"- without a file", args, nil, "enc: KEY - takes the next key from --key-file"},
		{"a key argument with a file", strings.Fields("src 198.18.0.1 dst 198.19.0.1 spi 0x1001 enc cbc(aes) " +
			string(enc) + " auth-trunc hmac(sha256) - 128"), [][]byte{auth}, "enc: KEY must be - with --key-file"},
		{"bad digit in the file", args, [][]byte{enc, []byte("0x0011223344556677889g")}, "auth-trunc: key 2 of the key file: parse key: character 22 is not a hex digit"},
	} {
		if _, err := ParseSAKeys("sa add", c.args, c.keys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want …%s…", c.name, err, c.want)
		}
	}
}
