// Package ikebed runs strongSwan's charon on the gateways of internal/testbed: with the
// kernel-xdpsec plugin (ike/strongswan) against an xdpsec daemon, or as a plain strongSwan peer
// with its own ESP (kernel-libipsec, since the test kernel has no XFRM). The IKE tests, the soak,
// the benchmarks and the IKE demo (hack/ike) use it.
//
// Nothing is installed on the machine: the plugin is built and installed into a temporary root by
// hack/strongswan-plugin.sh, and each charon runs in its gateway's network namespace with a mount
// namespace of its own, in which /usr/lib/ipsec/plugins is Debian's plugins plus kernel-xdpsec and
// /run is a private tmpfs (its pid file and default sockets meet no other charon's).
package ikebed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xdpsec/xdpsec/control/config"
	"github.com/xdpsec/xdpsec/control/daemon"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

// Root finds the repository's root from the working directory (go test runs in the package's).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "strongswan-plugin.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the xdpsec repository")
		}
		dir = parent
	}
}

var (
	pluginOnce sync.Once
	pluginRoot string
	pluginErr  error
)

// Plugins builds and installs kernel-xdpsec (hack/strongswan-plugin.sh, which installs Debian's
// strongSwan and what the build needs) into a temporary root, once per process, and returns a
// directory with Debian's plugins and kernel-xdpsec, to bind-mount over /usr/lib/ipsec/plugins, and
// the plugin's strongswan.d snippet.
func Plugins(ctx context.Context, log *slog.Logger) (plugins, conf string, err error) {
	pluginOnce.Do(func() {
		var root string
		if root, pluginErr = Root(); pluginErr != nil {
			return
		}
		if pluginRoot, pluginErr = os.MkdirTemp("", "xs-ikebed-"); pluginErr != nil {
			return
		}
		dest := filepath.Join(pluginRoot, "root")
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "strongswan-plugin.sh"), "install")
		cmd.Env = append(os.Environ(), "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			pluginErr = fmt.Errorf("build and install kernel-xdpsec: %w\n%s", err, out)
			return
		}
		if log != nil {
			log.Info("kernel-xdpsec built", "output", strings.TrimSpace(lastLine(out)))
		}
		plugins := filepath.Join(pluginRoot, "plugins")
		if pluginErr = os.MkdirAll(plugins, 0o755); pluginErr != nil {
			return
		}
		if out, err := exec.CommandContext(ctx, "cp", "-a", "/usr/lib/ipsec/plugins/.", plugins+"/").CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("copy Debian's plugins: %w: %s", err, out)
			return
		}
		so := filepath.Join(dest, "usr/lib/ipsec/plugins/libstrongswan-kernel-xdpsec.so")
		if out, err := exec.CommandContext(ctx, "cp", so, plugins+"/").CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("copy the plugin: %w: %s", err, out)
		}
	})
	return filepath.Join(pluginRoot, "plugins"),
		filepath.Join(pluginRoot, "root", "etc/strongswan.d/charon/kernel-xdpsec.conf"), pluginErr
}

// Cleanup removes what Plugins made (call once, at the end of the process's use).
func Cleanup() {
	if pluginRoot != "" {
		os.RemoveAll(pluginRoot)
	}
}

func lastLine(b []byte) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	return l[len(l)-1]
}

// Backend is the IPsec backend of one charon.
type Backend int

const (
	// XDPSec is kernel-xdpsec against an xdpsec daemon's socket.
	XDPSec Backend = iota
	// LibIPsec is strongSwan's own userspace ESP (kernel-libipsec, a TUN device): a plain strongSwan
	// peer. It sends ESP in UDP only (swanctl's encap = yes is forced).
	LibIPsec
)

// Options describe one charon.
type Options struct {
	Backend Backend
	// Socket is the xdpsec daemon's API socket (XDPSec).
	Socket string
	// Swanctl is the swanctl.conf (connections and secrets).
	Swanctl string
	// Extra is more strongswan.conf settings inside charon { }.
	Extra string
}

// Charon is one running charon.
type Charon struct {
	tb   *testbed.Testbed
	node testbed.Node
	Dir  string
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartCharon writes the configuration into dir and starts charon in node's namespace, waits for
// its control socket and loads the connections.
func StartCharon(ctx context.Context, tb *testbed.Testbed, node testbed.Node, dir string, opts Options) (*Charon, error) {
	plugins, conf, err := Plugins(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Charon{tb: tb, node: node, Dir: dir, opts: opts}
	var backend, extra string
	switch opts.Backend {
	case XDPSec:
		backend = fmt.Sprintf("    include %s\n    kernel-xdpsec {\n      socket = %s\n    }\n", conf, opts.Socket)
		// The card takes the traffic by policy: no routes, and no routing table rule to leave
		// behind when a test kills charon.
		extra = "install_routes = no\n  routing_table = 0\n"
	case LibIPsec:
		backend = "    kernel-libipsec {\n      load = yes\n    }\n"
	}
	strongswan := fmt.Sprintf(`charon {
  load_modular = yes
  %s
  plugins {
    include /etc/strongswan.d/charon/*.conf
%s    vici {
      socket = unix://%s/charon.vici
    }
  }
  filelog {
    log {
      path = %s/charon.log
      time_format = %%T
      default = 1
      knl = 2
      ike = 1
      cfg = 1
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
`, extra+opts.Extra, backend, dir, dir)
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(strongswan), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(opts.Swanctl), 0o600); err != nil {
		return nil, err
	}
	if err := c.start(plugins); err != nil {
		return nil, err
	}
	if err := c.waitVici(ctx); err != nil {
		c.Kill()
		return nil, err
	}
	if out, err := c.Swanctl(ctx, "--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
		c.Kill()
		return nil, fmt.Errorf("load charon's configuration on %s: %w: %s", node, err, out)
	}
	return c, nil
}

func (c *Charon) start(plugins string) error {
	script := fmt.Sprintf("mount -t tmpfs none /run && mount --bind '%s' /usr/lib/ipsec/plugins && "+
		"STRONGSWAN_CONF='%s/strongswan.conf' exec /usr/lib/ipsec/charon", plugins, c.Dir)
	out, err := os.Create(filepath.Join(c.Dir, "charon.out"))
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", c.tb.NetNS(c.node), "unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start charon on %s: %w", c.node, err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.done)
	}()
	return nil
}

