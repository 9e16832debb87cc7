package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/crypto/esp"
)

var update = flag.Bool("update", false, "rewrite testdata/sample.pcap from the generator")

const (
	samplePcap   = "testdata/sample.pcap"
	sampleConfig = "testdata/sample.yaml"
	// plaintextMarker is in every sample payload; no ESP packet may show it.
	plaintextMarker = "xdpsec-plaintext-marker"
)

// samplePackets builds the sample capture's packets: IPv4 and IPv6, TCP, UDP
// and ICMP, small and large, between hosts of 198.18.1.0/24 → 198.18.2.0/24 and
// 2001:2:0:1::/64 → 2001:2:0:2::/64. Deterministic: same bytes every run.
func samplePackets(t testing.TB) [][]byte {
	t.Helper()
	h4a, h4b := net.ParseIP("198.18.1.10").To4(), net.ParseIP("198.18.2.20").To4()
	h6a, h6b := net.ParseIP("2001:2:0:1::10"), net.ParseIP("2001:2:0:2::20")
	payload := func(n int) gopacket.Payload {
		p := bytes.Repeat([]byte(plaintextMarker+" "), n/(len(plaintextMarker)+1)+1)
		return p[:n]
	}
	ip4 := func(proto layers.IPProtocol, id uint16, df bool, tos uint8) *layers.IPv4 {
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: tos, Id: id, TTL: 64, Protocol: proto, SrcIP: h4a, DstIP: h4b}
		if df {
			ip.Flags = layers.IPv4DontFragment
		}
		return ip
	}
	ip6 := func(proto layers.IPProtocol, tc uint8) *layers.IPv6 {
		return &layers.IPv6{Version: 6, TrafficClass: tc, FlowLabel: 0x12345, NextHeader: proto, HopLimit: 64, SrcIP: h6a, DstIP: h6b}
	}
	tcp := func(net gopacket.NetworkLayer, syn bool, seq uint32) *layers.TCP {
		l := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: seq, Window: 64240, SYN: syn, ACK: !syn, PSH: !syn}
		if !syn {
			l.Ack = 1000
		} else {
			l.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
		}
		_ = l.SetNetworkLayerForChecksum(net)
		return l
	}
	udp := func(net gopacket.NetworkLayer, sport, dport uint16) *layers.UDP {
		l := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		_ = l.SetNetworkLayerForChecksum(net)
		return l
	}
	var pkts [][]byte
	add := func(ls ...gopacket.SerializableLayer) {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, append([]byte(nil), buf.Bytes()...))
	}
	// IPv4
	i := ip4(layers.IPProtocolTCP, 1, true, 0)
	add(i, tcp(i, true, 999))
	i = ip4(layers.IPProtocolTCP, 2, true, 0x02) // ECT(0)
	add(i, tcp(i, false, 1000), payload(1360))
	i = ip4(layers.IPProtocolUDP, 3, false, 0xb8) // DSCP EF
	add(i, udp(i, 5353, 7), payload(48))
	i = ip4(layers.IPProtocolICMPv4, 4, false, 0)
	add(i, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}, payload(56))
	i = ip4(layers.IPProtocolUDP, 5, false, 0)
	add(i, udp(i, 40001, 9), payload(1))
	// IPv6
	i6 := ip6(layers.IPProtocolTCP, 0)
	add(i6, tcp(i6, true, 4999))
	i6 = ip6(layers.IPProtocolTCP, 0x01) // ECT(1)
	add(i6, tcp(i6, false, 5000), payload(1200))
	i6 = ip6(layers.IPProtocolUDP, 0)
	add(i6, udp(i6, 5353, 7), payload(33))
	i6 = ip6(layers.IPProtocolICMPv6, 0)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	_ = ic.SetNetworkLayerForChecksum(i6)
	add(i6, ic, &layers.ICMPv6Echo{Identifier: 7, SeqNumber: 1}, payload(56))
	i6 = ip6(layers.IPProtocolUDP, 0)
	add(i6, udp(i6, 40002, 9), payload(4000)) // beyond an Ethernet MTU: the engine is not bound by one
	return pkts
}

// sampleTime is the timestamp of the sample's first packet; each next one is 1 ms later.
var sampleTime = time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)

func writeCapture(t testing.TB, path string, lt layers.LinkType, frames [][]byte) {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(outSnaplen, lt); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: sampleTime.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCapture(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		d, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		out = append(out, d)
	}
}

