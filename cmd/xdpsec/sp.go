package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/xfrmargs"
)

func init() { register(newSPCmd) }

func newSPCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sp",
		Short: "Manage the daemon's Security Policies (like ip xfrm policy)",
		Long: `Add, delete, list and flush the policies (SPD) of a running daemon, through its API socket.
The arguments follow ip xfrm policy; see docs/control.md.`,
	}
	var owner string
	add := &cobra.Command{
		Use:   "add SELECTOR dir in|out|fwd [priority N] [action allow|block|protect|bypass|discard] [tmpl … reqid N | sa NAME] [name NAME]",
		Short: "Add a policy (ip xfrm policy add grammar)",
		Example: `  xdpsec sp add src 198.18.1.0/24 dst 198.18.2.0/24 dir out priority 100 \
      tmpl src 198.18.0.1 dst 198.19.0.1 proto esp reqid 1 mode tunnel
  xdpsec sp add src 0.0.0.0/0 dst 0.0.0.0/0 proto udp dport 500 dir in priority 10 action bypass`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.spChange(cmd.Context(), "sp add", args, false)
		},
	}
	update := &cobra.Command{
		Use:   "update SELECTOR dir in|out … (same arguments as add)",
		Short: "Replace a policy found by name or by direction and selector (ip xfrm policy update)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.spChange(cmd.Context(), "sp update", args, true)
		},
	}
	del := &cobra.Command{
		Use:               "del NAME | name NAME | dir in|out SELECTOR",
		Aliases:           []string{"delete"},
		Short:             "Delete a policy",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeRef(a.daemonPolicyNames),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := xfrmargs.ParsePolicyRef("sp del", args)
			if err != nil {
				return &usageError{err: err}
			}
			v, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) (api.PolicyView, error) {
				return c.DeletePolicy(ctx, ref)
			})
			if err != nil {
				return fmt.Errorf("sp del: %w", err)
			}
			return a.reply(v, nil)
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"show", "ls"},
		Short:   "List the policies in SPD order, with their offload state",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ownerFlag(owner)
			if err != nil {
				return err
			}
			l, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) ([]api.PolicyView, error) {
				return c.ListPoliciesOf(ctx, f)
			})
			if err != nil {
				return err
			}
			return replyList(a, l, func(v *api.PolicyView) { printPolicy(a.Out, v) })
		},
	}
	addOwnerFlag(list, &owner)
	flush := newFlushCmd(a, "policy", "policies", (*api.Client).FlushPoliciesOf)
	cmd.AddCommand(add, update, del, list, flush)
	return cmd
}

func (a *App) spChange(ctx context.Context, what string, args []string, update bool) error {
	p, err := xfrmargs.ParsePolicy(what, args)
	if err != nil {
		return &usageError{err: err}
	}
	v, err := callDaemon(ctx, a, func(c *api.Client, ctx context.Context) (api.PolicyView, error) {
		if update {
			return c.UpdatePolicy(ctx, p)
		}
		return c.AddPolicy(ctx, p)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return a.reply(v, nil)
}

// printPolicy prints a policy the way ip xfrm policy does, plus name, id and offload state.
func printPolicy(w io.Writer, v *api.PolicyView) {
	fmt.Fprintf(w, "%s\n", v.Sel)
	name := v.Name
	if name == "" {
		name = "-"
	}
	fmt.Fprintf(w, "\tdir %s priority %d action %s name %s owner %s id %d\n", v.Dir, v.Priority, v.Action, name, v.Owner, v.ID)
	if t := v.Tmpl; t != nil {
		fmt.Fprintf(w, "\ttmpl")
		if t.Src.IsValid() {
			fmt.Fprintf(w, " src %s", t.Src)
		}
		if t.Dst.IsValid() {
			fmt.Fprintf(w, " dst %s", t.Dst)
		}
		fmt.Fprintf(w, " proto esp")
		if t.SPI != 0 {
			fmt.Fprintf(w, " spi 0x%08x", t.SPI)
		}
		if t.Reqid != 0 {
			fmt.Fprintf(w, " reqid %d", t.Reqid)
		}
		if t.Mode != 0 {
			fmt.Fprintf(w, " mode %s", t.Mode)
		}
		if t.SA != "" {
			fmt.Fprintf(w, " sa %s", t.SA)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\toffload %s\n", offloadText(v.OffloadState, v.Offload))
}
