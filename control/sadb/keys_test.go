package sadb

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/crypto/keymem"
)

// The store keeps its own copy of a key in key memory; deleting and reaping the SA zeroes that
// memory and releases it, and the record's key reads as nil (a use after the wipe fails).
func TestStoreKeysInKeyMemory(t *testing.T) {
	s := New(Options{})
	in := testSA("a", 0x1001)
	copy(in.AEAD.Key, "0123456789abcdefSALT")
	before := keymem.Stats().InUse
	e, err := s.AddSA(in)
	if err != nil {
		t.Fatal(err)
	}
	clear(in.AEAD.Key) // the caller's copy is the caller's
	snap := s.Snapshot()
	alg := snap.SAs[0].AEAD // shares the store's record
	kept := alg.Key
	if string(kept) != "0123456789abcdefSALT" || keymem.Stats().InUse < before+20 {
		t.Fatalf("the store's copy: %q, key memory in use %d → %d", kept, before, keymem.Stats().InUse)
	}
	// A view with keys is a copy of its own, in key memory too, released by Wipe.
	v, err := s.GetSA(Ref{Name: "a"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if &v.AEAD.Key[0] == &kept[0] || !bytes.Equal(v.AEAD.Key, kept) {
		t.Fatal("GetSA(withKeys) does not return a copy")
	}
	vk := v.AEAD.Key
	v.Wipe()
	if v.AEAD.Key != nil || !bytes.Equal(vk, make([]byte, 20)) || string(kept) != "0123456789abcdefSALT" {
		t.Fatalf("view wipe: view key %v, its memory %x, the store's %q", v.AEAD.Key, vk, kept)
	}
	if _, err := s.DeleteSA(Ref{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if !s.Reap(e.Index) {
		t.Fatal("nothing to reap")
	}
	if alg.Key != nil || !bytes.Equal(kept, make([]byte, 20)) {
		t.Errorf("after Reap: key %x, its memory %x", alg.Key, kept)
	}
	if got := keymem.Stats().InUse; got != before {
		t.Errorf("key memory in use: %d before, %d after the SA's life", before, got)
	}
}

// ParseKey names the position of a bad character and shows none of the key's.
func TestParseKeyHidesDigits(t *testing.T) {
	const key = "0x8f3e9d2c7b1a6f5e4d3cg2b1a09f8e7d" // the 23rd character is a 'g'
	_, err := ParseKey(key)
	if err == nil || !strings.Contains(err.Error(), "character 23 is not a hex digit") {
		t.Fatalf("ParseKey: %v", err)
	}
	for i := 2; i+2 <= len(key); i++ {
		if w := key[i : i+2]; strings.Contains(err.Error(), w) {
			t.Errorf("the error %q shows key characters %q", err, w)
		}
	}
	if k, err := ParseKey("0X0A0b"); err != nil || !bytes.Equal(k, []byte{10, 11}) {
		t.Errorf("ParseKey(0X0A0b) = %x, %v", k, err)
	}
}