// The committed sample is exactly what the generator makes (go generate
// ./cmd/xdpsec, or go test ./cmd/xdpsec -run TestSampleCapture -update, rewrites it).
func TestSampleCapture(t *testing.T) {
	if *update {
		writeCapture(t, samplePcap, layers.LinkTypeRaw, samplePackets(t))
	}
	tmp := filepath.Join(t.TempDir(), "gen.pcap")
	writeCapture(t, tmp, layers.LinkTypeRaw, samplePackets(t))
	want, _ := os.ReadFile(tmp)
	got, err := os.ReadFile(samplePcap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the generator makes; run go generate ./cmd/xdpsec", samplePcap)
	}
	// The sample decodes as the protocols it claims, with valid checksums.
	for i, p := range samplePackets(t) {
		first := layers.LayerTypeIPv4
		if p[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
		pkt := gopacket.NewPacket(p, first, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("packet %d does not decode: %v", i, el.Error())
		}
	}
}

// runCLI runs the binary's entry point and returns exit code, stdout, stderr.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func pcapJSON(t testing.TB, args ...string) (int, pcapSummary, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append(args, "--json")...)
	var s pcapSummary
	if out != "" {
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("summary is not JSON: %v\n%s", err, out)
		}
	}
	return code, s, errOut
}

// isESP reports whether an IP packet carries ESP, directly or in UDP/4500
// (udp), and returns the ESP part.
func isESP(p []byte) (esp []byte, udp, ok bool) {
	var proto byte
	var l4 []byte
	switch p[0] >> 4 {
	case 4:
		proto, l4 = p[9], p[int(p[0]&0xf)*4:]
	case 6:
		proto, l4 = p[6], p[40:]
	}
	switch {
	case proto == 50:
		return l4, false, true
	case proto == 17 && binary.BigEndian.Uint16(l4[2:]) == 4500:
		return l4[8:], true, true
	}
	return nil, false, false
}

func familyOf(p []byte) int { return int(p[0] >> 4) }

