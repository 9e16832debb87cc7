package nsenter

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// TestRunEntersAndReturns: fn sees the namespace, the caller never does, and the caller's thread is
// where it was afterwards.
func TestRunEntersAndReturns(t *testing.T) {
	testutil.RequireRoot(t, "creates a network namespace")
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "xs-nsenter-" + hex.EncodeToString(rnd[:])
	h, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	here, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	if here.Equal(h) {
		t.Fatal("Create moved the caller into the new namespace")
	}
	var inside bool
	if err := Run(h, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		inside = cur.Equal(h)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !inside {
		t.Fatal("fn did not run in the namespace")
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(here) {
		t.Fatal("the caller's namespace changed")
	}
	// No namespace: fn runs where the caller is.
	if err := Run(0, func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(here) {
			t.Error("Run(0) moved fn")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
