// Command demo shows two gateways negotiating with strongSwan's charon through the kernel-xdpsec
// plugin and carrying traffic through xdpsec (hack/ike-demo.sh, make ike-demo; root):
//
//	h1 ── gw1 [xdpsec + charon] ══ ESP ══ [charon + xdpsec] gw2 ── h2
//
// It builds the four-namespace testbed, starts an xdpsec daemon on each gateway with only its
// interfaces, starts charon on each with a site-to-site connection whose CHILD_SA comes up on the
// first packet (start_action = trap: the card's ACQUIRE), pings through it, shows both sides' view
// (swanctl --list-sas, xdpsec's SAs and policies), rekeys, runs iperf3, and tears everything down
// (--hold keeps it up until Ctrl-C, with the daemons' sockets printed for xdpsec's CLI).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/hack/ike/ikebed"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

func main() {
	hold := flag.Bool("hold", false, "keep the gateways up until interrupted")
	secs := flag.Int("duration", 5, "seconds of iperf3 through the tunnel")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "ike-demo: needs root (network namespaces, XDP, AF_XDP, charon)")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *hold, time.Duration(*secs)*time.Second)
	ikebed.Cleanup()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "ike-demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==== "+format+"\n", args...) }

func run(ctx context.Context, hold bool, dur time.Duration) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	step("building kernel-xdpsec against the installed strongSwan (hack/strongswan-plugin.sh)")
	if _, _, err := ikebed.Plugins(ctx, log); err != nil {
		return err
	}
	step("four namespaces h1 — gw1 — gw2 — h2, xdpsec on both gateways (interfaces only, no SAs)")
	tb, err := testbed.New(ctx, testbed.Options{Tag: "ikedemo"})
	if err != nil {
		return err
	}
	defer tb.Close()
	if err := tb.HostChecksumOffloadOff(ctx); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "xs-ikedemo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var gws []*ikebed.Gateway
	for _, n := range []testbed.Node{testbed.GW1, testbed.GW2} {
		gw, err := ikebed.StartGateway(ctx, tb, n, filepath.Join(dir, string(n)+".sock"), log)
		if err != nil {
			return err
		}
		defer gw.Close()
		gws = append(gws, gw)
		fmt.Printf("%s: xdpsec API at %s\n", n, gw.Socket)
	}
	child := ikebed.LAN("lan")
	child.StartAction = "trap"
	c1, c2 := ikebed.Pair(child)
	c2.Children[0].StartAction = ""
	step("charon on both gateways, with kernel-xdpsec; gw1's CHILD_SA waits for traffic (start_action = trap)")
	var charons []*ikebed.Charon
	for i, n := range []testbed.Node{testbed.GW1, testbed.GW2} {
		conn := []ikebed.Conn{c1, c2}[i]
		c, err := ikebed.StartCharon(ctx, tb, n, filepath.Join(dir, "charon-"+string(n)),
			ikebed.Options{Socket: gws[i].Socket, Swanctl: conn.Swanctl()})
		if err != nil {
			return err
		}
		defer c.Stop()
		charons = append(charons, c)
	}
	time.Sleep(time.Second)
	show(ctx, "gw1's policies in xdpsec (the IKE sockets' bypass policies, the trap's in/fwd/out)", gws[0], false)

	step("ping h1 → h2: the first packet meets the trap policy, the card drops it and raises an ACQUIRE, charon negotiates")
	t0 := time.Now()
	for {
		if _, err := tb.Run(ctx, testbed.H1, "ping", "-c", "1", "-W", "1", testbed.H2Addr4.String()); err == nil {
			break
		}
		if time.Since(t0) > 30*time.Second {
			return errors.New("no tunnel after 30 s")
		}
	}
	fmt.Printf("first echo reply %s after the first ping\n", time.Since(t0).Round(time.Millisecond))
	out, _ := tb.Run(ctx, testbed.H1, "ping", "-c", "5", "-i", "0.2", testbed.H2Addr4.String())
	fmt.Print(out)
	for i, c := range charons {
		out, _ := c.Swanctl(ctx, "--list-sas")
		step("gw%d: swanctl --list-sas (counters read from xdpsec's card and workers now)", i+1)
		fmt.Print(out)
		show(ctx, fmt.Sprintf("gw%d: xdpsec's SAs (owner ike)", i+1), gws[i], true)
	}
	step("rekey the CHILD_SA (swanctl --rekey): new SAs in xdpsec, traffic moves at once, the old ones go")
	if out, err := charons[0].Swanctl(ctx, "--rekey", "--child", "lan"); err != nil {
		return fmt.Errorf("rekey: %w: %s", err, out)
	}
	time.Sleep(2 * time.Second)
	show(ctx, "gw1: xdpsec's SAs after the rekey (the old inbound SA stays ~5 s)", gws[0], true)
	if dur > 0 {
		step("iperf3 h1 → h2 through the tunnel, %s", dur)
		r, err := tb.Iperf3(ctx, testbed.IperfOptions{Dst: testbed.H2Addr4, Duration: dur})
		if err != nil {
			return err
		}
		fmt.Println(r)
	}
	if hold {
		step("holding: the gateways stay up until Ctrl-C")
		fmt.Printf("  xdpsec --socket %s sa list -s\n  swanctl --list-sas --uri unix://%s/charon.vici\n  ip netns exec %s ping %s\n",
			gws[0].Socket, charons[0].Dir, tb.NetNS(testbed.H1), testbed.H2Addr4)
		<-ctx.Done()
	}
	step("stopping charon (it removes its SAs and policies), then xdpsec")
	return nil
}

func show(ctx context.Context, title string, gw *ikebed.Gateway, sas bool) {
	fmt.Printf("\n-- %s\n", title)
	c := api.NewClient(gw.Socket)
	defer c.Close()
	if sas {
		l, err := c.ListSAsOf(ctx, sadb.Only(sadb.OwnerIKE), false)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, v := range l {
			var st []string
			for _, s := range v.OffloadState {
				st = append(st, s.Iface+" "+string(s.Status))
			}
			fmt.Printf("  spi 0x%08x %s → %s reqid %d dir %s state %s, %d packets, offload %s\n", v.SPI, v.Src, v.Dst,
				v.Reqid, v.Direction, v.State, v.Cur.Packets, strings.Join(st, ", "))
		}
		return
	}
	l, err := c.ListPoliciesOf(ctx, sadb.Only(sadb.OwnerIKE))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range l {
		st := "-"
		if len(p.OffloadState) > 0 {
			st = string(p.OffloadState[0].Status)
		}
		fmt.Printf("  id %d dir %s prio %d %s %s (%s)\n", p.ID, p.Dir, p.Priority, p.Action, p.Sel, st)
	}
}
