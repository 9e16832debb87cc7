package bpf

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// The hash is the embedded object's, which is the committed file's.
func TestObjectSHA256(t *testing.T) {
	b, err := os.ReadFile("card_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got, want := ObjectSHA256(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("ObjectSHA256 %s, sha256 of card_bpfel.o %s", got, want)
	}
}
