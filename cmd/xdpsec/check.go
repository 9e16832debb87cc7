package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
)

func init() { register(newCheckCmd) }

func newCheckCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check that the card's tables equal the daemon's SAD and SPD (exit 1 if not)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := callDaemon(cmd.Context(), a, (*api.Client).Check)
			if err != nil {
				return err
			}
			if a.JSON() {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else if rep.OK {
				fmt.Fprintf(a.Out, "ok: the card matches %d SAs and %d policies (%d SA and %d policy entries across interfaces)\n",
					rep.SAs, rep.Policies, rep.CardSAs, rep.CardPolicies)
			} else {
				fmt.Fprintf(a.Out, "the card differs from the SAD/SPD (%d problems):\n", len(rep.Problems))
				for _, p := range rep.Problems {
					fmt.Fprintf(a.Out, "  %s\n", p)
				}
			}
			if !rep.OK {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
}
