package sadb

import (
	"errors"
	"strings"
	"testing"
)

// Two live SAs under one AEAD key are refused in either direction, under any SPI, also across
// AES-GCM and AES-GMAC (one nonce space); the key is free again once its SA is deleted; CBC with
// HMAC, which takes random IVs, may share.
func TestSharedAEADKeyRefused(t *testing.T) {
	s := New(Options{})
	a := testSA("a", 0x1001)
	if _, err := s.AddSA(a); err != nil {
		t.Fatal(err)
	}
	shared := func(name string, spi uint32) SA {
		sa := testSA(name, spi)
		sa.AEAD.Key = append(Key(nil), a.AEAD.Key...)
		return sa
	}
	refused := func(what string, sa SA) {
		t.Helper()
		_, err := s.AddSA(sa)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "key of spi 0x00001001") {
			t.Fatalf("%s: got %v, want ErrInvalid naming the SA that holds the key", what, err)
		}
	}
	refused("other SPI", shared("b", 0x2002))
	in := shared("b", 0x2002)
	in.Src, in.Dst = in.Dst, in.Src
	refused("the other direction", in)
	gmac := shared("b", 0x2002)
	gmac.AEAD.Name = "rfc4543(gcm(aes))"
	refused("the same key under GMAC", gmac)

	// The refused SAs left nothing behind: the SAD holds a alone.
	if n := len(s.ListSAs(false)); n != 1 {
		t.Fatalf("%d SAs after the refusals, want 1", n)
	}
	if _, err := s.DeleteSA(Ref{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSA(shared("b", 0x2002)); err != nil {
		t.Fatalf("the key of a deleted SA: %v", err)
	}

	cbc := func(name string, spi uint32) SA {
		sa := testSA(name, spi)
		sa.AEAD = nil
		sa.Enc = &Algorithm{Name: "cbc(aes)", Key: bytesOf(1, 16)}
		sa.Auth = &Algorithm{Name: "hmac(sha256)", Key: bytesOf(2, 32)}
		return sa
	}
	if _, err := s.AddSA(cbc("c1", 0x3001)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddSA(cbc("c2", 0x3002)); err != nil {
		t.Fatalf("CBC+HMAC sharing a key: %v", err)
	}
}

// ReplaceSA may keep no other SA's key either, and a replacement that frees a key makes it available.
func TestReplaceSASharedKey(t *testing.T) {
	s := New(Options{})
	a, b := testSA("a", 0x1001), testSA("b", 0x2002)
	for _, sa := range []SA{a, b} {
		if _, err := s.AddSA(sa); err != nil {
			t.Fatal(err)
		}
	}
	repl := testSA("a", 0x1003)
	repl.AEAD.Key = append(Key(nil), b.AEAD.Key...)
	if _, _, err := s.ReplaceSA(Ref{Name: "a"}, repl); !errors.Is(err, ErrInvalid) {
		t.Fatalf("replacement under b's key: got %v, want ErrInvalid", err)
	}
	if _, _, err := s.ReplaceSA(Ref{Name: "a"}, testSA("a", 0x1003)); err != nil {
		t.Fatal(err)
	}
	again := testSA("x", 0x4004)
	again.AEAD.Key = append(Key(nil), a.AEAD.Key...)
	if _, err := s.AddSA(again); err != nil {
		t.Fatalf("the replaced SA's key: %v", err)
	}
}
