package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/events"
)

func init() { register(newMonitorCmd) }

func newMonitorCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "monitor",
		Short: "Stream events like ip xfrm monitor: acquire, SA added/updated/deleted/expired, offload acks and nacks",
		Long: `Stream the daemon's events until interrupted: ACQUIRE (a packet matched a PROTECT policy
with no usable SA; at most one per policy per second), SA and policy changes, soft and hard expiries,
and offload acks and nacks with their reason. -o json prints one JSON object per line.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.apiClient()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(a.Out)
			err = c.Monitor(cmd.Context(), func(ev events.Event) error {
				if a.JSON() {
					return enc.Encode(ev)
				}
				printEvent(a.Out, &ev)
				return nil
			})
			if errors.Is(err, context.Canceled) {
				return nil // interrupted: the normal way out
			}
			return err
		},
	}
}

// printEvent prints one event on one line, in ip xfrm's words and order: an SA as "src A dst B proto
// esp spi S reqid R", an ACQUIRE with the packet's "src dst proto", then xdpsec's own fields.
func printEvent(w io.Writer, ev *events.Event) {
	fmt.Fprintf(w, "%s %s", ev.Time.Format(time.RFC3339Nano), ev.Type)
	if ev.Src != "" {
		fmt.Fprintf(w, " src %s", ev.Src)
	}
	if ev.Dst != "" {
		fmt.Fprintf(w, " dst %s", ev.Dst)
	}
	switch {
	case ev.SPI != 0:
		fmt.Fprintf(w, " proto esp spi 0x%08x", ev.SPI)
	case ev.Proto != 0:
		fmt.Fprintf(w, " proto %s", ev.Proto)
	}
	if ev.Reqid != 0 {
		fmt.Fprintf(w, " reqid %d", ev.Reqid)
	}
	if ev.SA != "" {
		fmt.Fprintf(w, " sa %s", ev.SA)
	}
	if ev.Index != 0 {
		fmt.Fprintf(w, " index %d", ev.Index)
	}
	if ev.Policy != "" {
		fmt.Fprintf(w, " policy %q", ev.Policy)
	}
	if ev.PolicyID != 0 {
		fmt.Fprintf(w, " policy-id %d", ev.PolicyID)
	}
	if ev.Iface != "" {
		fmt.Fprintf(w, " iface %s", ev.Iface)
	}
	if ev.Reason != "" {
		fmt.Fprintf(w, " reason %s", ev.Reason)
	}
	if ev.Detail != "" {
		fmt.Fprintf(w, " (%s)", ev.Detail)
	}
	fmt.Fprintln(w)
}
