package bpf

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
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

// The card's C is dual-licensed GPL-2.0-only OR BSD-2-Clause (README, LICENSES/), and the object says
// so to the kernel with a GPL-compatible string, so GPL-only helpers stay usable.
func TestLicense(t *testing.T) {
	const spdx = "/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */"
	for _, f := range []string{"xdpsec.c", "xdpsec.h", "maps.h"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(strings.SplitN(string(b), "\n", 3)[:2], "\n"), spdx) {
			t.Errorf("%s does not start with %s", f, spdx)
		}
	}
	spec, err := LoadCard()
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range spec.Programs {
		// "Dual BSD/GPL" is one of the strings the kernel's license_is_gpl_compatible accepts.
		if p.License != "Dual BSD/GPL" {
			t.Errorf("program %s: license %q, want \"Dual BSD/GPL\"", name, p.License)
		}
	}
	for _, f := range []string{"../LICENSES/GPL-2.0.txt", "../LICENSES/BSD-2-Clause.txt", "../LICENSE"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("licence text: %v", err)
		}
	}
}
