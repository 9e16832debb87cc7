package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/xdpsec/xdpsec/internal/version"
)

func init() { register(newGenManCmd) }

// newGenManCmd is `xdpsec gen-man DIR` (hidden; `make man` runs it): one man page per command of the
// tree, in section 1, named like git's (xdpsec-sa-add.1). The date is SOURCE_DATE_EPOCH's when set,
// so that a build from the same commit writes the same pages.
func newGenManCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of every command into DIR (make man)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // no "generated on DATE" line: the pages are reproducible
			escapeForMarkdown(root)
			header := &doc.GenManHeader{Title: "XDPSEC", Section: "1", Manual: "xdpsec manual",
				Source: "xdpsec " + version.ReadBuild().Version}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("gen-man: %w", err)
			}
			return nil
		},
	}
}

// markdownEscaper escapes what cobra's man pages would otherwise read as markdown: the descriptions
// go through a markdown renderer, which drops "<instance>" as an HTML tag and turns "xs-demo-*" or
// snake_case into emphasis.
var markdownEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, `<`, `\<`, `>`, `\>`, `[`, `\[`, `]`, `\]`)

// escapeMarkdown escapes text outside its code blocks (lines indented by a tab or four spaces, as
// in cobra's completion help), where a backslash would show.
func escapeMarkdown(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "    ") {
			lines[i] = markdownEscaper.Replace(l)
		}
	}
	return strings.Join(lines, "\n")
}

// escapeForMarkdown escapes the descriptions and flag usages of every command below root, in place
// (gen-man is the process's only command).
func escapeForMarkdown(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	walk(root, func(c *cobra.Command) {
		c.Short, c.Long = escapeMarkdown(c.Short), escapeMarkdown(c.Long)
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if !seen[f] {
					seen[f] = true
					f.Usage = escapeMarkdown(f.Usage)
				}
			})
		}
	})
}
