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
added, changed or removed, by name. Unchanged SAs keep their sequence numbers and replay windows;
changed keys or SPIs replace the SA (the new one is offloaded before the old one leaves).`,
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
