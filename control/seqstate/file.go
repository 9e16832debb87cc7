package seqstate

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/crypto/esp"
)

// The state file format (one file per shard, "seq-XX.state", XX the shard
// in hex). Text, one record per line, fields separated by one space, every
// number in one canonical spelling so that a file parses to exactly one
// content:
//
//	xdpsec-seqstate 1
//	o <spi> <dst> <key> <mask> <ceiling> <released>
//	i <spi> <dst> <key> <top> <released>
//	t <spi> <dst> <key> <at> <reason>
//	end <crc>
//
//	spi       8 lower-case hex digits
//	dst       the destination address as netip prints it (no zone)
//	key       the keyed fingerprint of key and algorithm, 32 hex digits
//	mask      outbound: the AEAD IV mask, 16 hex digits
//	ceiling   outbound: the reserved ceiling, decimal; no life of the SA
//	          sent or will send a number above it before raising it here
//	top       inbound: the highest authenticated sequence number, decimal
//	released  unix seconds since the SA left the configuration; 0 while
//	          configured (pruned once older than the grace period)
//	at        tombstone: unix seconds of the hard expiry or exhaustion
//	reason    tombstone: [a-z0-9-], at most 32 characters
//	crc       CRC-32C (Castagnoli) of every byte before the "end" line,
//	          8 hex digits
//
// The checksum catches a damaged or truncated file (a torn write cannot
// happen: files are replaced by rename); the parser refuses anything else
// too, including duplicate records, rather than guessing.

