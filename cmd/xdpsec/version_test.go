package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, out, errOut := cliRun("version", "-o", "json")
	if code != 0 {
		t.Fatalf("version -o json: exit %d: %s", code, errOut)
	}
	var r versionReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	obj, err := os.ReadFile("../../bpf/card_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(obj)
	if r.BPFObjectSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("bpf_object_sha256 %s, sha256sum bpf/card_bpfel.o %x", r.BPFObjectSHA256, sum)
	}
	if r.Go != runtime.Version() || r.Module != "github.com/xdpsec/xdpsec" || r.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("build %+v", r.Build)
	}
	var names []string
	for _, f := range r.Kernel.Features {
		names = append(names, f.Name)
		if !slices.Contains([]string{"yes", "no", "unknown"}, string(f.Status)) || f.Description == "" {
			t.Errorf("feature %+v", f)
		}
	}
	for _, want := range []string{"btf", "xdp_link", "af_xdp", "af_xdp_multi_buffer", "bpf_loop", "ringbuf"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s among the features %v", want, names)
		}
	}

	// The text form says the same, and --version is the same command.
	code, text, errOut := cliRun("version")
	if code != 0 {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"xdpsec " + r.Version + "\n", "bpf object  sha256:" + r.BPFObjectSHA256,
		"go          " + runtime.Version(), "kernel " + r.Kernel.Release, "af_xdp_multi_buffer  "} {
		if !strings.Contains(text, want) {
			t.Errorf("version lacks %q:\n%s", want, text)
		}
	}
	if r.Commit == "" && !strings.Contains(text, "commit      unknown") {
		t.Errorf("a build without a VCS stamp must say the commit is unknown:\n%s", text)
	}
	if code, flag, _ := cliRun("--version"); code != 0 || flag != text {
		t.Errorf("--version (exit %d) differs from version:\n%s\n---\n%s", code, flag, text)
	}
	if code, flag, _ := cliRun("--version", "-o", "json"); code != 0 || flag != out {
		t.Errorf("--version -o json (exit %d) differs from version -o json", code)
	}
}
