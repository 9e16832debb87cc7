package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/crypto/esp"
	"github.com/xdpsec/xdpsec/ipsec"
)

//go:generate go test . -count=1 -run TestSampleCapture -update

func init() { register(newPcapCmd) }

// The offline pcap tool runs the ESP engine over capture files: a user checks
// a capture against known keys, and the engine is exercised without root.

const (
	opEncrypt = "encrypt"
	opDecrypt = "decrypt"

	// outSnaplen is the snapshot length written in the output header
	// (tcpdump's default; an ESP packet is at most 65535 bytes anyway).
	outSnaplen = 262144
)

func newPcapCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pcap",
		Short: "Encrypt or decrypt capture files offline with an SA from the configuration",
		Long: `Run the ESP engine over capture files, without root and without the dataplane.

Input: pcap or pcapng with link type Ethernet (VLAN tags allowed), raw IP (101, 12, 14, 228,
229), Linux cooked (113, 276) or BSD loopback (0, 108). Output: pcap with raw IP (101).
Frames that are not IP are skipped; so are, on decrypt, packets that are not ESP or carry
another SPI, and, in transport mode, packets of the other address family. A summary says
how many packets were processed, failed (by reason) and skipped; the exit status is 1 when
any packet failed.`,
	}
	cmd.AddCommand(newPcapOpCmd(a, opEncrypt), newPcapOpCmd(a, opDecrypt))
	return cmd
}

func newPcapOpCmd(a *App, op string) *cobra.Command {
	var saName string
	var asJSON bool
	short := "Encrypt the IP packets of a capture with an outbound SA (ESP encapsulation)"
	long := `Encrypt every IP packet of IN.pcap with the SA named by --sa and write the ESP packets
to OUT.pcap as raw IP. Tunnel mode wraps each packet in the SA's outer header; transport mode
inserts ESP into each packet of the SA's address family.`
	if op == opDecrypt {
		short = "Decrypt the ESP packets of a capture with an inbound SA (verify, anti-replay, decrypt)"
		long = `Verify and decrypt every ESP packet of IN.pcap that carries the SPI of the SA named by
--sa, and write the result to OUT.pcap as raw IP: the inner packets in tunnel mode, the rebuilt
IP packets in transport mode. The ICV, the anti-replay window and the padding are checked as
a receiving gateway would.`
	}
	cmd := &cobra.Command{
		Use:     op + " --config FILE --sa NAME IN.pcap OUT.pcap",
		Short:   short,
		Long:    long,
		Example: "  xdpsec pcap " + op + " --config cmd/xdpsec/testdata/sample.yaml --sa gcm-tunnel in.pcap out.pcap",
		Args:    cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []cobra.Completion{"pcap", "pcapng", "cap"}, cobra.ShellCompDirectiveFilterFileExt
			}
			return nil, cobra.ShellCompDirectiveDefault // OUT.pcap: any file name
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				a.Output = outputJSON
			}
			return a.runPcap(op, saName, args[0], args[1])
		},
	}
	cmd.Flags().StringVar(&saName, "sa", "", "`name` of the SA in the configuration (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON (same as -o json)")
	_ = cmd.MarkFlagRequired("sa")
	_ = cmd.RegisterFlagCompletionFunc("sa", a.completeConfigSAs)
	return cmd
}

// pcapSummary is what the tool prints; its JSON form is stable for scripts.
type pcapSummary struct {
	Op        string         `json:"op"`
	SA        string         `json:"sa"`
	SPI       string         `json:"spi"`
	Mode      string         `json:"mode"`
	Algorithm string         `json:"algorithm"`
	Input     string         `json:"input"`
	Output    string         `json:"output"`
	LinkType  string         `json:"link_type"`
	Packets   int            `json:"packets"` // records read
	OK        int            `json:"ok"`
	Failed    int            `json:"failed"`
	FailedBy  map[string]int `json:"failed_by_reason"`
	Skipped   int            `json:"skipped"`
	SkippedBy map[string]int `json:"skipped_by_reason"`
	BytesIn   uint64         `json:"bytes_in"`  // IP bytes handed to the engine
	BytesOut  uint64         `json:"bytes_out"` // IP bytes written
}

