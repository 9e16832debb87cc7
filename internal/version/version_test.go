package version

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/testutil"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/xdpsec/xdpsec", Version: "v0.0.0-20261129075139-2e788758fa91+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "2e788758fa91e0dd2c303424c297aaed7e284427"},
			{Key: "vcs.time", Value: "2026-11-29T07:51:39Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := fromBuildInfo(bi)
	want := Build{Module: "github.com/xdpsec/xdpsec", Version: "v0.0.0-20261129075139-2e788758fa91+dirty",
		Commit: "2e788758fa91e0dd2c303424c297aaed7e284427", CommitTime: "2026-11-29T07:51:39Z", Dirty: true,
		Go: "go1.99.1", Platform: runtime.GOOS + "/" + runtime.GOARCH, BPFObjectSHA256: bpf.ObjectSHA256()}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// No stamp at all (a binary without build info): what the runtime knows, nothing invented.
	if got := fromBuildInfo(nil); got.Module != "" || got.Commit != "" || got.Go != runtime.Version() || len(got.BPFObjectSHA256) != 64 {
		t.Fatalf("without build info: %+v", got)
	}
	// The test binary has build info; its Go version is the toolchain's.
	if b := ReadBuild(); b.Go != runtime.Version() || b.Module != "github.com/xdpsec/xdpsec" {
		t.Fatalf("ReadBuild: %+v", b)
	}
}

func TestFeatureStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status Status
		detail string
	}{
		{nil, Yes, ""},
		{fmt.Errorf("probe: %w", ebpf.ErrNotSupported), No, ""},
		{fmt.Errorf("create map: %w", unix.EPERM), Unknown, "not permitted: run as root to probe"},
		{errors.New("bind: device or resource busy"), Unknown, "bind: device or resource busy"},
	} {
		f := feature("x", "an x", tc.err)
		if f.Status != tc.status || f.Detail != tc.detail || f.Name != "x" || f.Description != "an x" {
			t.Errorf("feature(%v) = %+v, want %s %q", tc.err, f, tc.status, tc.detail)
		}
	}
}

// As root every probe gives a definite answer, the features the card and the workers need are
// there (this project's kernel is 6.18), and the probe that attaches XDP leaves nothing on this
// process's loopback (it attaches in a namespace of its own).
func TestProbeKernel(t *testing.T) {
	testutil.RequireRoot(t, "the kernel probes load BPF, open AF_XDP sockets and build a network namespace")
	k := ProbeKernel()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil || k.Release != unix.ByteSliceToString(u.Release[:]) {
		t.Errorf("release %q (uname: %v)", k.Release, err)
	}
	names := []string{FeatureBTF, FeatureXDP, FeatureXDPLink, FeatureXDPFrags, FeatureAFXDP, FeatureAFXDPSG,
		FeatureBPFLoop, FeatureRingBuf, FeatureLRUHash}
	if len(k.Features) != len(names) {
		t.Fatalf("%d features, want %d: %+v", len(k.Features), len(names), k.Features)
	}
	required := map[string]bool{FeatureXDP: true, FeatureXDPLink: true, FeatureAFXDP: true, FeatureBPFLoop: true,
		FeatureRingBuf: true, FeatureLRUHash: true}
	for i, f := range k.Features {
		if f.Name != names[i] {
			t.Errorf("feature %d is %q, want %q", i, f.Name, names[i])
		}
		if f.Status == Unknown {
			t.Errorf("%s: unknown as root: %s", f.Name, f.Detail)
		}
		if required[f.Name] && f.Status != Yes {
			t.Errorf("%s: %s, but the card needs it", f.Name, f.Status)
		}
	}
	if out, err := exec.Command("ip", "-d", "link", "show", "lo").CombinedOutput(); err != nil {
		t.Fatalf("ip link show lo: %v %s", err, out)
	} else if strings.Contains(string(out), "xdp") {
		t.Errorf("the probe left XDP on this namespace's lo:\n%s", out)
	}
}
