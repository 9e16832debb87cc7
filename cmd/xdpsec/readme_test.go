package main

import (
	"os"
	"regexp"
	"testing"
)

// readmeBlock returns the first fenced block of kind (sh, yaml) that follows the README's line
// holding after, so that the README and the tests that run it cannot drift.
func readmeBlock(t *testing.T, after, kind string) string {
	t.Helper()
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)" + regexp.QuoteMeta(after) + ".*?```" + kind + "\n(.*?)```")
	m := re.FindSubmatch(md)
	if m == nil {
		t.Fatalf("README.md has no ```%s block after %q", kind, after)
	}
	return string(m[1])
}

// readmeConfig is the README's minimal configuration.
func readmeConfig(t *testing.T) string { return readmeBlock(t, "A minimal configuration", "yaml") }