// Why a record is skipped rather than processed.
const (
	skipNotIP       = "not_ip"
	skipOtherFamily = "other_family"
	skipNotESP      = "not_esp"
	skipOtherSPI    = "other_spi"
	failSnapped     = "snapped" // the capture holds only part of the packet
)

func (a *App) runPcap(op, saName, inPath, outPath string) error {
	cfg, err := a.LoadConfig()
	if err != nil {
		return err
	}
	defer cfg.Wipe()
	csa := cfg.SA(saName)
	if csa == nil {
		names := make([]string, 0, len(cfg.SAs))
		for _, s := range cfg.SAs {
			names = append(names, s.Name)
		}
		if len(names) == 0 {
			return fmt.Errorf("find sa %q: %s defines no sas", saName, cfg.File)
		}
		return fmt.Errorf("find sa %q: not in %s (it has: %s)", saName, cfg.File, strings.Join(names, ", "))
	}
	params, err := csa.ESPParams()
	if err != nil {
		return err
	}
	sa, err := esp.New(params)
	if err != nil {
		return fmt.Errorf("create sa %q: %w", saName, err)
	}
	defer sa.Wipe()

	if same, _ := sameFile(inPath, outPath); same {
		return usageErrorf("input and output are the same file %s", inPath)
	}
	in, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer in.Close()
	src, err := openCapture(in)
	if err != nil {
		return fmt.Errorf("read %s: %w", inPath, err)
	}
	out, err := os.Create(outPath)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<16)

	sum := &pcapSummary{
		Op: op, SA: csa.Name, SPI: csa.SPI.String(), Mode: csa.Mode.String(), Algorithm: sa.Algorithm(),
		Input: inPath, Output: outPath, LinkType: src.linkName(),
		FailedBy: map[string]int{}, SkippedBy: map[string]int{},
	}
	p := &pcapRun{op: op, sa: sa, transport: csa.Mode.Mode == ipsec.ModeTransport, sa6: csa.Src.Is6(), sum: sum,
		buf: make([]byte, esp.Headroom+esp.MaxPacket+esp.Tailroom+int(csa.TFCPad)+64)}
	w := pcapgo.NewWriter(bw)
	if src.nanos() {
		w = pcapgo.NewWriterNanos(bw)
	}
	runErr := p.run(src, w)
	if err := bw.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("write %s: %w", outPath, err)
	}
	if err := out.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("write %s: %w", outPath, err)
	}
	a.Log.Debug("pcap done", "op", op, "sa", csa.Name, "counters", sa.Counters())
	// The summary shows what was done also when the input broke off.
	if err := a.printSummary(sum); err != nil {
		return err
	}
	switch {
	case runErr != nil:
		return runErr
	case sum.Failed > 0:
		return fmt.Errorf("pcap %s: %d of %d packets failed", op, sum.Failed, sum.Packets)
	case sum.OK == 0 && sum.Skipped > 0:
		return fmt.Errorf("pcap %s: no packet of %s was for sa %q (all %d skipped)", op, inPath, csa.Name, sum.Skipped)
	}
	return nil
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// pcapRun is one pass over a capture, on one reusable buffer.
type pcapRun struct {
	op        string
	sa        *esp.SA
	transport bool
	sa6       bool
	sum       *pcapSummary
	buf       []byte
}

