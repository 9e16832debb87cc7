package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/loader"
)

func init() { register(newDownCmd) }

func newDownCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "down --instance NAME | --config FILE",
		Short: "Detach and unpin the card a stopped gateway left in guard state",
		Long: `Remove what a stopped gateway of the instance left behind: detach both XDP programs and remove
every pin under /sys/fs/bpf/xdpsec/<instance>/. A gateway that stops (SIGTERM, SIGINT, a failing
worker) with on_exit: guard, the default, leaves its card attached in guard state — PROTECT
traffic and ESP of its SAs dropped, BYPASS flowing — for the next 'xdpsec run' to adopt; one killed
with SIGKILL leaves it as it was. 'down' is for when no gateway should come back: afterwards the
interfaces pass everything, unprotected.

It needs nothing but the instance: --instance NAME, or --config FILE, of which it reads only the
instance (no keys are parsed, no interface is looked at). A gateway started with --netns is removed
the same way from the host: its links are pinned on the host's bpffs. It refuses while a gateway of
the instance runs (stop that one, or let it exit with on_exit: detach), and says so when there is
nothing to remove (exit status 0 both times it succeeds).`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			instance, err := a.downInstance()
			if err != nil {
				return err
			}
			return a.down(loader.DefaultPinRoot, instance)
		},
	}
}

// downInstance is the instance down acts on: --instance, else the instance the --config file
// names (read alone: the rest of the file may not even be readable by the caller), else an error.
func (a *App) downInstance() (string, error) {
	if a.Instance != "" {
		return a.Instance, nil
	}
	if a.ConfigPath == "" {
		return "", usageErrorf("which instance? give --instance NAME or --config FILE")
	}
	b, err := os.ReadFile(a.ConfigPath)
	if err != nil {
		return "", fmt.Errorf("read the instance from %s: %w", a.ConfigPath, err)
	}
	var top struct {
		Instance string `yaml:"instance"`
	}
	if err := yaml.Unmarshal(b, &top); err != nil {
		return "", fmt.Errorf("read the instance from %s: %w", a.ConfigPath, err)
	}
	clear(b) // the file may hold keys
	if top.Instance == "" {
		return config.DefaultInstance, nil
	}
	return top.Instance, nil
}

// downReport is down's JSON output.
type downReport struct {
	Instance string     `json:"instance"`
	Removed  bool       `json:"removed"`           // false: nothing was pinned
	PinDir   string     `json:"pin_dir,omitempty"` // the directory removed
	Links    []downLink `json:"links,omitempty"`
	Pins     int        `json:"pins"` // pinned objects removed (links and maps)
}

type downLink struct {
	Side    string `json:"side"`
	ID      uint32 `json:"link_id"`
	Ifindex int    `json:"ifindex"`
}

func (a *App) down(pinRoot, instance string) error {
	r, err := loader.Remove(pinRoot, instance)
	if errors.Is(err, loader.ErrInstanceBusy) {
		return fmt.Errorf("instance %s: a gateway of it is running (it holds the pin directory's lock); stop it "+
			"first — with on_exit: guard it leaves the card for 'down' to remove: %w", instance, err)
	}
	rep := downReport{Instance: instance, Removed: r.Dir != "", PinDir: r.Dir, Pins: r.Pins}
	for _, l := range r.Links {
		rep.Links = append(rep.Links, downLink{Side: l.Side.String(), ID: uint32(l.ID), Ifindex: l.Ifindex})
	}
	if err != nil {
		return fmt.Errorf("remove the card of instance %s: %w", instance, err)
	}
	if a.JSON() {
		return a.printJSON(rep)
	}
	if !rep.Removed {
		fmt.Fprintf(a.Out, "instance %s: nothing to remove (no card pinned under %s)\n", instance, filepath.Join(pinRoot, instance))
		return nil
	}
	for _, l := range rep.Links {
		where := fmt.Sprintf("ifindex %d", l.Ifindex)
		if l.Ifindex == 0 {
			where = "an interface that is gone"
		}
		fmt.Fprintf(a.Out, "detached the %s side (link %d, %s)\n", l.Side, l.ID, where)
	}
	fmt.Fprintf(a.Out, "instance %s: removed %d pins and %s\n", instance, rep.Pins, rep.PinDir)
	return nil
}