// Every sample SA encrypts the sample into ESP only, and decrypts it back to
// the original packets, byte for byte.
func TestPcapRoundTrip(t *testing.T) {
	plain := readCapture(t, samplePcap)
	for _, tc := range []struct {
		sa     string
		family int // transport mode: the only family processed (0: all)
		udp    bool
	}{
		{"gcm-tunnel", 0, false},
		{"chacha-tunnel6", 0, true},
		{"cbc-tunnel", 0, false},
		{"gcm-transport", 4, false},
		{"cbc-transport6", 6, false},
	} {
		t.Run(tc.sa, func(t *testing.T) {
			dir := t.TempDir()
			enc, dec := filepath.Join(dir, "enc.pcap"), filepath.Join(dir, "dec.pcap")
			var want [][]byte
			for _, p := range plain {
				if tc.family == 0 || familyOf(p) == tc.family {
					want = append(want, p)
				}
			}
			code, s, errOut := pcapJSON(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", tc.sa, samplePcap, enc)
			if code != 0 || s.OK != len(want) || s.Failed != 0 || s.Packets != len(plain) || s.Skipped != len(plain)-len(want) {
				t.Fatalf("encrypt: exit %d, summary %+v, stderr %s", code, s, errOut)
			}
			var lastSeq uint32
			for i, p := range readCapture(t, enc) {
				e, udp, ok := isESP(p)
				if !ok || udp != tc.udp {
					t.Fatalf("encrypted packet %d: esp %v, in udp %v; want esp in udp %v", i, ok, udp, tc.udp)
				}
				if bytes.Contains(p, []byte(plaintextMarker)) {
					t.Fatalf("encrypted packet %d shows the plaintext", i)
				}
				seq := binary.BigEndian.Uint32(e[4:])
				if i > 0 && seq != lastSeq+1 {
					t.Fatalf("packet %d: sequence %d after %d", i, seq, lastSeq)
				}
				lastSeq = seq
			}
			code, s, errOut = pcapJSON(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", tc.sa, enc, dec)
			if code != 0 || s.OK != len(want) || s.Failed != 0 || s.Skipped != 0 {
				t.Fatalf("decrypt: exit %d, summary %+v, stderr %s", code, s, errOut)
			}
			got := readCapture(t, dec)
			if len(got) != len(want) {
				t.Fatalf("decrypted %d packets, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("packet %d differs after the round trip:\n got %x\nwant %x", i, got[i], want[i])
				}
			}
			if tc.family == 0 {
				// Whole files are equal too: same header, timestamps, records.
				a, _ := os.ReadFile(samplePcap)
				b, _ := os.ReadFile(dec)
				if !bytes.Equal(a, b) {
					t.Fatal("decrypted capture file differs from the sample")
				}
			}
		})
	}
}

// One flipped bit in an encrypted packet fails that packet with the ICV
// reason (the others decrypt), and the exit status says so.
func TestPcapTampered(t *testing.T) {
	for _, sa := range []string{"gcm-tunnel", "cbc-tunnel", "chacha-tunnel6"} {
		t.Run(sa, func(t *testing.T) {
			dir := t.TempDir()
			enc, bad, dec := filepath.Join(dir, "enc.pcap"), filepath.Join(dir, "bad.pcap"), filepath.Join(dir, "dec.pcap")
			if code, _, errOut := runCLI(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", sa, samplePcap, enc); code != 0 {
				t.Fatalf("encrypt: %s", errOut)
			}
			pkts := readCapture(t, enc)
			pkts[2][len(pkts[2])-30] ^= 0x10 // inside the ciphertext of packet 3
			writeCapture(t, bad, layers.LinkTypeRaw, pkts)
			code, s, errOut := pcapJSON(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", sa, bad, dec)
			if code != exitFailure || s.Failed != 1 || s.FailedBy["icv"] != 1 || s.OK != len(pkts)-1 {
				t.Fatalf("exit %d, summary %+v", code, s)
			}
			if !strings.Contains(errOut, "1 of 10 packets failed") {
				t.Fatalf("stderr %q", errOut)
			}
			code, out, _ := runCLI(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", sa, bad, dec)
			if code != exitFailure || !regexp.MustCompile(`(?m)^failed +1: icv 1$`).MatchString(out) {
				t.Fatalf("text summary (exit %d):\n%s", code, out)
			}
			// The same capture replayed twice: the second copies are replays.
			writeCapture(t, bad, layers.LinkTypeRaw, append(readCapture(t, enc), readCapture(t, enc)...))
			if _, s, _ = pcapJSON(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", sa, bad, dec); s.FailedBy["replay"] != len(pkts) {
				t.Fatalf("replayed capture: %+v", s)
			}
		})
	}
}

// Ethernet (with a VLAN tag and padding), Linux cooked and loopback captures
// read as raw IP does.
func TestPcapLinkTypes(t *testing.T) {
	plain := readCapture(t, samplePcap)
	frame := func(lt linkType, p []byte) []byte {
		var h []byte
		et := []byte{0x08, 0x00}
		if p[0]>>4 == 6 {
			et = []byte{0x86, 0xdd}
		}
		switch lt {
		case linkEther:
			h = append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x07}, et...)
		case linkSLL:
			h = append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}, et...)
		case linkSLL2:
			// tcpdump -i any since libpcap 1.10: protocol, reserved, ifindex 7, ARPHRD_ETHER,
			// PACKET_OUTGOING, a 6-byte address padded to 8.
			h = append(append([]byte{}, et...), 0, 0, 0, 0, 0, 7, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0)
		case linkNull:
			h = []byte{2, 0, 0, 0}
		}
		f := append(h, p...)
		for lt == linkEther && len(f) < 64 {
			f = append(f, 0) // Ethernet padding the engine must ignore
		}
		return f
	}
	for _, tc := range []struct {
		lt linkType
		ng bool
	}{{linkEther, false}, {linkSLL, false}, {linkSLL2, false}, {linkSLL2, true}, {linkNull, false}} {
		name := tc.lt.String()
		if tc.ng {
			name += "/pcapng" // dumpcap -i any writes SLL2 in pcapng; its link type does not fit 8 bits
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in, enc, dec := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "enc.pcap"), filepath.Join(dir, "dec.pcap")
			var frames [][]byte
			for _, p := range plain {
				frames = append(frames, frame(tc.lt, p))
			}
			frames = append(frames, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1}) // ARP-ish, not IP
			if tc.lt == linkSLL2 {
				// The frames are what gopacket's own SLL2 decoder reads as IP.
				pkt := gopacket.NewPacket(frames[0], layers.LinkTypeLinuxSLL2, gopacket.Default)
				if pkt.Layer(layers.LayerTypeLinuxSLL2) == nil || pkt.NetworkLayer() == nil {
					t.Fatalf("the test's SLL2 frame does not decode: %v", pkt)
				}
			}
			if tc.ng {
				writeNg(t, in, tc.lt, 6, frames)
			} else {
				writeCapture(t, in, tc.lt, frames)
			}
			code, s, errOut := pcapJSON(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", in, enc)
			if code != 0 || s.OK != len(plain) || s.SkippedBy["not_ip"] != 1 || s.LinkType != linkText(tc.lt) {
				t.Fatalf("encrypt: exit %d %+v %s", code, s, errOut)
			}
			if code, _, errOut := runCLI(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", enc, dec); code != 0 {
				t.Fatalf("decrypt: %s", errOut)
			}
			got := readCapture(t, dec)
			for i := range plain {
				if !bytes.Equal(got[i], plain[i]) {
					t.Fatalf("packet %d differs", i)
				}
			}
		})
	}
}