func (p *pcapRun) run(src *capture, w *pcapgo.Writer) error {
	if err := w.WriteFileHeader(outSnaplen, layers.LinkTypeRaw); err != nil {
		return fmt.Errorf("write output header: %w", err)
	}
	for {
		data, ci, lt, err := src.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read packet %d: %w", p.sum.Packets+1, err)
		}
		p.sum.Packets++
		ip, ok := ipPayload(lt, data)
		if !ok {
			p.skip(skipNotIP)
			continue
		}
		if ci.CaptureLength < ci.Length {
			p.fail(failSnapped)
			continue
		}
		if (p.op == opDecrypt || p.transport) && (ip[0]>>4 == 6) != p.sa6 {
			// ESP for this SA arrives in the SA's address family, and a
			// transport-mode SA protects packets of its own family only.
			p.skip(skipOtherFamily)
			continue
		}
		off := esp.Headroom
		n := copy(p.buf[off:off+esp.MaxPacket], ip)
		var start, end int
		if p.op == opEncrypt {
			start, end, err = p.sa.Encap(p.buf, off, n)
		} else {
			start, end, err = p.sa.Decap(p.buf, off, n)
		}
		if err != nil {
			reason, _ := esp.ReasonOf(err)
			switch {
			case p.op == opDecrypt && reason == esp.ReasonNotESP:
				p.skip(skipNotESP)
			case p.op == opDecrypt && reason == esp.ReasonWrongSPI:
				p.skip(skipOtherSPI)
			default:
				p.fail(reason.String())
			}
			continue
		}
		p.sum.OK++
		p.sum.BytesIn += uint64(n)
		p.sum.BytesOut += uint64(end - start)
		oci := gopacket.CaptureInfo{Timestamp: ci.Timestamp, CaptureLength: end - start, Length: end - start}
		if err := w.WritePacket(oci, p.buf[start:end]); err != nil {
			return fmt.Errorf("write packet %d: %w", p.sum.Packets, err)
		}
	}
}

func (p *pcapRun) skip(reason string) { p.sum.Skipped++; p.sum.SkippedBy[reason]++ }
func (p *pcapRun) fail(reason string) { p.sum.Failed++; p.sum.FailedBy[reason]++ }

func (a *App) printSummary(s *pcapSummary) error {
	if a.JSON() {
		enc := json.NewEncoder(a.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "pcap %s\t%s → %s\n", s.Op, s.Input, s.Output)
	fmt.Fprintf(tw, "sa\t%s (spi %s, %s, %s)\n", s.SA, s.SPI, s.Mode, s.Algorithm)
	fmt.Fprintf(tw, "read\t%d packets (%s)\n", s.Packets, s.LinkType)
	fmt.Fprintf(tw, "ok\t%d (%d → %d bytes of IP)\n", s.OK, s.BytesIn, s.BytesOut)
	fmt.Fprintf(tw, "failed\t%d%s\n", s.Failed, byReason(s.FailedBy))
	fmt.Fprintf(tw, "skipped\t%d%s\n", s.Skipped, byReason(s.SkippedBy))
	return tw.Flush()
}

func byReason(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return ": " + strings.Join(parts, ", ")
}

// linkType is a capture's LINKTYPE_ value (16 bits, as in pcap and pcapng headers).
type linkType = layers.LinkType

// Link types read. 12 and 14 are DLT_RAW's values on some BSDs, 228 and 229
// LINKTYPE_IPV4/IPV6, 113/276 Linux cooked v1/v2 (tcpdump -i any), 0/108 BSD
// loopback.
const (
	linkNull  linkType = 0
	linkEther linkType = 1
	linkRaw12 linkType = 12
	linkRaw14 linkType = 14
	linkRaw   linkType = 101
	linkLoop  linkType = 108
	linkSLL   linkType = 113
	linkIPv4  linkType = 228
	linkIPv6  linkType = 229
	linkSLL2  linkType = 276
)

var linkNames = map[linkType]string{
	linkNull: "BSD loopback", linkEther: "Ethernet", linkRaw12: "raw IP", linkRaw14: "raw IP", linkRaw: "raw IP",
	linkLoop: "OpenBSD loopback", linkSLL: "Linux cooked", linkIPv4: "raw IPv4", linkIPv6: "raw IPv6", linkSLL2: "Linux cooked v2",
}

// linkText names a link type as the summary and errors print it.
func linkText(l linkType) string {
	if n, ok := linkNames[l]; ok {
		return fmt.Sprintf("%s, link type %d", n, uint16(l))
	}
	return fmt.Sprintf("link type %d", uint16(l))
}

func supportedLink(l linkType) bool { _, ok := linkNames[l]; return ok }

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	ethHdrLen  = 14
	sllHdrLen  = 16
	sll2HdrLen = 20
)

