package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/internal/version"
)

func init() { register(newVersionCmd) }

func newVersionCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version, BPF object hash and the kernel features found (also --version)",
		Long: `Print what this binary is — the module version and VCS commit it was built from (go build
stamps them; "unknown" when it did not), the Go toolchain, the SHA-256 of the embedded card
object — and which kernel features the card and the workers use this machine offers. Each
feature is probed (a tiny program loaded, a map created, a bpf_link and AF_XDP bind tried on the
loopback of a network namespace made for the probe): yes, no, or unknown with the reason. Without
root most probes answer unknown. xdpsec --version prints the same.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return a.printVersion() },
	}
}

// versionReport is what version prints; its JSON form is stable for scripts.
type versionReport struct {
	version.Build
	Kernel version.Kernel `json:"kernel"`
}

func (a *App) printVersion() error {
	r := versionReport{Build: version.ReadBuild(), Kernel: version.ProbeKernel()}
	if a.JSON() {
		return a.printJSON(r)
	}
	b := r.Build
	tw := tabwriter.NewWriter(a.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "xdpsec %s\n", b.Version)
	fmt.Fprintf(tw, "  module\t%s\n", b.Module)
	commit := "unknown (this build has no VCS stamp)"
	if b.Commit != "" {
		commit = b.Commit
		if b.Dirty {
			commit += " (modified)"
		}
		if b.CommitTime != "" {
			commit += " " + b.CommitTime
		}
	}
	fmt.Fprintf(tw, "  commit\t%s\n", commit)
	fmt.Fprintf(tw, "  go\t%s %s\n", b.Go, b.Platform)
	fmt.Fprintf(tw, "  bpf object\tsha256:%s\n", b.BPFObjectSHA256)
	fmt.Fprintf(tw, "kernel %s\n", r.Kernel.Release)
	for _, f := range r.Kernel.Features {
		detail := f.Description
		if f.Detail != "" {
			detail += ": " + f.Detail
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, f.Status, detail)
	}
	return tw.Flush()
}
