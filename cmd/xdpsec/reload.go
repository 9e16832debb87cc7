package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
)

func init() { register(newReloadCmd) }

func newReloadCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Make the daemon re-read its configuration and apply only the differences (like SIGHUP)",
		Long: `Make the daemon re-read its configuration file and apply only what changed: SAs and policies
added, changed or removed, by name. An SA whose SPI, destination or key changed is replaced (the new
one is offloaded before the old one leaves; it must come with a new key); any other change (src, mode,
reqid, esn, replay_window, encap, ttl, df, tfc_pad, lifetime, offload) updates the running SA in place,
and it keeps its sequence numbers, IV mask and replay window. A change the running SA cannot take, a
replacement under the same key and a key retired after a hard expiry are refused, each with the reason.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := callDaemon(cmd.Context(), a, (*api.Client).Reload)
			if err != nil {
				return err // the daemon's message starts with "reload:"
			}
			if a.JSON() {
				return a.printJSON(res)
			}
			line := func(what string, names []string) {
				if len(names) > 0 {
					fmt.Fprintf(a.Out, "%s: %s\n", what, strings.Join(names, ", "))
				}
			}
			line("sas added", res.SAsAdded)
			line("sas updated", res.SAsUpdated)
			line("sas replaced", res.SAsReplaced)
			line("sas deleted", res.SAsDeleted)
			line("policies added", res.PoliciesAdded)
			line("policies updated", res.PoliciesUpdated)
			line("policies deleted", res.PoliciesDeleted)
			line("needs a restart (not applied)", res.Restart)
			fmt.Fprintf(a.Out, "sas unchanged: %d\n", res.SAsUnchanged)
			return nil
		},
	}
}