func (c *Charon) waitVici(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(c.Dir, "charon.vici")); err == nil {
			if _, err := c.Swanctl(ctx, "--stats"); err == nil {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("charon on %s exited: %v: %s", c.node, c.err, c.Output())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("charon on %s: no control socket after 30 s: %s", c.node, c.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Output returns charon's standard output and error, and the end of its log.
func (c *Charon) Output() string {
	out, _ := os.ReadFile(filepath.Join(c.Dir, "charon.out"))
	log, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
	if len(log) > 8000 {
		log = log[len(log)-8000:]
	}
	return string(out) + string(log)
}

// Log returns charon's whole log.
func (c *Charon) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "charon.log"))
	return string(b)
}

// Swanctl runs swanctl against this charon.
func (c *Charon) Swanctl(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swanctl", append(args, "--uri", "unix://"+filepath.Join(c.Dir, "charon.vici"))...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// Stop asks charon to stop (SIGTERM: it deletes its SAs and policies) and waits for it.
func (c *Charon) Stop() error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(30 * time.Second):
		c.Kill()
		return fmt.Errorf("charon on %s did not stop within 30 s", c.node)
	}
}

// Kill kills charon (SIGKILL: what it installed stays behind) and waits for it.
func (c *Charon) Kill() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// ChildSA is a CHILD_SA as `swanctl --list-sas` shows it.
type ChildSA struct {
	Name    string
	State   string // INSTALLED, REKEYED, …
	Reqid   uint32
	In, Out uint32 // SPIs
	Encap   bool   // ESP in UDP
}

var (
	childRE = regexp.MustCompile(`^\s+(\S+): #\d+, reqid (\d+), (\S+), (TUNNEL|TRANSPORT)(-in-UDP)?,`)
	spiRE   = regexp.MustCompile(`^\s+(in|out)\s+([0-9a-f]{8})`)
)

// ListSAs returns the CHILD_SAs charon holds.
func (c *Charon) ListSAs(ctx context.Context) ([]ChildSA, error) {
	out, err := c.Swanctl(ctx, "--list-sas")
	if err != nil {
		return nil, fmt.Errorf("swanctl --list-sas: %w: %s", err, out)
	}
	var l []ChildSA
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := childRE.FindStringSubmatch(sc.Text()); m != nil {
			reqid, _ := strconv.ParseUint(m[2], 10, 32)
			l = append(l, ChildSA{Name: m[1], Reqid: uint32(reqid), State: m[3], Encap: m[5] != ""})
			continue
		}
		if m := spiRE.FindStringSubmatch(sc.Text()); m != nil && len(l) > 0 {
			v, _ := strconv.ParseUint(m[2], 16, 32)
			if m[1] == "in" {
				l[len(l)-1].In = uint32(v)
			} else {
				l[len(l)-1].Out = uint32(v)
			}
		}
	}
	return l, nil
}

// Gateway is an xdpsec daemon on one of the testbed's gateways with its API socket and no SAs or
// policies of its own: charon installs them.
type Gateway struct {
	*daemon.Daemon
	Socket string
}

// StartGateway starts xdpsec on gw with only its interfaces (and the testbed's IKE bypass policy,
// which changes nothing here: the default verdict passes unmatched traffic), serving its API at
// socket.
func StartGateway(ctx context.Context, tb *testbed.Testbed, gw testbed.Node, socket string, log *slog.Logger) (*Gateway, error) {
	y1, y2, err := tb.GatewayConfigsWith([]testbed.Tunnel{}, testbed.Dataplane{})
	if err != nil {
		return nil, err
	}
	y := y1
	if gw == testbed.GW2 {
		y = y2
	}
	// Room for the benchmarks' thousands of CHILD_SAs.
	y = strings.Replace(y, "capacities: {policies: 64, sas: 64, flow_cache: 4096}",
		"capacities: {policies: 16384, sas: 16384, flow_cache: 4096}", 1)
	cfg, err := config.Parse(string(gw)+".yaml", []byte(y))
	if err != nil {
		return nil, fmt.Errorf("parse %s configuration: %w", gw, err)
	}
	ns, err := tb.NsHandle(gw)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	d, err := daemon.Start(ctx, cfg, daemon.Options{NetNS: ns, Socket: socket, Log: log.With("gw", string(gw))})
	if err != nil {
		return nil, fmt.Errorf("start xdpsec on %s: %w", gw, err)
	}
	return &Gateway{Daemon: d, Socket: socket}, nil
}

// Reload replaces charon's swanctl.conf and loads it (existing CHILD_SAs keep the settings they
// were made with; new ones take the new ones).
func (c *Charon) Reload(ctx context.Context, swanctl string) error {
	f := filepath.Join(c.Dir, "swanctl.conf")
	if err := os.WriteFile(f, []byte(swanctl), 0o600); err != nil {
		return err
	}
	if out, err := c.Swanctl(ctx, "--load-all", "--file", f); err != nil {
		return fmt.Errorf("reload charon's configuration on %s: %w: %s", c.node, err, out)
	}
	return nil
}
