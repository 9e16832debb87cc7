package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testutil"
)

const (
	withKeys = `instance: t
sas:
  - {name: x, spi: 0x1001, src: 198.18.0.1, dst: 198.18.0.2, mode: tunnel,
     aead: {alg: aes-gcm-128, key: "0x000102030405060708090a0b0c0d0e0fcafebabe"}}
`
	withoutKeys = "instance: t\npolicies:\n  - {name: ike, dir: in, src: 0.0.0.0/0, dst: 0.0.0.0/0, proto: udp, dport: 500, action: bypass}\n"
)

// write puts text into dir/gw.yaml with mode (t.TempDir passes the directory checks: it is not
// writable by others, under sticky /tmp).
func write(t *testing.T, dir, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	return p
}

func TestLoadCheckedModes(t *testing.T) {
	for _, c := range []struct {
		name  string
		text  string
		mode  os.FileMode
		wants []string // empty: loads
	}{
		{"keys, owner only", withKeys, 0o600, nil},
		{"keys, read-only owner", withKeys, 0o400, nil},
		{"keys, world-readable", withKeys, 0o644, []string{"mode 0644 lets group and others read its keys", "run chmod 600 "}},
		{"keys, group-readable", withKeys, 0o640, []string{"mode 0640 lets its group read its keys", "run chmod 600 "}},
		{"keys, others-readable", withKeys, 0o604, []string{"mode 0604 lets others read its keys"}},
		{"no keys, world-readable", withoutKeys, 0o644, nil},
		{"no keys, group-writable", withoutKeys, 0o664, []string{"mode 0664 lets its group change it", "run chmod go-w "}},
		{"no keys, world-writable", withoutKeys, 0o646, []string{"mode 0646 lets others change it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, t.TempDir(), c.text, c.mode)
			cfg, err := LoadChecked(p)
			if len(c.wants) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				cfg.Wipe()
				return
			}
			if !errors.Is(err, ErrUnsafeFile) {
				t.Fatalf("err = %v, want ErrUnsafeFile", err)
			}
			for _, w := range append(c.wants, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if cfg, err := Load(p); err != nil { // the offline tools' Load does not judge
				t.Errorf("Load: %v", err)
			} else {
				cfg.Wipe()
			}
		})
	}
}

func TestLoadCheckedParents(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	sticky := filepath.Join(base, "sticky")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{open, 0o777}, {sticky, 0o777 | os.ModeSticky}} {
		if err := os.Mkdir(d.path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
	}
	p := write(t, open, withKeys, 0o600)
	if _, err := LoadChecked(p); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "its directory "+open+" has mode 0777") {
		t.Errorf("file in a world-writable directory: %v", err)
	}
	// A link from a safe place does not launder the directory the file is really in.
	link := filepath.Join(base, "link.yaml")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadChecked(link); !errors.Is(err, ErrUnsafeFile) {
		t.Errorf("link to a file in a world-writable directory: %v", err)
	}
	p = write(t, sticky, withKeys, 0o600)
	if cfg, err := LoadChecked(p); err != nil {
		t.Errorf("file in a sticky directory (like /tmp): %v", err)
	} else {
		cfg.Wipe()
	}
	if _, err := LoadChecked(base); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}

// As root, a file or directory another (non-root) user owns is refused, as ssh refuses such keys.
func TestLoadCheckedOwner(t *testing.T) {
	testutil.RequireRoot(t, "giving a file to another user needs root")
	const nobody = 65534
	dir := t.TempDir()
	p := write(t, dir, withoutKeys, 0o644)
	if err := os.Chown(p, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := LoadChecked(p)
	if !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "belongs to uid 65534") ||
		!strings.Contains(err.Error(), "run chown root "+p) {
		t.Errorf("file of uid %d: %v", nobody, err)
	}
	if err := os.Chown(p, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadChecked(p); !errors.Is(err, ErrUnsafeFile) || !strings.Contains(err.Error(), "its directory "+dir+" belongs to uid 65534") {
		t.Errorf("directory of uid %d: %v", nobody, err)
	}
	// A group other than root's changes nothing: only modes and owners count.
	if err := os.Chown(dir, 0, nobody); err != nil {
		t.Fatal(err)
	}
	if cfg, err := LoadChecked(p); err != nil {
		t.Errorf("root's file and directory with another group: %v", err)
	} else {
		cfg.Wipe()
	}
}
