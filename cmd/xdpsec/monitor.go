package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/events"
)

func init() { register(newMonitorCmd) }

// monitorKinds are ip xfrm monitor's objects, as groups of event types.
var monitorKinds = map[string][]events.Type{
	"acquire": {events.Acquire},
	"expire":  {events.SASoftExpire, events.SAHardExpire},
	"sa":      {events.SAAdded, events.SAUpdated, events.SADeleted},
	"policy":  {events.PolicyAdded, events.PolicyUpdate, events.PolicyDel},
	"offload": {events.OffloadAck, events.OffloadNack},
}

// kindTypes turns --kind's words (kinds, or event types themselves) into event types.
func kindTypes(kinds []string) ([]events.Type, error) {
	var out []events.Type
	for _, k := range kinds {
		for _, w := range strings.Split(k, ",") {
			if ts, ok := monitorKinds[w]; ok {
				out = append(out, ts...)
				continue
			}
			known := false
			for _, ts := range monitorKinds {
				known = known || slices.Contains(ts, events.Type(w))
			}
			if !known {
				return nil, fmt.Errorf("--kind %q: want acquire, expire, sa, policy, offload or an event type", w)
			}
			out = append(out, events.Type(w))
		}
	}
	return out, nil
}

func newMonitorCmd(a *App) *cobra.Command {
	var kinds []string
	var owner string
	var reconnect bool
	cmd := &cobra.Command{
		Use:   "monitor [--kind acquire,expire,sa,policy,offload] [--owner config|cli|ike] [--reconnect]",
		Short: "Stream events like ip xfrm monitor: acquire, SA added/updated/deleted/expired, offload acks and nacks",
		Long: `Stream the daemon's events from now on until interrupted: ACQUIRE (a packet matched a PROTECT
policy with no usable SA; at most one per policy per second), SA and policy changes, soft and hard
expiries, and offload acks and nacks with their reason. --kind selects some, like ip xfrm monitor's
objects (acquire, expire, sa, policy, offload; or event types such as sa-soft-expired); --owner the
events about one owner's SAs and policies. -o json prints one JSON object per line, with its sequence
number.

With --reconnect the monitor follows the daemon across restarts and lost connections: it resumes after
the last event it printed (none is lost or printed twice while the daemon keeps it), and says on
standard error when events were lost or the daemon restarted.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			types, err := kindTypes(kinds)
			if err != nil {
				return &usageError{err: err}
			}
			f, err := ownerFlag(owner)
			if err != nil {
				return err
			}
			c, err := a.apiClient()
			if err != nil {
				return err
			}
			m := &monitor{a: a, c: c, q: api.EventQuery{Owner: f, Types: types}}
			err = m.run(cmd.Context(), reconnect)
			if errors.Is(err, context.Canceled) {
				return nil // interrupted: the normal way out
			}
			return err
		},
	}
	cmd.Flags().StringSliceVar(&kinds, "kind", nil, "only these kinds: acquire, expire, sa, policy, offload (or event types)")
	_ = cmd.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions([]string{"acquire", "expire", "sa", "policy", "offload"}, cobra.ShellCompDirectiveNoFileComp))
	addOwnerFlag(cmd, &owner)
	cmd.Flags().BoolVarP(&reconnect, "reconnect", "r", false, "follow the daemon across restarts, resuming without losing events")
	return cmd
}

type monitor struct {
	a *App
	c *api.Client
	q api.EventQuery
}

// run follows the stream from the daemon's current position; with reconnect, again and again.
func (m *monitor) run(ctx context.Context, reconnect bool) error {
	enc := json.NewEncoder(m.a.Out)
	started := false
	for {
		if !started {
			// ip xfrm monitor shows what happens from now on: start at the daemon's position.
			info, err := m.c.Info(ctx)
			if err == nil {
				m.q.Since, m.q.Epoch, started = info.Seq, info.Epoch, true
			} else if !reconnect {
				return err
			}
		}
		var err error
		if started {
			err = m.c.Events(ctx, m.q, func(it api.StreamItem) error {
				if it.Line != nil {
					m.note(it.Line)
					return nil
				}
				m.q.Since = it.Event.Seq
				if m.a.JSON() {
					return enc.Encode(it.Event)
				}
				printEvent(m.a.Out, &it.Event)
				return nil
			})
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !reconnect {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// note reports what the stream says about itself: a daemon that restarted (its events before are
// gone), events lost to the backlog.
func (m *monitor) note(l *api.StreamLine) {
	switch l.Type {
	case api.StreamStart:
		if m.q.Epoch != "" && l.Epoch != m.q.Epoch {
			fmt.Fprintf(m.a.Err, "monitor: the daemon restarted (epoch %s, was %s): its earlier state is gone\n", l.Epoch, m.q.Epoch)
		}
		m.q.Epoch = l.Epoch
	case api.Resync:
		fmt.Fprintf(m.a.Err, "monitor: events were lost (%s): the daemon's backlog moved past this monitor\n", l.Reason)
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
	if ev.Sport != 0 || ev.Dport != 0 {
		fmt.Fprintf(w, " sport %d dport %d", ev.Sport, ev.Dport)
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
	if ev.Owner != "" {
		fmt.Fprintf(w, " owner %s", ev.Owner)
	}
	fmt.Fprintln(w)
}
