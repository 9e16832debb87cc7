package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xdpsec/xdpsec/control/api"
)

// Shell completion: `xdpsec completion bash|zsh|fish|powershell` prints the script (cobra's
// completion command); the scripts call the hidden `xdpsec __complete ARGS…`, which answers with
// the subcommands and flags cobra knows plus what the functions below add: the values of -o and
// --log-level, YAML files for --config, namespaces for --netns, SA names from --config for pcap's
// --sa, and the names of the running daemon's SAs and policies for sa get/del and sp del.
// Completion never fails loudly: with no daemon it offers nothing.

// completeTimeout bounds the API call of one completion: a shell waits for it.
const completeTimeout = 2 * time.Second

// addCompletion makes the completion command visible and registers the completions of the global
// flags. Call it on the root once the tree is complete (before guardTree).
func addCompletion(a *App, root *cobra.Command) {
	root.CompletionOptions.HiddenDefaultCmd = false
	root.InitDefaultCompletionCmd()
	_ = root.RegisterFlagCompletionFunc("output", fixedCompletions(outputText+"\thuman-readable", outputJSON+"\tmachine-readable"))
	_ = root.RegisterFlagCompletionFunc("log-level", fixedCompletions("debug", "info", "warn", "error"))
	_ = root.MarkPersistentFlagFilename("config", "yaml", "yml")
	_ = root.RegisterFlagCompletionFunc("socket", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"sock"}, cobra.ShellCompDirectiveFilterFileExt
	})
}

// fixedCompletions offers the choices that start with what was typed.
func fixedCompletions(choices ...cobra.Completion) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return withPrefix(choices, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// withPrefix keeps the candidates that start with prefix.
func withPrefix(cands []cobra.Completion, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// completeNetns offers the named network namespaces (ip netns list).
func completeNetns(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ents, _ := os.ReadDir("/run/netns")
	var all []cobra.Completion
	for _, e := range ents {
		all = append(all, e.Name())
	}
	return withPrefix(all, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeConfigSAs offers the names of the SAs in --config's file (pcap --sa).
func (a *App) completeConfigSAs(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if a.ConfigPath == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.LoadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Wipe()
	var all []cobra.Completion
	for _, s := range c.SAs {
		all = append(all, cobra.CompletionWithDesc(s.Name, fmt.Sprintf("spi %s %s → %s", s.SPI, s.Src, s.Dst)))
	}
	return withPrefix(all, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeRef completes the first argument of a command that names an entry (`NAME | name NAME | …`):
// the names list gives, or after the keyword "name".
func completeRef(names func(context.Context) []cobra.Completion) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 1 || (len(args) == 1 && args[0] != "name") {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
		defer cancel()
		return withPrefix(names(ctx), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// daemonSANames are the running daemon's named SAs, each with its SPI and direction; none when no
// daemon answers.
func (a *App) daemonSANames(ctx context.Context) []cobra.Completion {
	l, err := callDaemon(ctx, a, func(c *api.Client, ctx context.Context) ([]api.SAView, error) {
		return c.ListSAs(ctx, false)
	})
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, v := range l {
		if v.Name != "" {
			out = append(out, cobra.CompletionWithDesc(v.Name, fmt.Sprintf("spi 0x%08x %s → %s", v.SPI, v.Src, v.Dst)))
		}
	}
	return out
}

// daemonPolicyNames are the running daemon's named policies, each with its direction and action.
func (a *App) daemonPolicyNames(ctx context.Context) []cobra.Completion {
	l, err := callDaemon(ctx, a, (*api.Client).ListPolicies)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, v := range l {
		if v.Name != "" {
			out = append(out, cobra.CompletionWithDesc(v.Name, fmt.Sprintf("dir %s action %s", v.Dir, v.Action)))
		}
	}
	return out
}
