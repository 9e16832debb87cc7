package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/config"
)

// Exit codes of the binary.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (or, for pcap, a packet failed)
	exitUsage   = 2 // bad flags or arguments
)

// App is what every subcommand shares: the global flags, the output streams
// and the logger. Subcommands receive it when the tree is built, and read the
// flag values when they run (after cobra parsed them).
type App struct {
	// Global flags.
	ConfigPath string // --config
	Instance   string // --instance (overrides the config's instance)
	Socket     string // --socket (overrides the API socket path)
	Output     string // -o, --output: text or json
	LogLevel   string // --log-level
	Version    bool   // --version (the root's own flag)

	In       io.Reader
	Out, Err io.Writer
	Log      *slog.Logger
}

// commands holds the constructors of the top-level subcommands, in
// registration order. A subcommand file does
//
//	func init() { register(newFooCmd) }
//
// and builds its *cobra.Command from the App, reading a.Out, a.Log, … inside
// RunE. Constructors must be cheap: no BPF, no sockets, no file access — they
// run for every invocation, including --help. cmd.Context() is cancelled on
// SIGINT and SIGTERM; a RunE that returns usageErrorf(…) exits with status 2,
// one that returns &exitError{code} exits with that code and prints nothing
// more, any other error prints "xdpsec: <error>" and exits with status 1.
var commands []func(*App) *cobra.Command

func register(newCmd func(*App) *cobra.Command) { commands = append(commands, newCmd) }

// Output formats for -o.
const (
	outputText = "text"
	outputJSON = "json"
)

// JSON reports whether the user asked for machine-readable output.
func (a *App) JSON() bool { return a.Output == outputJSON }

// LoadConfig reads and validates the file named by --config. --instance, when
// given, overrides the file's instance. The offline tools use it; the daemon
// uses LoadPrivateConfig.
func (a *App) LoadConfig() (*config.Config, error) { return a.loadConfig(config.Load) }

// LoadPrivateConfig is LoadConfig with config.LoadChecked's checks of who can
// read and change the file (xdpsec run).
func (a *App) LoadPrivateConfig() (*config.Config, error) { return a.loadConfig(config.LoadChecked) }

func (a *App) loadConfig(load func(string) (*config.Config, error)) (*config.Config, error) {
	if a.ConfigPath == "" {
		return nil, usageErrorf("no configuration file: give --config FILE")
	}
	c, err := load(a.ConfigPath)
	if err != nil {
		return nil, err
	}
	if a.Instance != "" && a.Instance != c.Instance {
		if err := c.SetInstance(a.Instance); err != nil {
			c.Wipe()
			return nil, fmt.Errorf("--instance %q: %w", a.Instance, err)
		}
	}
	return c, nil
}

// usageError marks errors in how the binary was called (exit code 2). cmd, when set, is the command
// whose --help the message points to (else the one the arguments name).
type usageError struct {
	err error
	cmd *cobra.Command
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitError carries an exit code for a failure that was already reported
// (e.g. a pcap summary with failed packets): run prints nothing more.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRoot(a *App) *cobra.Command {
	// All persistent pre-run hooks run, not only the nearest one, so a
	// subcommand's own hook cannot skip the global setup.
	cobra.EnableTraverseRunHooks = true
	root := &cobra.Command{
		Use:   "xdpsec",
		Short: "Inline IPsec (ESP) offload dataplane: XDP classifies, Go workers encrypt over AF_XDP",
		Long: `xdpsec is an inline IPsec (ESP) offload dataplane for Linux. An XDP program plays the
part of an IPsec-offload NIC: it classifies every packet against the offloaded SPD and SAD and
hands packets to be protected or decrypted over AF_XDP to Go crypto workers. The control plane
keeps the authoritative SPD and SAD and offloads entries to the card, per interface.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.Version {
				return a.printVersion()
			}
			return cmd.Help()
		},
	}
	root.SetIn(a.In)
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	root.SetFlagErrorFunc(flagError)

	f := root.PersistentFlags()
	f.StringVarP(&a.ConfigPath, "config", "c", "", "configuration `file` (YAML; see docs/config.md)")
	f.StringVar(&a.Instance, "instance", "", "instance `name` (scopes pins and the API socket; default: the config's; "+
		"for a client command, the one daemon running, else \""+config.DefaultInstance+"\")")
	f.StringVar(&a.Socket, "socket", "", "daemon API socket `path` (default "+config.DefaultRunDir+"/<instance>.sock, $"+config.RunDirEnv+" moves the directory)")
	f.StringVarP(&a.Output, "output", "o", outputText, "output `format`: text or json")
	f.StringVar(&a.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	root.Flags().BoolVar(&a.Version, "version", false, "print the version, build and kernel features (as the version command)")

	for _, newCmd := range commands {
		root.AddCommand(newCmd(a))
	}
	addCompletion(a, root)
	guardTree(root)
	return root
}

// setup checks the global flags and installs the logger.
func (a *App) setup() error {
	switch a.Output {
	case outputText, outputJSON:
	default:
		return usageErrorf("-o %q: want text or json", a.Output)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.LogLevel)); err != nil {
		return usageErrorf("--log-level %q: want debug, info, warn or error", a.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(a.Err, opts)
	if a.JSON() {
		h = slog.NewJSONHandler(a.Err, opts)
	}
	a.Log = slog.New(h)
	slog.SetDefault(a.Log)
	return nil
}

// run executes the command line args and returns the process's exit code.
func run(args []string, in io.Reader, out, errOut io.Writer) int {
	a := &App{In: in, Out: out, Err: errOut, Log: slog.New(slog.NewTextHandler(errOut, nil))}
	root := newRoot(a)
	root.SetArgs(args)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(errOut, "xdpsec: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		cmd, _, ferr := root.Find(args)
		if ue != nil && ue.cmd != nil {
			cmd = ue.cmd
		} else if ferr != nil || cmd == nil {
			cmd = root
		}
		fmt.Fprintf(errOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError recognises the argument errors cobra returns as plain
// errors (unknown command, wrong number of arguments) by how they begin: the
// same words inside another error (a verifier log) do not make it a usage error.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.HasPrefix(msg, s) {
			return true
		}
	}
	return false
}
