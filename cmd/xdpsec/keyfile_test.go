package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cliIn is cli with standard input.
func (d *cliDaemon) cliIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"--socket", d.socket}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// keyOf reads an SA's key back from the daemon.
func (d *cliDaemon) keyOf(t *testing.T, name string) string {
	t.Helper()
	out := d.ok(t, "sa", "get", name, "--show-keys")
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "0x") && len(f) > 18 {
			return f
		}
	}
	t.Fatalf("no key in:\n%s", out)
	return ""
}

// sa add takes its keys from a file or standard input, so they never appear on a command line.
func TestSAKeyFile(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# gw1 → gw2\n\n  "+testKey+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	add := func(spi, name string) []string {
		return strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi " + spi + " mode tunnel " +
			"aead rfc4106(gcm(aes)) - 128 name " + name)
	}
	d.ok(t, append(add("0x5005", "from-file"), "--key-file", file)...)
	if got := d.keyOf(t, "from-file"); got != testKey {
		t.Errorf("key from the file: %s, want %s", got, testKey)
	}
	// Standard input, and two keys in the grammar's order (enc, then auth).
	enc, auth := "0x00112233445566778899aabbccddeeff", "0x"+strings.Repeat("5a", 32)
	args := append(strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x6006 mode tunnel "+
		"enc cbc(aes) - auth-trunc hmac(sha256) - 128 name from-stdin"), "--key-file", "-")
	if code, out, errOut := d.cliIn(t, enc+"\n"+auth+"\n", args...); code != 0 {
		t.Fatalf("keys on stdin: exit %d: %s %s", code, out, errOut)
	}
	out := d.ok(t, "sa", "get", "from-stdin", "--show-keys")
	if !strings.Contains(out, enc) || !strings.Contains(out, auth) || strings.Index(out, enc) > strings.Index(out, auth) {
		t.Errorf("keys from stdin not where the arguments put them:\n%s", out)
	}
	// A key file others can read is refused, naming the fix.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	d.fails(t, exitFailure, "mode 0644 lets others read them: run chmod 600 "+file,
		append(add("0x7007", "open-file"), "--key-file", file)...)
	// A key on the command line together with the file is refused; so is - without a file.
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	mixed := strings.Fields("sa add src 198.18.0.1 dst 198.19.0.1 proto esp spi 0x8008 enc cbc(aes) " + enc +
		" auth-trunc hmac(sha256) - 128")
	d.fails(t, exitUsage, "KEY must be - with --key-file", append(mixed, "--key-file", file)...)
	d.fails(t, exitUsage, "KEY - takes the next key from --key-file", add("0x9009", "no-file")...)
	// The help says why the file is better.
	if out := d.ok(t, "sa", "add", "--help"); !strings.Contains(out, "/proc/PID/cmdline") || !strings.Contains(out, "--key-file") {
		t.Errorf("sa add --help does not explain the key file:\n%s", out)
	}
}
