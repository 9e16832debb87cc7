package loader

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testutil"
	"github.com/xdpsec/xdpsec/ipsec"
)

func TestLoadErrorVerifierLog(t *testing.T) {
	log := []string{"0: R1=ctx() R10=fp0", "1: (61) r2 = *(u32 *)(r1 +0)", "invalid access to packet, off=0 size=4", "processed 2 insns"}
	err := loadError(fmt.Errorf("load program xdpsec_out: %w", &ebpf.VerifierError{Cause: unix.EACCES, Log: log}), "gw1")
	if !errors.Is(err, ErrVerifier) {
		t.Fatalf("%v is not ErrVerifier", err)
	}
	for _, l := range log {
		if !strings.Contains(err.Error(), l) {
			t.Errorf("the error lacks the verifier's line %q:\n%v", l, err)
		}
	}
	if err := loadError(fmt.Errorf("use pinned map sa_table: %w", ebpf.ErrMapIncompatible), "gw1"); !errors.Is(err, ErrIncompatiblePin) ||
		!strings.Contains(err.Error(), "xdpsec down --instance gw1") {
		t.Errorf("incompatible pin: %v; want ErrIncompatiblePin saying to run xdpsec down", err)
	}
	if err := loadError(fmt.Errorf("create map: %w", unix.EPERM), "gw1"); !errors.Is(err, ErrNotRoot) {
		t.Errorf("EPERM: %v", err)
	}
}

func TestPinRootNotBPFFS(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir() // not a bpffs
	_, err := Load(Config{Instance: "t" + randHex(4), PinRoot: dir, Logger: quiet})
	if !errors.Is(err, ErrNotBPFFS) {
		t.Errorf("pinning under %s: %v; want ErrNotBPFFS", dir, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d entries in %s", len(entries), dir)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Policies: MaxPolicies + 1},
		{Instance: "a/b"},
		{Instance: ".."},
		{Defaults: spdDefaultsProtect},
	} {
		if _, err := Load(cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%+v): %v; want ErrInvalid", cfg, err)
		}
	}
}

var spdDefaultsProtect = ipsec.Defaults{Out: ipsec.ActionProtect}

func TestPrivilegeErrors(t *testing.T) {
	const (
		bpf, sysAdmin, netAdmin = 1 << capBPF, 1 << capSysAdmin, 1 << capNetAdmin
	)
	for _, c := range []struct {
		eff     uint64
		missing string // "" when the set suffices
	}{
		{bpf | netAdmin, ""},
		{sysAdmin | netAdmin, ""},
		{^uint64(0), ""},
		{0, "missing CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN"},
		{netAdmin, "missing CAP_BPF (or CAP_SYS_ADMIN) ("},
		{bpf, "missing CAP_NET_ADMIN ("},
		{sysAdmin | 1<<38 /* CAP_PERFMON */, "missing CAP_NET_ADMIN ("},
	} {
		err := privilegeError(c.eff)
		switch {
		case c.missing == "" && err != nil:
			t.Errorf("caps %#x: %v; want none", c.eff, err)
		case c.missing != "" && (!errors.Is(err, ErrNotRoot) || !strings.Contains(fmt.Sprint(err), c.missing)):
			t.Errorf("caps %#x: %v; want ErrNotRoot naming %q", c.eff, err, c.missing)
		}
	}
	if os.Geteuid() == 0 {
		if err := checkPrivileges(); err != nil {
			t.Errorf("as root: %v", err)
		}
	}
}

// TestLoadWithoutCapabilities runs Load as root with every capability dropped (setpriv), in a child
// process: it must fail with ErrNotRoot naming the missing capabilities, before touching the kernel.
func TestLoadWithoutCapabilities(t *testing.T) {
	if os.Getenv("XDPSEC_TEST_NOCAPS") == "1" {
		_, err := Load(Config{Logger: quiet})
		fmt.Printf("LOAD-ERROR: %v\n", err)
		if !errors.Is(err, ErrNotRoot) {
			os.Exit(3)
		}
		return
	}
	requireRoot(t)
	setpriv := testutil.RequireTools(t, "setpriv")[0]
	cmd := exec.Command(setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--",
		os.Args[0], "-test.run=^TestLoadWithoutCapabilities$", "-test.count=1")
	cmd.Env = append(os.Environ(), "XDPSEC_TEST_NOCAPS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "LOAD-ERROR: not permitted") || !strings.Contains(string(out), "CAP_NET_ADMIN") {
		t.Errorf("child output lacks the capability error:\n%s", out)
	}
}

func TestKernelTooOld(t *testing.T) {
	ok := func() error { return nil }
	probes := []kernelProbe{
		{"XDP programs", ok},
		{"bpf_loop (5.17)", func() error { return fmt.Errorf("probe helper: %w", ebpf.ErrNotSupported) }},
		{"later feature", func() error { t.Error("probed past the first missing feature"); return nil }},
	}
	err := checkProbes(probes)
	if !errors.Is(err, ErrKernelTooOld) || !strings.Contains(fmt.Sprint(err), "missing bpf_loop (5.17)") {
		t.Errorf("%v; want ErrKernelTooOld naming bpf_loop", err)
	}
	err = checkProbes([]kernelProbe{{"ring buffer maps (5.8)", func() error { return unix.EPERM }}})
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(fmt.Sprint(err), "ring buffer") {
		t.Errorf("EPERM while probing: %v; want ErrNotRoot", err)
	}
	if err := checkProbes(probes[:1]); err != nil {
		t.Errorf("all present: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := checkKernel(); err != nil {
			t.Errorf("this kernel (6.18): %v", err)
		}
	}
}
