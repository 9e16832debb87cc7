package esp

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ipsec"
)

// suiteCase is one algorithm suite with fixed test keys.
type suiteCase struct {
	name string
	aead AEADAlg
	enc  EncAlg
	auth AuthAlg
}

func testKey(n int, seed byte) []byte {
	k := make([]byte, n)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

var suites = []suiteCase{
	{name: "aes-gcm-128", aead: AEADAlg{Name: "aes-gcm-128", Key: testKey(20, 1)}},
	{name: "aes-gcm-256", aead: AEADAlg{Name: AlgGCM, Key: testKey(36, 2), ICVBits: 128}},
	{name: "chacha20-poly1305", aead: AEADAlg{Name: AlgChaCha, Key: testKey(36, 3)}},
	{name: "aes-gmac-128", aead: AEADAlg{Name: AlgGMAC, Key: testKey(20, 4)}},
	{name: "aes-cbc-128", enc: EncAlg{Name: "aes-cbc-128", Key: testKey(16, 5)}, auth: AuthAlg{Name: "hmac-sha256-128", Key: testKey(32, 6)}},
	{name: "aes-cbc-256", enc: EncAlg{Name: AlgCBC, Key: testKey(32, 7)}, auth: AuthAlg{Name: AlgHMAC256, Key: testKey(32, 8), TruncBits: 128}},
	{name: "null", enc: EncAlg{Name: AlgNull}, auth: AuthAlg{Name: AlgHMAC256, Key: testKey(32, 9)}},
}

var (
	v4a = netip.MustParseAddr("198.18.0.1")
	v4b = netip.MustParseAddr("198.19.0.1")
	v6a = netip.MustParseAddr("2001:2::1")
	v6b = netip.MustParseAddr("2001:2::2")
)

type saCase struct {
	suite   suiteCase
	mode    ipsec.Mode
	outer6  bool
	inner6  bool // tunnel only; transport follows outer6
	esn     bool
	udp     bool
	window  uint32
	tfcPad  uint16
	initSeq uint64
}

func (c saCase) params() Params {
	p := Params{
		SPI:          0x1001,
		Mode:         c.mode,
		AEAD:         c.suite.aead,
		Enc:          c.suite.enc,
		Auth:         c.suite.auth,
		ESN:          c.esn,
		ReplayWindow: c.window,
		Seq:          c.initSeq,
		TFCPadTo:     c.tfcPad,
	}
	if c.outer6 {
		p.Src, p.Dst = v6a, v6b
	} else {
		p.Src, p.Dst = v4a, v4b
	}
	if c.udp {
		p.UDPEncap = &UDPEncap{SrcPort: 4500, DstPort: 4500}
	}
	return p
}

func (c saCase) String() string {
	var b strings.Builder
	b.WriteString(c.suite.name)
	b.WriteString("/" + c.mode.String())
	if c.outer6 {
		b.WriteString("/out6")
	} else {
		b.WriteString("/out4")
	}
	if c.mode == ipsec.ModeTunnel {
		if c.inner6 {
			b.WriteString("/in6")
		} else {
			b.WriteString("/in4")
		}
	}
	if c.esn {
		b.WriteString("/esn")
	}
	if c.udp {
		b.WriteString("/udp")
	}
	return b.String()
}

// pair returns an outbound and an inbound SA from the same parameters.
func (c saCase) pair(t testing.TB) (out, in *SA) {
	t.Helper()
	p := c.params()
	out, err := New(p)
	if err != nil {
		t.Fatalf("New(%v): %v", c, err)
	}
	in, err = New(p)
	if err != nil {
		t.Fatalf("New(%v): %v", c, err)
	}
	return out, in
}

// innerPacket builds a UDP-in-IP packet with payloadLen random bytes and
// valid lengths and checksum. ecn sets the ECN bits.
func innerPacket(r *rand.Rand, v6 bool, payloadLen int, ecn byte) []byte {
	var p []byte
	if v6 {
		p = make([]byte, 40+8+payloadLen)
		binary.BigEndian.PutUint32(p[0:], 6<<28|uint32(0xb8|ecn)<<20|0x12345)
		binary.BigEndian.PutUint16(p[4:], uint16(8+payloadLen))
		p[6], p[7] = protoUDP, 63
		a, b := v6a.As16(), v6b.As16()
		copy(p[8:], a[:])
		copy(p[24:], b[:])
		p = p[:len(p)]
		fillUDP(r, p[40:])
	} else {
		p = make([]byte, 20+8+payloadLen)
		p[0], p[1] = 0x45, 0xb8|ecn
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], uint16(r.Uint32()))
		binary.BigEndian.PutUint16(p[6:], 0x4000)
		p[8], p[9] = 63, protoUDP
		a, b := v4a.As4(), v4b.As4()
		copy(p[12:], a[:])
		copy(p[16:], b[:])
		binary.BigEndian.PutUint16(p[10:], ipv4Checksum(p[:20]))
		fillUDP(r, p[20:])
	}
	return p
}

func fillUDP(r *rand.Rand, u []byte) {
	binary.BigEndian.PutUint16(u[0:], 1234)
	binary.BigEndian.PutUint16(u[2:], 5678)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	for i := 8; i < len(u); i++ {
		u[i] = byte(r.Uint32())
	}
}

// frame copies pkt into a fresh buffer with Headroom before and room after.
func frame(pkt []byte, extraTail int) ([]byte, int) {
	buf := make([]byte, Headroom+len(pkt)+Tailroom+extraTail)
	copy(buf[Headroom:], pkt)
	return buf, Headroom
}

func mustHex(s string) []byte {
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return r
		}
		return -1
	}, s)
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// allCases enumerates algorithm × mode × outer/inner family × ESN × UDP.
func allCases() []saCase {
	var cs []saCase
	for _, s := range suites {
		for _, mode := range []ipsec.Mode{ipsec.ModeTunnel, ipsec.ModeTransport} {
			for _, outer6 := range []bool{false, true} {
				inners := []bool{outer6}
				if mode == ipsec.ModeTunnel {
					inners = []bool{false, true}
				}
				for _, inner6 := range inners {
					for _, esn := range []bool{false, true} {
						for _, udp := range []bool{false, true} {
							cs = append(cs, saCase{suite: s, mode: mode, outer6: outer6, inner6: inner6, esn: esn, udp: udp, window: 128})
						}
					}
				}
			}
		}
	}
	return cs
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(42, 42)) }
