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
	"os"
	"os/exec"
	"path/filepath"
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
	peers := [2]struct {
		endpoint string
		allowed  []string
		routes   []string
	}{
		{testbed.GW2WANAddr4.String(), []string{testbed.LAN2Prefix4.String(), testbed.LAN2Prefix6.String()},
			[]string{testbed.LAN2Prefix4.String(), testbed.LAN2Prefix6.String()}},
		{testbed.GW1WANAddr4.String(), []string{testbed.LAN1Prefix4.String(), testbed.LAN1Prefix6.String()},
			[]string{testbed.LAN1Prefix4.String(), testbed.LAN1Prefix6.String()}},
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
		for _, r := range peers[i].routes {
			if _, err := tb.Run(ctx, gw, "ip", "route", "replace", r, "dev", w.ifs[i]); err != nil {
				w.Stop()
				return err
			}
		}
	}
	if _, err := tb.WarmUp(ctx, testbed.H1, testbed.H2Addr4); err != nil {
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

// Stop ends both wireguard-go processes (their interfaces go with them) and gives the LAN routes
// back to the wire link.
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
	if w.env == nil {
		return nil
	}
	tb := w.env.TB
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range []struct {
		gw     testbed.Node
		prefix string
		via    string
	}{
		{testbed.GW1, testbed.LAN2Prefix4.String(), testbed.GW2WANAddr4.String()},
		{testbed.GW1, testbed.LAN2Prefix6.String(), testbed.GW2WANAddr6.String()},
		{testbed.GW2, testbed.LAN1Prefix4.String(), testbed.GW1WANAddr4.String()},
		{testbed.GW2, testbed.LAN1Prefix6.String(), testbed.GW1WANAddr6.String()},
	} {
		if _, err := tb.Run(ctx, r.gw, "ip", "route", "replace", r.prefix, "via", r.via); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
