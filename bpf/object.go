package bpf

import (
	"crypto/sha256"
	"encoding/hex"
)

// ObjectSHA256 is the SHA-256 of the card's object as embedded in this binary (card_bpfel.o), in hex:
// `xdpsec version` prints it so that a running binary can be matched with the object a build produced
// (sha256sum bpf/card_bpfel.o).
func ObjectSHA256() string {
	sum := sha256.Sum256(_CardBytes)
	return hex.EncodeToString(sum[:])
}
