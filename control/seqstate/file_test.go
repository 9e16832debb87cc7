package seqstate

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func sampleRecords() []record {
	fp := func(b byte) (f Fingerprint) {
		for i := range f {
			f[i] = b + byte(i)
		}
		return f
	}
	return []record{
		{kind: 'o', id: ID{0x1001, netip.MustParseAddr("198.19.0.1"), fp(1)}, mask: 0xdeadbeef00c0ffee, value: 1 << 40, released: 0},
		{kind: 'i', id: ID{0x1001, netip.MustParseAddr("198.18.0.1"), fp(1)}, value: 12345, released: 1_800_000_123},
		{kind: 'o', id: ID{0xffffffff, netip.MustParseAddr("2001:2::1"), fp(0xf0)}, mask: 0, value: 1<<64 - 1, released: 7},
		{kind: 't', id: ID{0x100, netip.MustParseAddr("2001:2::2"), fp(9)}, at: 1_800_000_000, reason: "hard-expired"},
		{kind: 'i', id: ID{0x100, netip.MustParseAddr("2001:2::2"), fp(9)}, value: 0, released: 1},
	}
}

func TestShardRoundTrip(t *testing.T) {
	recs := sampleRecords()
	data := encodeShard(nil, append([]record(nil), recs...))
	sf, err := parseShard(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if len(sf.records) != len(recs) {
		t.Fatalf("%d records, want %d", len(sf.records), len(recs))
	}
	// Parsed records come back in the canonical order; encoding them again
	// gives the same bytes.
	if again := encodeShard(nil, sf.records); !bytes.Equal(again, data) {
		t.Fatalf("not canonical:\n%s\n%s", data, again)
	}
	for _, r := range recs {
		found := false
		for _, g := range sf.records {
			found = found || reflect.DeepEqual(r, g)
		}
		if !found {
			t.Fatalf("record %+v lost", r)
		}
	}
	if !strings.HasPrefix(string(data), "xdpsec-seqstate 1\ni 00000100 2001:2::2 ") ||
		!strings.Contains(string(data), "\no 00001001 198.19.0.1 0102030405060708090a0b0c0d0e0f10 deadbeef00c0ffee 1099511627776 0\n") {
		t.Fatalf("unexpected layout:\n%s", data)
	}
	empty := encodeShard(nil, nil)
	if sf, err := parseShard(empty); err != nil || len(sf.records) != 0 {
		t.Fatalf("empty shard: %v %v", sf, err)
	}
}

// resum replaces the checksum of a hand-edited file, so that a test reaches
// the check it means.
func resum(s string) []byte {
	i := strings.LastIndex(strings.TrimSuffix(s, "\n"), "\n") + 1
	body := s[:i]
	return fmt.Appendf(nil, "%send %08x\n", body, crc32.Checksum([]byte(body), crcTable))
}

func TestParseRejects(t *testing.T) {
	good := string(encodeShard(nil, sampleRecords()))
	lines := strings.Split(good, "\n")
	var o string // the first 'o' record
	for _, l := range lines {
		if strings.HasPrefix(l, "o ") {
			o = l
			break
		}
	}
	edit := func(old, new string) []byte { return resum(strings.Replace(good, old, new, 1)) }
	cases := map[string][]byte{
		"empty":             nil,
		"other header":      resum(strings.Replace(good, "xdpsec-seqstate 1", "xdpsec-seqstate 2", 1)),
		"no final newline":  []byte(strings.TrimSuffix(good, "\n")),
		"truncated":         []byte(good[:len(good)/2]),
		"no end line":       []byte(strings.Join(lines[:len(lines)-2], "\n") + "\n"),
		"bad checksum":      []byte(strings.Replace(good, o, strings.Replace(o, "198.19.0.1", "198.19.0.2", 1), 1)),
		"text after end":    []byte(good + "o x\n"),
		"uppercase hex spi": edit("00001001", "0000100A"),
		"short spi":         edit("o 00001001", "o 1001"),
		"leading zero":      edit(" 1099511627776 ", " 01099511627776 "),
		"plus sign":         edit(" 1099511627776 ", " +1099511627776 "),
		"too big":           edit(" 18446744073709551615 ", " 18446744073709551616 "),
		"zoned dst":         edit("2001:2::1", "fe80::1%eth0"),
		"uncanonical dst":   edit("2001:2::1", "2001:0002::1"),
		"bad fingerprint":   edit("0102030405", "01020304zz"),
		"short mask":        edit("deadbeef00c0ffee", "deadbeef"),
		"unknown kind":      edit("\no ", "\nx "),
		"extra field":       edit(o, o+" 5"),
		"double space":      edit(o, strings.Replace(o, " ", "  ", 1)),
		"bad reason":        edit("hard-expired", "Hard_Expired"),
		"long reason":       edit("hard-expired", strings.Repeat("a", 33)),
		"duplicate record":  edit(o+"\n", o+"\n"+o+"\n"),
		"empty line":        edit(o+"\n", o+"\n\n"),
	}
	for name, data := range cases {
		_, err := parseShard(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A second tombstone for one key, under another SPI.
	recs := sampleRecords()
	dup := recs[3]
	dup.id.SPI++
	if _, err := parseShard(encodeShard(nil, append(recs, dup))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("two tombstones for one key: %v", err)
	}
}

// FuzzParseShard: the parser never panics, and whatever it accepts encodes
// to a file it parses to the same records. Each input is tried as it is and
// as the records of a file with a correct header and checksum, so the
// fuzzer reaches the record parser instead of stopping at the checksum.
func FuzzParseShard(f *testing.F) {
	f.Add(encodeShard(nil, sampleRecords()))
	f.Add(encodeShard(nil, nil))
	f.Add(encodeShard(nil, sampleRecords()[3:4]))
	f.Add([]byte("xdpsec-seqstate 1\nend 00000000\n"))
	f.Add([]byte("o 00001001 198.19.0.1 0102030405060708090a0b0c0d0e0f10 deadbeef00c0ffee 1099511627776 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		body := string(data)
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		for _, in := range [][]byte{data, resum(fileHeader + body + "end 0\n")} {
			sf, err := parseShard(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error without ErrCorrupt: %v", err)
				}
				continue
			}
			enc := encodeShard(nil, append([]record(nil), sf.records...))
			sf2, err := parseShard(enc)
			if err != nil {
				t.Fatalf("re-encoded file refused: %v\n%q", err, enc)
			}
			if len(sf2.records) != len(sf.records) {
				t.Fatalf("%d records became %d", len(sf.records), len(sf2.records))
			}
			if !bytes.Equal(encodeShard(nil, sf2.records), enc) {
				t.Fatal("encoding not stable")
			}
		}
	})
}
