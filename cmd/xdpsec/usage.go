package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// A mistyped command must fail, not print help and exit 0 (cobra's way for a command without Run):
// a script that typed `xdpsec sa deleteall` must see that nothing was deleted. Every command with
// subcommands refuses an unknown one with exit status 2 and cobra's suggestions; leaves validate
// their positional arguments; an unknown flag gets a suggestion too.

// walk calls fn for cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// guardTree makes every command with subcommands (the root, sa, sp, pcap, completion, …) take no
// positional arguments of its own: an unknown subcommand exits 2 with suggestions, and the command
// alone prints its help (exit 0). The help command refuses unknown topics the same way. Call it once
// the tree is complete.
func guardTree(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	walk(root, func(c *cobra.Command) {
		if !c.HasSubCommands() {
			return
		}
		c.SuggestionsMinimumDistance = 2
		c.Args = subcommandArgs
		if !c.Runnable() {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	})
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Args = helpTopicArgs
		}
	}
}

// subcommandArgs is the Args of a command with subcommands: any argument left is an unknown one.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(cmd, args[0])
}

// helpTopicArgs is the help command's Args: `help sa lsit` fails like `sa lsit`.
func helpTopicArgs(cmd *cobra.Command, args []string) error {
	c, rest, err := cmd.Root().Find(args)
	if err != nil {
		return &usageError{err: err}
	}
	if len(rest) > 0 {
		return unknownCommand(c, rest[0])
	}
	return nil
}

// noArgs is the Args of a leaf that takes no positional arguments.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + quoteAlternatives(s, "") + "?"
	}
	return &usageError{errors.New(msg), cmd}
}

// flagError is the tree's FlagErrorFunc: every flag error is a usage error, and an unknown long flag
// gets the names of the command's flags closest to it.
func flagError(cmd *cobra.Command, err error) error {
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		var near []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && (strings.HasPrefix(f.Name, name) || levenshtein(name, f.Name) <= 2) {
				near = append(near, f.Name)
			}
		})
		if len(near) > 0 {
			err = fmt.Errorf("%w; did you mean %s?", err, quoteAlternatives(near, "--"))
		}
	}
	return &usageError{err: err}
}

// quoteAlternatives joins names as `"a", "b" or "c"`, each with prefix.
func quoteAlternatives(names []string, prefix string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", prefix+n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// levenshtein is the edit distance between a and b, ignoring case (cobra's measure for commands,
// which it does not export).
func levenshtein(a, b string) int {
	s, t := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(t)]
}
