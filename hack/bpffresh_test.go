// Package hack's tests check the scripts make test relies on.
package hack

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// copyTree copies the files of src (one level, the way bpf/ is laid out) into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			copyTree(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBPFFreshCheck proves hack/bpf-fresh.sh (make test's first step) can fail: on a copy of the
// module's bpf/ it passes, and after a change to xdpsec.c that was not regenerated it fails, naming
// the stale files, and leaves the copy as it was.
func TestBPFFreshCheck(t *testing.T) {
	testutil.RequireTools(t, "go", "clang", "bash")
	mod := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mod, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyTree(t, "../bpf", filepath.Join(mod, "bpf"))
	check := func() (string, error) {
		cmd := exec.Command("bash", "bpf-fresh.sh", mod)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check(); err != nil {
		t.Fatalf("the check fails on an unchanged copy of bpf/: %v\n%s", err, out)
	}

	src := filepath.Join(mod, "bpf", "xdpsec.c")
	c, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// A new runtime constant: it lands in the object's .rodata and in the Go bindings' variables.
	edited := append(c, []byte("\nvolatile const __u32 xdpsec_stale_probe = 7;\n")...)
	if err := os.WriteFile(src, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(mod, "bpf", "card_bpfel.o")
	objBefore, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	out, err := check()
	if err == nil {
		t.Fatalf("the check passes although xdpsec.c changed without make generate:\n%s", out)
	}
	for _, f := range []string{"bpf/card_bpfel.o differs", "bpf/card_bpfel.go differs", "make generate"} {
		if !bytes.Contains([]byte(out), []byte(f)) {
			t.Errorf("the check's output lacks %q:\n%s", f, out)
		}
	}
	if objAfter, err := os.ReadFile(obj); err != nil || !bytes.Equal(objAfter, objBefore) {
		t.Errorf("the check left a regenerated object behind (%v)", err)
	}
}
