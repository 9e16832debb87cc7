package loader

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/control/spd"
)

func TestLoadErrorVerifierLog(t *testing.T) {
	log := []string{"0: R1=ctx() R10=fp0", "1: (61) r2 = *(u32 *)(r1 +0)", "invalid access to packet, off=0 size=4", "processed 2 insns"}
	err := loadError(fmt.Errorf("load program xdpsec_out: %w", &ebpf.VerifierError{Cause: unix.EACCES, Log: log}))
	if !errors.Is(err, ErrVerifier) {
		t.Fatalf("%v is not ErrVerifier", err)
	}
	for _, l := range log {
		if !strings.Contains(err.Error(), l) {
			t.Errorf("the error lacks the verifier's line %q:\n%v", l, err)
		}
	}
	if err := loadError(fmt.Errorf("use pinned map sa_table: %w", ebpf.ErrMapIncompatible)); !errors.Is(err, ErrIncompatiblePin) {
		t.Errorf("incompatible pin: %v", err)
	}
	if err := loadError(fmt.Errorf("create map: %w", unix.EPERM)); !errors.Is(err, ErrNotRoot) {
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

var spdDefaultsProtect = spd.Defaults{Out: spd.ActionProtect}
