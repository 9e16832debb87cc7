//go:build linux

package bench

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// wireguardGo runs wireguard-go (the userspace WireGuard, ChaCha20-Poly1305) on gw1 and gw2, with
// the LAN routes moved onto its interfaces: the tunnel users would pick instead of xdpsec.
type wireguardGo struct {
	bin   string
	env   *Env
	procs []*exec.Cmd
	ifs   [2]string
	logs  [2]*testbed.LockedBuffer
	// saved are the gateways' routes to the LANs as Start found them, which Stop puts back.
	saved []savedRoute
}

func (w *wireguardGo) Name() string { return "wireguard-go" }
func (w *wireguardGo) Describe() string {
	return "wireguard-go " + wgVersion(w.bin) + " on both gateways (userspace WireGuard, ChaCha20-Poly1305)"
}

func wgVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return filepath.Base(bin)
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// wgSocketDir is where wireguard-go puts its UAPI sockets (the same directory in every namespace:
// `ip netns exec` shares /run).
const wgSocketDir = "/var/run/wireguard"

func (w *wireguardGo) Start(ctx context.Context, env *Env) error {
	w.env = env
	tb := env.TB
	var priv [2]*ecdh.PrivateKey
	for i := range priv {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		priv[i] = k
	}
	// Interface names must be unique on the host (the UAPI socket is named after it) and short.
	suffix := tb.Prefix[len(tb.Prefix)-6:]
	w.ifs = [2]string{"wg1" + suffix, "wg2" + suffix}
	gws := [2]testbed.Node{testbed.GW1, testbed.GW2}
	for i, gw := range gws {
		cmd := tb.Command(context.WithoutCancel(ctx), gw, w.bin, "-f", w.ifs[i])
		cmd.Env = append(os.Environ(), "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1")
		w.logs[i] = new(testbed.LockedBuffer)
		cmd.Stdout, cmd.Stderr = w.logs[i], w.logs[i]
		if err := cmd.Start(); err != nil {
			w.Stop()
			return fmt.Errorf("start wireguard-go in %s: %w", gw, err)
		}
		w.procs = append(w.procs, cmd)
	}
	// Each gateway's peer is the other's wire address; the tunnel carries the far LAN (IPv6 too
	// when the path has it), and the route to it moves onto the tunnel's interface.
	t := &env.Topo
	fams := []bool{false}
	if t.IPv6() {
		fams = append(fams, true)
	}
	peers := [2]struct {
		endpoint string
		allowed  []netip.Prefix
	}{{endpoint: t.GW2WAN.Addr(false).String()}, {endpoint: t.GW1WAN.Addr(false).String()}}
	for _, v6 := range fams {
		peers[0].allowed = append(peers[0].allowed, t.LAN2(v6))
		peers[1].allowed = append(peers[1].allowed, t.LAN1(v6))
	}
	for i, gw := range gws {
		sock := filepath.Join(wgSocketDir, w.ifs[i]+".sock")
		var conf strings.Builder
		fmt.Fprintf(&conf, "set=1\nprivate_key=%s\nlisten_port=51820\nreplace_peers=true\n", hex.EncodeToString(priv[i].Bytes()))
		fmt.Fprintf(&conf, "public_key=%s\nendpoint=%s:51820\nreplace_allowed_ips=true\n",
			hex.EncodeToString(priv[1-i].PublicKey().Bytes()), peers[i].endpoint)
		for _, a := range peers[i].allowed {
			fmt.Fprintf(&conf, "allowed_ip=%s\n", a)
		}
		if err := uapiSet(ctx, sock, conf.String()); err != nil {
			w.Stop()
			return fmt.Errorf("configure wireguard-go in %s: %w (its output: %s)", gw, err, w.logs[i].String())
		}
		if _, err := tb.Run(ctx, gw, "ip", "link", "set", w.ifs[i], "up"); err != nil {
			w.Stop()
			return err
		}
		for _, p := range peers[i].allowed {
			saved, err := saveRoutes(ctx, tb, gw, p)
			if err != nil {
				w.Stop()
				return err
			}
			w.saved = append(w.saved, saved...)
			if _, err := tb.Run(ctx, gw, "ip", "route", "replace", p.String(), "dev", w.ifs[i]); err != nil {
				w.Stop()
				return err
			}
		}
	}
	if _, err := tb.WarmUp(ctx, testbed.H1, t.H2.Addr(false)); err != nil {
		w.Stop()
		return fmt.Errorf("wireguard-go tunnel: %w", err)
	}
	return nil
}

// uapiSet writes a configuration over wireguard-go's UAPI socket (the protocol `wg setconf`
// speaks), waiting for the socket to appear.
func uapiSet(ctx context.Context, path, conf string) error {
	var c net.Conn
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		var d net.Dialer
		if c, err = d.DialContext(ctx, "unix", path); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(conf + "\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "errno=0" {
		return fmt.Errorf("uapi: %s", strings.TrimSpace(line))
	}
	return nil
}

// Carried is what wireguard-go on gw2 decrypted and handed to gw2's stack: the receive counters
// of its interface.
func (w *wireguardGo) Carried(ctx context.Context) (Carried, error) {
	return linkCounters(w.env.TB, testbed.GW2, w.ifs[1], true)
}

// Stop ends both wireguard-go processes (their interfaces and the routes over them go with them)
// and puts back the routes to the LANs that Start replaced, as it found them.
func (w *wireguardGo) Stop() error {
	var errs []error
	for _, p := range w.procs {
		_ = p.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- p.Wait() }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	w.procs = nil
	// The routes over the tunnels' interfaces went with them; put back the ones they replaced.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range w.saved {
		if err := r.restore(ctx, w.env.TB); err != nil {
			errs = append(errs, err)
		}
	}
	w.saved = nil
	return errors.Join(errs...)
}

// savedRoute is a gateway's route as `ip route show exact` printed it.
type savedRoute struct {
	gw   testbed.Node
	fam  string // -4 or -6
	spec []string
}

// routeFlags are words `ip route show` prints that `ip route replace` does not take.
var routeFlags = []string{"linkdown", "dead", "offload", "trap", "rt_offload", "rt_trap", "rt_offload_failed"}

// saveRoutes returns gw's routes for exactly p (none when p is reached through a shorter prefix).
func saveRoutes(ctx context.Context, tb *testbed.Testbed, gw testbed.Node, p netip.Prefix) ([]savedRoute, error) {
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	out, err := tb.Run(ctx, gw, "ip", fam, "route", "show", "exact", p.String())
	if err != nil {
		return nil, err
	}
	var saved []savedRoute
	for line := range strings.Lines(out) {
		f := slices.DeleteFunc(strings.Fields(line), func(w string) bool { return slices.Contains(routeFlags, w) })
		if len(f) > 0 {
			saved = append(saved, savedRoute{gw: gw, fam: fam, spec: f})
		}
	}
	return saved, nil
}

func (r savedRoute) restore(ctx context.Context, tb *testbed.Testbed) error {
	_, err := tb.Run(ctx, r.gw, "ip", append([]string{r.fam, "route", "replace"}, r.spec...)...)
	return err
}