// Decrypt skips what is not for the SA, and says so when nothing was.
func TestPcapDecryptSkips(t *testing.T) {
	dir := t.TempDir()
	enc, dec := filepath.Join(dir, "enc.pcap"), filepath.Join(dir, "dec.pcap")
	if code, _, errOut := runCLI(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", samplePcap, enc); code != 0 {
		t.Fatal(errOut)
	}
	// Plaintext through decrypt: nothing is ESP.
	code, s, errOut := pcapJSON(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", samplePcap, dec)
	if code != exitFailure || s.SkippedBy["not_esp"] != 5 || s.SkippedBy["other_family"] != 5 || !strings.Contains(errOut, "no packet") {
		t.Fatalf("exit %d %+v %s", code, s, errOut)
	}
	// ESP of another SA (other SPI).
	code, s, _ = pcapJSON(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", "cbc-tunnel", enc, dec)
	if code != exitFailure || s.SkippedBy["other_spi"] != 10 {
		t.Fatalf("exit %d %+v", code, s)
	}
}

func TestPcapErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.pcap")
	notPcap := filepath.Join(dir, "not.pcap")
	_ = os.WriteFile(notPcap, []byte("this is not a capture file at all"), 0o644)
	short := filepath.Join(dir, "short.pcap")
	_ = os.WriteFile(short, []byte{0xd4, 0xc3}, 0o644)
	wifi := filepath.Join(dir, "wifi.pcap")
	writeCapture(t, wifi, layers.LinkTypeIEEE802_11, [][]byte{{1, 2, 3}})
	truncated := filepath.Join(dir, "truncated.pcap")
	whole, _ := os.ReadFile(samplePcap)
	_ = os.WriteFile(truncated, whole[:len(whole)-10], 0o644)
	badCfg := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(badCfg, []byte("sas:\n  - {name: x, spi: 0x1001, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel, aead: {alg: \"rfc4106(gcm(aes))\", key: \"0x0102\"}}\n"), 0o644)
	noSAs := filepath.Join(dir, "empty.yaml")
	_ = os.WriteFile(noSAs, []byte("instance: t\n"), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing sa", []string{"--sa", "nope", samplePcap, out}, exitFailure, `find sa "nope": not in testdata/sample.yaml (it has: gcm-tunnel, chacha-tunnel6`},
		{"config without sas", []string{"--config", noSAs, "--sa", "x", samplePcap, out}, exitFailure, "defines no sas"},
		{"no --sa", []string{samplePcap, out}, exitUsage, `required flag(s) "sa" not set`},
		{"no --config", []string{"--config", "", "--sa", "gcm-tunnel", samplePcap, out}, exitUsage, "give --config FILE"},
		{"bad config", []string{"--config", badCfg, "--sa", "x", samplePcap, out}, exitFailure, `bad.yaml:2: sa "x": aead.key:`},
		{"missing config", []string{"--config", filepath.Join(dir, "none.yaml"), "--sa", "x", samplePcap, out}, exitFailure, "no such file"},
		{"one argument", []string{"--sa", "gcm-tunnel", samplePcap}, exitUsage, "accepts 2 arg(s), received 1"},
		{"missing input", []string{"--sa", "gcm-tunnel", filepath.Join(dir, "none.pcap"), out}, exitFailure, "open input:"},
		{"not a capture", []string{"--sa", "gcm-tunnel", notPcap, out}, exitFailure, "not a pcap or pcapng file"},
		{"short file", []string{"--sa", "gcm-tunnel", short, out}, exitFailure, "not a pcap or pcapng file"},
		{"wrong link type", []string{"--sa", "gcm-tunnel", wifi, out}, exitFailure, "unsupported link type: link type 105; want Ethernet, raw IP"},
		{"truncated capture", []string{"--sa", "gcm-tunnel", truncated, out}, exitFailure, "read packet 10: unexpected EOF"},
		{"unwritable output", []string{"--sa", "gcm-tunnel", samplePcap, filepath.Join(dir, "no", "dir", "out.pcap")}, exitFailure, "create output:"},
		{"same file", []string{"--sa", "gcm-tunnel", samplePcap, samplePcap}, exitUsage, "input and output are the same file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"pcap", "encrypt", "--config", sampleConfig}, tc.args...)
			code, _, errOut := runCLI(t, args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

// writeNg writes frames as little-endian pcapng (one section, one interface) with timestamps in
// units of 10^-resol seconds: 6 (µs) is what Wireshark and dumpcap write, 9 (ns) what gopacket's
// writer does. Built here because gopacket's writer always writes ns.
func writeNg(t testing.TB, path string, lt layers.LinkType, resol uint8, frames [][]byte) {
	t.Helper()
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		n := uint32(12 + len(body))
		b := le.AppendUint32(le.AppendUint32(nil, typ), n)
		return le.AppendUint32(append(b, body...), n)
	}
	shb := le.AppendUint16(le.AppendUint16(le.AppendUint32(nil, 0x1a2b3c4d), 1), 0)
	shb = le.AppendUint64(shb, ^uint64(0)) // section length unknown
	idb := le.AppendUint32(le.AppendUint16(le.AppendUint16(nil, uint16(lt)), 0), 0)
	idb = append(le.AppendUint16(le.AppendUint16(idb, 9), 1), resol, 0, 0, 0) // if_tsresol
	idb = le.AppendUint32(idb, 0)                                             // opt_endofopt
	out := append(block(pcapngSHB, shb), block(pcapngIDB, idb)...)
	unit := uint64(1)
	for range 9 - resol {
		unit *= 10
	}
	for i, f := range frames {
		ts := uint64(sampleTime.Add(time.Duration(i)*time.Millisecond).UnixNano()) / unit
		epb := le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 0), uint32(ts>>32)), uint32(ts))
		epb = le.AppendUint32(le.AppendUint32(epb, uint32(len(f))), uint32(len(f)))
		out = append(out, block(pcapngEPB, append(epb, f...))...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pcapng input (Wireshark's default) reads like pcap, and timestamps survive at the input's
// resolution: µs pcapng gives back the µs sample byte for byte, ns pcapng gives ns pcap.
func TestPcapng(t *testing.T) {
	plain := readCapture(t, samplePcap)
	for _, resol := range []uint8{6, 9} {
		t.Run(fmt.Sprintf("tsresol %d", resol), func(t *testing.T) {
			dir := t.TempDir()
			in, enc, dec := filepath.Join(dir, "in.pcapng"), filepath.Join(dir, "enc.pcap"), filepath.Join(dir, "dec.pcap")
			writeNg(t, in, layers.LinkTypeRaw, resol, plain)
			if code, _, errOut := runCLI(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", in, enc); code != 0 {
				t.Fatal(errOut)
			}
			if code, _, errOut := runCLI(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", enc, dec); code != 0 {
				t.Fatal(errOut)
			}
			b, _ := os.ReadFile(dec)
			if resol == 6 {
				if a, _ := os.ReadFile(samplePcap); !bytes.Equal(a, b) {
					t.Fatal("pcapng → encrypt → decrypt does not give back the sample")
				}
				return
			}
			r, err := pcapgo.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if r.Resolution() != gopacket.TimestampResolutionNanosecond {
				t.Fatalf("output resolution %v, want ns", r.Resolution())
			}
			for i := range plain {
				d, ci, err := r.ReadPacketData()
				if err != nil || !bytes.Equal(d, plain[i]) || !ci.Timestamp.Equal(sampleTime.Add(time.Duration(i)*time.Millisecond)) {
					t.Fatalf("packet %d: %v, at %v, equal %v", i, err, ci.Timestamp, bytes.Equal(d, plain[i]))
				}
			}
		})
	}
}

// Headers that claim more than the file holds are refused before anything
// allocates what they claim.
func TestPcapHostileHeaders(t *testing.T) {
	dir := t.TempDir()
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeRaw)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	base := ng.Bytes() // section header + one interface (snaplen at the IDB's +12)
	shbLen := int(binary.LittleEndian.Uint32(base[4:]))
	hugeSnap := append([]byte(nil), base...)
	binary.LittleEndian.PutUint32(hugeSnap[shbLen+12:], 0xfffffff0)
	epb := make([]byte, 32)
	binary.LittleEndian.PutUint32(epb[0:], 6)
	binary.LittleEndian.PutUint32(epb[4:], 32)
	binary.LittleEndian.PutUint32(epb[20:], 0x7fffffff) // captured length
	binary.LittleEndian.PutUint32(epb[28:], 32)
	hugeCap := append(append([]byte(nil), base...), epb...)

	var pc bytes.Buffer
	pw := pcapgo.NewWriter(&pc)
	_ = pw.WriteFileHeader(0xffffffff, layers.LinkTypeRaw)
	rec := make([]byte, 16)
	binary.LittleEndian.PutUint32(rec[8:], 0x7ffffff0)
	binary.LittleEndian.PutUint32(rec[12:], 0x7ffffff0)
	hugePcap := append(pc.Bytes(), rec...)

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"pcapng snaplen", hugeSnap, "snapshot length 4294967280 over 262144"},
		{"pcapng caplen", hugeCap, "captured length 2147483647 does not fit the block"},
		{"pcap caplen", hugePcap, "capture length exceeds snap length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, tc.name)
			_ = os.WriteFile(in, tc.data, 0o644)
			code, _, errOut := runCLI(t, "pcap", "decrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", in, filepath.Join(dir, "out"))
			if code != exitFailure || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
			}
		})
	}
}