// capture reads pcap or pcapng records and the link type of each.
type capture struct {
	pcap *pcapgo.Reader
	ng   *pcapgo.NgReader
}

var (
	// errNotCapture is returned for input that is neither pcap nor pcapng.
	errNotCapture = errors.New("not a pcap or pcapng file")
	// errLinkType is returned for a capture of a link type the tool cannot read.
	errLinkType = errors.New("unsupported link type")
)

// maxSnaplen bounds what a capture may claim: gopacket allocates a buffer of
// the claimed snapshot length, so a corrupt header must not ask for gigabytes.
const maxSnaplen = outSnaplen

func openCapture(r io.ReadSeeker) (*capture, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	hdr, err := br.Peek(4)
	if err != nil && len(hdr) < 4 {
		return nil, fmt.Errorf("%w: only %d bytes", errNotCapture, len(hdr))
	}
	c := &capture{}
	if binary.BigEndian.Uint32(hdr) == pcapngSHB {
		if err := checkPcapng(br); err != nil {
			return nil, err
		}
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewind: %w", err)
		}
		br.Reset(r)
		if c.ng, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions); err != nil {
			return nil, fmt.Errorf("%w: %w", errNotCapture, err)
		}
	} else {
		if c.pcap, err = pcapgo.NewReader(br); err != nil {
			return nil, fmt.Errorf("%w: %w", errNotCapture, err)
		}
		if c.pcap.Snaplen() > maxSnaplen || c.pcap.Snaplen() == 0 {
			// Records longer than this are refused one by one ("capture
			// length exceeds snap length"); IP packets are shorter anyway.
			c.pcap.SetSnaplen(maxSnaplen)
		}
	}
	if lt := c.linkType(); !supportedLink(lt) {
		return nil, fmt.Errorf("%w: %s; want Ethernet, raw IP, Linux cooked or BSD loopback", errLinkType, linkText(lt))
	}
	return c, nil
}

// pcapng block types (draft-ietf-opsawg-pcapng §4).
const (
	pcapngSHB = 0x0a0d0d0a // section header
	pcapngIDB = 1          // interface description
	pcapngOPB = 2          // packet (obsolete)
	pcapngSPB = 3          // simple packet
	pcapngEPB = 6          // enhanced packet
	// maxBlock bounds one block: a packet of maxSnaplen plus generous options.
	maxBlock = 16 << 20
)

// checkPcapng walks the blocks of a pcapng file before gopacket reads it.
// gopacket allocates what the headers claim (an interface's snapshot length,
// a packet's captured length) without checking it against the block, so a
// corrupt or hostile file could make it allocate gigabytes; here every claim
// is checked against the block that carries it.
func checkPcapng(r io.Reader) error {
	var (
		order    binary.ByteOrder = binary.LittleEndian
		b        [28]byte
		snap0    uint32 // first interface's snapshot length in this section
		nIfaces  int
		blockNum int
	)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: block %d: %s", errNotCapture, blockNum, fmt.Sprintf(format, args...))
	}
	for blockNum = 1; ; blockNum++ {
		if _, err := io.ReadFull(r, b[:8]); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return bad("truncated header")
		}
		typ, read := order.Uint32(b[:4]), 8
		if typ == pcapngSHB {
			if _, err := io.ReadFull(r, b[8:12]); err != nil {
				return bad("truncated section header")
			}
			read = 12
			switch binary.LittleEndian.Uint32(b[8:12]) {
			case 0x1a2b3c4d:
				order = binary.LittleEndian
			case 0x4d3c2b1a:
				order = binary.BigEndian
			default:
				return bad("bad byte-order magic")
			}
			snap0, nIfaces = 0, 0
		}
		length := order.Uint32(b[4:8])
		if length < 12 || length%4 != 0 || length > maxBlock {
			return bad("length %d", length)
		}
		need := map[uint32]int{pcapngIDB: 16, pcapngOPB: 28, pcapngSPB: 12, pcapngEPB: 28}[typ]
		if need > int(length) {
			return bad("length %d too short for its type", length)
		}
		if need > read {
			if _, err := io.ReadFull(r, b[read:need]); err != nil {
				return bad("truncated")
			}
			read = need
		}
		switch typ {
		case pcapngIDB:
			snap := order.Uint32(b[12:16])
			if snap > maxSnaplen {
				return bad("snapshot length %d over %d", snap, maxSnaplen)
			}
			if nIfaces == 0 {
				snap0 = snap
			}
			nIfaces++
		case pcapngOPB, pcapngEPB:
			if caplen := order.Uint32(b[20:24]); caplen > length-32 {
				return bad("captured length %d does not fit the block", caplen)
			}
		case pcapngSPB:
			if orig := order.Uint32(b[8:12]); (snap0 == 0 || orig < snap0) && orig > length-16 {
				return bad("packet length %d does not fit the block", orig)
			}
		}
		if _, err := io.CopyN(io.Discard, r, int64(length)-int64(read)); err != nil {
			return bad("truncated")
		}
	}
}