const (
	fileHeader   = "xdpsec-seqstate 1\n"
	maxReasonLen = 32
	fpHexLen     = 2 * esp.FingerprintLen
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is one line of a state file: an entry or a tombstone.
type record struct {
	kind     byte // 'o', 'i' or 't'
	id       ID
	mask     uint64 // o
	value    uint64 // o: ceiling; i: top
	released int64  // o, i
	at       int64  // t
	reason   string // t
}

// shardFile is the parsed content of one state file.
type shardFile struct {
	records []record
}

// ErrCorrupt is wrapped by every parse error.
var ErrCorrupt = errors.New("corrupt state file")

// corrupt returns a parse error at line (0: the file as a whole).
func corrupt(line int, format string, args ...any) error {
	if line == 0 {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
	}
	return fmt.Errorf("line %d: %s: %w", line, fmt.Sprintf(format, args...), ErrCorrupt)
}

// parseShard parses a state file, strictly.
func parseShard(data []byte) (shardFile, error) {
	var sf shardFile
	if !bytes.HasPrefix(data, []byte(fileHeader)) {
		return sf, corrupt(1, "not an xdpsec sequence state file of version 1")
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return sf, corrupt(0, "does not end with a newline (truncated?)")
	}
	body := data[:len(data)-1]
	endAt := bytes.LastIndexByte(body, '\n') + 1
	last := string(body[endAt:])
	crcHex, ok := strings.CutPrefix(last, "end ")
	if !ok || len(crcHex) != 8 {
		return sf, corrupt(0, "no end line (truncated?)")
	}
	want, err := parseHex(crcHex, 8)
	if err != nil {
		return sf, corrupt(0, "end line: %v", err)
	}
	if got := crc32.Checksum(data[:endAt], crcTable); uint64(got) != want {
		return sf, corrupt(0, "checksum %08x, file says %08x", got, want)
	}
	lines := strings.Split(string(data[len(fileHeader):endAt]), "\n")
	lines = lines[:len(lines)-1] // the text before "end" ends with a newline
	type dup struct {
		kind byte
		id   ID
	}
	seen := make(map[dup]bool, len(lines))
	tombs := make(map[Fingerprint]bool)
	for i, l := range lines {
		n := i + 2
		r, err := parseRecord(l)
		if err != nil {
			return sf, corrupt(n, "%v", err)
		}
		k := dup{r.kind, r.id}
		if r.kind == 't' {
			if tombs[r.id.Key] {
				return sf, corrupt(n, "a second tombstone for key %x", r.id.Key)
			}
			tombs[r.id.Key] = true
		} else if seen[k] {
			return sf, corrupt(n, "a second %c record for spi %08x dst %s", r.kind, r.id.SPI, r.id.Dst)
		}
		seen[k] = true
		sf.records = append(sf.records, r)
	}
	return sf, nil
}

func parseRecord(l string) (record, error) {
	var r record
	f := strings.Split(l, " ")
	if len(f) == 0 || len(f[0]) != 1 {
		return r, errors.New("no record kind")
	}
	r.kind = f[0][0]
	want := 7
	if r.kind == 'i' || r.kind == 't' {
		want = 6
	}
	if r.kind != 'o' && r.kind != 'i' && r.kind != 't' {
		return r, fmt.Errorf("unknown record kind %q", f[0])
	}
	if len(f) != want {
		return r, fmt.Errorf("%c record with %d fields, want %d", r.kind, len(f), want)
	}
	spi, err := parseHex(f[1], 8)
	if err != nil {
		return r, fmt.Errorf("spi: %w", err)
	}
	r.id.SPI = uint32(spi)
	if r.id.Dst, err = netip.ParseAddr(f[2]); err != nil || r.id.Dst.Zone() != "" || r.id.Dst.String() != f[2] {
		return r, fmt.Errorf("dst %q is not a canonical address", f[2])
	}
	if len(f[3]) != fpHexLen || strings.ToLower(f[3]) != f[3] {
		return r, fmt.Errorf("key fingerprint %q is not %d lower-case hex digits", f[3], fpHexLen)
	}
	if _, err := hex.Decode(r.id.Key[:], []byte(f[3])); err != nil {
		return r, fmt.Errorf("key fingerprint: %v", err)
	}
	switch r.kind {
	case 'o':
		if r.mask, err = parseHex(f[4], 16); err != nil {
			return r, fmt.Errorf("mask: %w", err)
		}
		if r.value, err = parseDec(f[5]); err != nil {
			return r, fmt.Errorf("ceiling: %w", err)
		}
		if r.released, err = parseTime(f[6]); err != nil {
			return r, fmt.Errorf("released: %w", err)
		}
	case 'i':
		if r.value, err = parseDec(f[4]); err != nil {
			return r, fmt.Errorf("top: %w", err)
		}
		if r.released, err = parseTime(f[5]); err != nil {
			return r, fmt.Errorf("released: %w", err)
		}
	case 't':
		if r.at, err = parseTime(f[4]); err != nil {
			return r, fmt.Errorf("at: %w", err)
		}
		if !validReason(f[5]) {
			return r, fmt.Errorf("reason %q is not [a-z0-9-]{1,%d}", f[5], maxReasonLen)
		}
		r.reason = f[5]
	}
	return r, nil
}

// parseHex parses exactly n lower-case hex digits.
func parseHex(s string, n int) (uint64, error) {
	if len(s) != n || strings.ToLower(s) != s {
		return 0, fmt.Errorf("%q is not %d lower-case hex digits", s, n)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not hex", s)
	}
	return v, nil
}

// parseDec parses a canonical decimal uint64 (no sign, no leading zero).
func parseDec(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(v, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal number", s)
	}
	return v, nil
}

func parseTime(s string) (int64, error) {
	v, err := parseDec(s)
	if err != nil || v > 1<<62 {
		return 0, fmt.Errorf("%q is not a time in unix seconds", s)
	}
	return int64(v), nil
}

func validReason(s string) bool {
	if len(s) == 0 || len(s) > maxReasonLen {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// encodeShard writes records in a canonical order (tombstones after entries;
// by SPI, destination, key, kind), appends the checksum line and returns buf.
func encodeShard(buf []byte, recs []record) []byte {
	slices.SortFunc(recs, func(a, b record) int {
		if ta, tb := a.kind == 't', b.kind == 't'; ta != tb {
			if ta {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.id.SPI, b.id.SPI); c != 0 {
			return c
		}
		if c := a.id.Dst.Compare(b.id.Dst); c != 0 {
			return c
		}
		if c := bytes.Compare(a.id.Key[:], b.id.Key[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.kind, b.kind)
	})
	buf = append(buf[:0], fileHeader...)
	for i := range recs {
		buf = appendRecord(buf, &recs[i])
	}
	sum := crc32.Checksum(buf, crcTable)
	buf = append(buf, "end "...)
	buf = appendHex(buf, uint64(sum), 8)
	return append(buf, '\n')
}

func appendRecord(b []byte, r *record) []byte {
	b = append(b, r.kind, ' ')
	b = appendHex(b, uint64(r.id.SPI), 8)
	b = append(b, ' ')
	b = r.id.Dst.AppendTo(b)
	b = append(b, ' ')
	b = hex.AppendEncode(b, r.id.Key[:])
	b = append(b, ' ')
	switch r.kind {
	case 'o':
		b = appendHex(b, r.mask, 16)
		b = append(b, ' ')
		b = strconv.AppendUint(b, r.value, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.released, 10)
	case 'i':
		b = strconv.AppendUint(b, r.value, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, r.released, 10)
	case 't':
		b = strconv.AppendInt(b, r.at, 10)
		b = append(b, ' ')
		b = append(b, r.reason...)
	}
	return append(b, '\n')
}

func appendHex(b []byte, v uint64, n int) []byte {
	const digits = "0123456789abcdef"
	for i := n - 1; i >= 0; i-- {
		b = append(b, digits[(v>>(4*uint(i)))&0xf])
	}
	return b
}