// FuzzPcapRead feeds arbitrary files to the capture reader and the decrypt
// loop: errors are fine, panics and unbounded allocations are not. Seeds:
// the sample, its encrypted form and testdata/fuzz/FuzzPcapRead.
func FuzzPcapRead(f *testing.F) {
	sample, err := os.ReadFile(samplePcap)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	cfgData, err := os.ReadFile(sampleConfig)
	if err != nil {
		f.Fatal(err)
	}
	// Parsed and allocated once: per input they cost more than the run
	// itself. The SA is per input, so no replay state carries over.
	cfg, err := config.Parse("sample.yaml", cfgData)
	if err != nil {
		f.Fatal(err)
	}
	params, _ := cfg.SA("gcm-tunnel").ESPParams()
	buf := make([]byte, esp.Headroom+esp.MaxPacket+esp.Tailroom+64)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := openCapture(bytes.NewReader(data))
		if err != nil {
			return
		}
		sa, err := esp.New(params)
		if err != nil {
			t.Fatal(err)
		}
		sum := &pcapSummary{FailedBy: map[string]int{}, SkippedBy: map[string]int{}}
		p := &pcapRun{op: opDecrypt, sa: sa, sum: sum, buf: buf}
		_ = p.run(c, pcapgo.NewWriter(io.Discard))
		if sum.OK+sum.Failed+sum.Skipped != sum.Packets {
			t.Fatalf("packets unaccounted for: %+v", sum)
		}
	})
}

// A capture that breaks off still gets its summary, and the packets before
// the break are written.
func TestPcapTruncatedSummary(t *testing.T) {
	dir := t.TempDir()
	whole, _ := os.ReadFile(samplePcap)
	in, out := filepath.Join(dir, "cut.pcap"), filepath.Join(dir, "out.pcap")
	_ = os.WriteFile(in, whole[:len(whole)-10], 0o644)
	code, s, errOut := pcapJSON(t, "pcap", "encrypt", "--config", sampleConfig, "--sa", "gcm-tunnel", in, out)
	if code != exitFailure || s.OK != 9 || !strings.Contains(errOut, "read packet 10") {
		t.Fatalf("exit %d, %+v, %s", code, s, errOut)
	}
	if n := len(readCapture(t, out)); n != 9 {
		t.Fatalf("%d packets written, want 9", n)
	}
}
