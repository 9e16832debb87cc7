package dist

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

// install runs `make install` with vars into a temporary build directory and returns the build
// directory; nothing is written into the source tree.
func install(t *testing.T, vars ...string) string {
	t.Helper()
	build := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"-C", "..", "install", "BINARY=" + filepath.Join(build, "xdpsec"), "BUILDDIR=" + build}, vars...)
	if out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return build
}

// `make install DESTDIR=…` lays out the binary, a man page per command, the completion of three
// shells, the systemd unit pointing at the installed binary, the dashboard, the alert rules and the
// licences; `make uninstall` removes every file again.
func TestMakeInstall(t *testing.T) {
	testutil.RequireTools(t, "make")
	dest := t.TempDir()
	build := install(t, "DESTDIR="+dest, "PREFIX=/opt/xs")
	files := map[string]fs.FileMode{}
	err := filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(path, dest)] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		"/opt/xs/bin/xdpsec":                                  0o755,
		"/opt/xs/lib/systemd/system/xdpsec@.service":          0o644,
		"/opt/xs/share/bash-completion/completions/xdpsec":    0o644,
		"/opt/xs/share/zsh/site-functions/_xdpsec":            0o644,
		"/opt/xs/share/fish/vendor_completions.d/xdpsec.fish": 0o644,
		"/opt/xs/share/xdpsec/grafana/xdpsec.json":            0o644,
		"/opt/xs/share/xdpsec/prometheus/xdpsec-alerts.yml":   0o644,
		"/opt/xs/share/doc/xdpsec/LICENSE":                    0o644,
		"/opt/xs/share/doc/xdpsec/GPL-2.0.txt":                0o644,
		"/opt/xs/share/doc/xdpsec/BSD-2-Clause.txt":           0o644,
		"/opt/xs/share/man/man1/xdpsec.1":                     0o644,
		"/opt/xs/share/man/man1/xdpsec-run.1":                 0o644,
		"/opt/xs/share/man/man1/xdpsec-sa-add.1":              0o644,
		"/opt/xs/share/man/man1/xdpsec-completion-bash.1":     0o644,
		"/opt/xs/share/man/man1/xdpsec-version.1":             0o644,
	}
	for f, mode := range want {
		if m, ok := files[f]; !ok || m != mode {
			t.Errorf("%s: present %v, mode %v; want %v", f, ok, m, mode)
		}
	}
	// Every page the build generated is installed, and nothing else lands anywhere.
	pages, _ := filepath.Glob(filepath.Join(build, "man", "*.1"))
	if len(pages) < 20 {
		t.Fatalf("only %d man pages built", len(pages))
	}
	for _, p := range pages {
		if _, ok := files["/opt/xs/share/man/man1/"+filepath.Base(p)]; !ok {
			t.Errorf("man page %s not installed", filepath.Base(p))
		}
	}
	if n := len(files) - len(pages); n != len(want)-5 { // the 5 pages named in want
		var extra []string
		for f := range files {
			if _, ok := want[f]; !ok && !strings.HasPrefix(f, "/opt/xs/share/man/man1/") {
				extra = append(extra, f)
			}
		}
		slices.Sort(extra)
		t.Errorf("%d files besides the man pages, want %d; unexpected: %v", n, len(want)-5, extra)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "/opt/xs/lib/systemd/system/xdpsec@.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/opt/xs/bin/xdpsec run --config /etc/xdpsec/%i.yaml --instance %i\n") ||
		strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("the installed unit does not run the installed binary:\n%s", unit)
	}
	for f, mark := range map[string]string{"/opt/xs/share/bash-completion/completions/xdpsec": "__start_xdpsec",
		"/opt/xs/share/zsh/site-functions/_xdpsec": "#compdef xdpsec", "/opt/xs/share/fish/vendor_completions.d/xdpsec.fish": "complete -c xdpsec"} {
		if b, _ := os.ReadFile(filepath.Join(dest, f)); !strings.Contains(string(b), mark) {
			t.Errorf("%s lacks %q", f, mark)
		}
	}
	if out, err := exec.Command(filepath.Join(dest, "/opt/xs/bin/xdpsec"), "version", "-o", "json").Output(); err != nil ||
		!strings.Contains(string(out), `"bpf_object_sha256"`) {
		t.Errorf("the installed binary does not run: %v %s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "make", "-C", "..", "uninstall", "DESTDIR="+dest, "PREFIX=/opt/xs").CombinedOutput(); err != nil {
		t.Fatalf("make uninstall: %v\n%s", err, out)
	}
	_ = filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("make uninstall left %s", strings.TrimPrefix(path, dest))
		}
		return nil
	})
}
