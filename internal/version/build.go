// Package version says what a binary is and what the kernel under it offers: the module version and
// VCS revision it was built from, the Go toolchain, the hash of the embedded card object, and which of
// the kernel features the card and the workers use this machine has (probed, never guessed from the
// kernel's version number). `xdpsec version` prints it.
package version

import (
	"runtime"
	"runtime/debug"

	"github.com/xdpsec/xdpsec/bpf"
)

// Build describes the running binary.
type Build struct {
	Module string `json:"module"`
	// Version is the main module's version as the go command stamped it: a tag, a pseudo-version
	// (v0.0.0-DATE-COMMIT, +dirty when built from a modified tree), or "(devel)".
	Version string `json:"version"`
	// Commit, CommitTime and Dirty come from the VCS stamp (go build -buildvcs); empty when the
	// binary was built without one (outside a git checkout, -buildvcs=false, a git worktree).
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Dirty      bool   `json:"dirty,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	// BPFObjectSHA256 is the SHA-256 of the embedded card object (bpf/card_bpfel.o).
	BPFObjectSHA256 string `json:"bpf_object_sha256"`
}

// ReadBuild describes the running binary.
func ReadBuild() Build {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi)
}

// fromBuildInfo reads what the go command stamped into bi (nil when the binary has none).
func fromBuildInfo(bi *debug.BuildInfo) Build {
	b := Build{Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, BPFObjectSHA256: bpf.ObjectSHA256()}
	if bi == nil {
		return b
	}
	b.Module, b.Version = bi.Main.Path, bi.Main.Version
	if bi.GoVersion != "" {
		b.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}
