package main

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
)

func init() { register(newStatsCmd) }

func newStatsCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the global counters: the card's and workers' drop and error reasons (like /proc/net/xfrm_stat)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := callDaemon(cmd.Context(), a, (*api.Client).Stats)
			if err != nil {
				return err
			}
			if a.JSON() {
				return a.printJSON(st)
			}
			w := a.Out
			width := 24
			for k := range st.Card {
				width = max(width, len(k))
			}
			for _, k := range slices.Sorted(maps.Keys(st.Card)) {
				fmt.Fprintf(w, "%-*s %d\n", width, k, st.Card[k])
			}
			fmt.Fprintf(w, "\nsas %d (", st.SAs)
			for i, k := range slices.Sorted(maps.Keys(st.SAStates)) {
				if i > 0 {
					fmt.Fprint(w, ", ")
				}
				fmt.Fprintf(w, "%s %d", k, st.SAStates[k])
			}
			fmt.Fprintf(w, ")  policies %d", st.Policies)
			if c := st.Capacity; c.SAs > 0 || c.Policies > 0 {
				fmt.Fprintf(w, "  card capacity: sas %d policies %d", c.SAs, c.Policies)
			}
			fmt.Fprintln(w)
			fmt.Fprint(w, "offload")
			for _, k := range slices.Sorted(maps.Keys(st.Offload)) {
				fmt.Fprintf(w, " %s %d", k, st.Offload[k])
			}
			e := st.Engine
			fmt.Fprintf(w, "\nengine passes %d sa-installs %d sa-removals %d sa-nacks %d policy-installs %d policy-removals %d policy-nacks %d driver-errors %d\n",
				e.Passes, e.SAInstalls, e.SARemovals, e.SANacks, e.PolicyInstalls, e.PolicyRemovals, e.PolicyNacks, e.DriverErrors)
			fmt.Fprintf(w, "events published %d dropped %d\n", st.Events.Published, st.Events.Dropped)
			return nil
		},
	}
}
