package bpf

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// TestVerifierAccepts loads the collection (without pins) so a verifier rejection shows up here, with
// its whole log, before any other test.
func TestVerifierAccepts(t *testing.T) {
	testutil.RequireRoot(t, "loads BPF programs")
	spec, err := LoadCard()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	var objs CardObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	objs.Close()
}