func (c *capture) linkType() linkType {
	if c.ng != nil {
		return c.ng.LinkType()
	}
	return c.pcap.LinkType()
}

func (c *capture) linkName() string { return linkText(c.linkType()) }

func (c *capture) nanos() bool {
	if c.ng != nil {
		return c.ng.Resolution().ToDuration() < time.Microsecond
	}
	return c.pcap.Resolution() == gopacket.TimestampResolutionNanosecond
}

func (c *capture) next() ([]byte, gopacket.CaptureInfo, linkType, error) {
	if c.pcap != nil {
		data, ci, err := c.pcap.ZeroCopyReadPacketData()
		return data, ci, c.pcap.LinkType(), err
	}
	data, ci, err := c.ng.ZeroCopyReadPacketData()
	if err != nil {
		return nil, ci, 0, err
	}
	ifc, err := c.ng.Interface(ci.InterfaceIndex)
	if err != nil {
		return nil, ci, 0, err
	}
	// A pcapng file may mix interfaces of different link types (dumpcap -i any -i eth0).
	if !supportedLink(ifc.LinkType) {
		return nil, ci, 0, fmt.Errorf("%w: interface %d has %s", errLinkType, ci.InterfaceIndex, linkText(ifc.LinkType))
	}
	return data, ci, ifc.LinkType, nil
}

// ipPayload returns the IP packet inside one captured frame, or false when
// the frame carries something else (ARP, LLDP, …).
func ipPayload(lt linkType, d []byte) ([]byte, bool) {
	var ip []byte
	switch lt {
	case linkEther:
		if len(d) < ethHdrLen {
			return nil, false
		}
		et, off := binary.BigEndian.Uint16(d[12:]), ethHdrLen
		for (et == etherVLAN || et == etherQinQ) && len(d) >= off+4 {
			et, off = binary.BigEndian.Uint16(d[off+2:]), off+4
		}
		if et != etherIPv4 && et != etherIPv6 {
			return nil, false
		}
		ip = d[off:]
	case linkSLL:
		if len(d) < sllHdrLen || !isIPEtherType(binary.BigEndian.Uint16(d[14:])) {
			return nil, false
		}
		ip = d[sllHdrLen:]
	case linkSLL2:
		if len(d) < sll2HdrLen || !isIPEtherType(binary.BigEndian.Uint16(d[0:])) {
			return nil, false
		}
		ip = d[sll2HdrLen:]
	case linkNull, linkLoop:
		// A 4-byte address family in the capturing host's byte order (Null)
		// or network order (Loop): the IP version nibble below decides.
		if len(d) < 4 {
			return nil, false
		}
		ip = d[4:]
	default: // raw IP
		ip = d
	}
	if len(ip) == 0 || (ip[0]>>4 != 4 && ip[0]>>4 != 6) {
		return nil, false
	}
	if len(ip) > esp.MaxPacket {
		ip = ip[:esp.MaxPacket]
	}
	return ip, true
}

func isIPEtherType(et uint16) bool { return et == etherIPv4 || et == etherIPv6 }
