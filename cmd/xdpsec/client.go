package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/sadb"
)

// apiClient connects to the daemon that daemonSocket names.
func (a *App) apiClient() (*api.Client, error) {
	path, err := a.daemonSocket()
	if err != nil {
		return nil, err
	}
	return api.NewClient(path), nil
}

// daemonSocket is the API socket of the daemon to talk to: --socket; else that of -c FILE (its
// instance and daemon.socket, and nothing else of it: config.ReadEndpoint), --instance moving a
// defaulted one; else --instance's default socket; else that of the one daemon running (a live
// socket in config.RunDir). With none running it is the default instance's socket, whose
// connection error says that no daemon runs; with several, it is an error that lists them.
func (a *App) daemonSocket() (string, error) {
	switch {
	case a.Socket != "":
		return a.Socket, nil
	case a.ConfigPath != "":
		ep, err := config.ReadEndpoint(a.ConfigPath)
		if err != nil {
			return "", err
		}
		if a.Instance != "" && !ep.SocketSet {
			return config.DefaultSocket(a.Instance), nil
		}
		return ep.Socket, nil
	case a.Instance != "":
		return config.DefaultSocket(a.Instance), nil
	}
	live := runningDaemons(config.RunDir())
	switch len(live) {
	case 0:
		return config.DefaultSocket(config.DefaultInstance), nil
	case 1:
		return live[0].socket, nil
	}
	names := make([]string, len(live))
	for i, d := range live {
		names[i] = fmt.Sprintf("%s (%s)", d.instance, d.socket)
	}
	return "", usageErrorf("%d daemons are running: %s; say which with --instance NAME (or -c FILE, or --socket PATH)",
		len(live), strings.Join(names, ", "))
}

// runningDaemon is a daemon found by its socket.
type runningDaemon struct{ instance, socket string }

// runningDaemons lists the daemons whose default sockets are in dir (<instance>.sock), by
// instance: a socket file counts when something accepts connections on it (or when this user may
// not connect: the daemon's socket is root's), not when it is a stale file left by a daemon that
// was killed. A daemon whose daemon.socket lies elsewhere is not found here.
func runningDaemons(dir string) []runningDaemon {
	paths, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	var live []runningDaemon
	for _, p := range paths {
		if st, err := os.Lstat(p); err != nil || st.Mode().Type() != fs.ModeSocket {
			continue
		}
		conn, err := net.DialTimeout("unix", p, time.Second)
		switch {
		case err == nil:
			conn.Close()
		case !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM):
			continue // ECONNREFUSED: no one listens
		}
		live = append(live, runningDaemon{instance: strings.TrimSuffix(filepath.Base(p), ".sock"), socket: p})
	}
	return live
}

// callTimeout bounds one API call of the CLI.
const callTimeout = 30 * time.Second

// callDaemon makes one API call to the daemon, bounded by callTimeout. call takes the client first so
// that a method expression such as (*api.Client).Stats serves as it is.
func callDaemon[T any](ctx context.Context, a *App, call func(*api.Client, context.Context) (T, error)) (T, error) {
	c, err := a.apiClient()
	if err != nil {
		var zero T
		return zero, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return call(c, ctx)
}

func (a *App) printJSON(v any) error {
	enc := json.NewEncoder(a.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reply prints the daemon's answer: v as JSON under -o json, else what text prints (nothing when nil).
func (a *App) reply(v any, text func()) error {
	if a.JSON() {
		return a.printJSON(v)
	}
	if text != nil {
		text()
	}
	return nil
}

// replyList is reply for a list: an empty list is [] in JSON, never null.
func replyList[T any](a *App, l []T, print func(*T)) error {
	if l == nil {
		l = []T{}
	}
	return a.reply(l, func() {
		for i := range l {
			print(&l[i])
		}
	})
}

// newFlushCmd is the flush subcommand of sa and sp: delete every entry (one, many: "SA", "SAs"), then
// say how many.
func newFlushCmd[T any](a *App, one, many string, flush func(*api.Client, context.Context, sadb.OwnerFilter) ([]T, error)) *cobra.Command {
	var owner string
	cmd := &cobra.Command{
		Use:        "flush [--owner config|cli|ike]",
		Short:      "Delete every " + one + " (of one owner)",
		SuggestFor: []string{"deleteall", "delete-all"}, // ip xfrm state/policy deleteall
		Args:       noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ownerFlag(owner)
			if err != nil {
				return err
			}
			l, err := callDaemon(cmd.Context(), a, func(c *api.Client, ctx context.Context) ([]T, error) {
				return flush(c, ctx, f)
			})
			if err != nil {
				return err
			}
			return a.reply(map[string]int{"deleted": len(l)}, func() {
				fmt.Fprintf(a.Out, "deleted %d %s\n", len(l), many)
			})
		},
	}
	addOwnerFlag(cmd, &owner)
	return cmd
}

// addOwnerFlag adds --owner: only the entries of config (the file), cli (added by hand) or ike (an
// IKE daemon such as strongSwan's charon).
func addOwnerFlag(cmd *cobra.Command, owner *string) {
	cmd.Flags().StringVar(owner, "owner", "", "only the entries of this owner: config, cli or ike")
	_ = cmd.RegisterFlagCompletionFunc("owner", cobra.FixedCompletions([]string{"config", "cli", "ike"}, cobra.ShellCompDirectiveNoFileComp))
}

func ownerFlag(s string) (sadb.OwnerFilter, error) {
	f, err := sadb.ParseOwnerFilter(s)
	if err != nil {
		return f, &usageError{err: fmt.Errorf("--owner %q: want config, cli or ike", s)}
	}
	return f, nil
}
