package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/control/api"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/internal/testbed"
)

// TestNATTRebindingInPlace: gw1's NAT mapping moves (its UDP source port 4500 → 4501). The update
// of gw1's outbound SA through the API, and of gw2's inbound SA through its manager, reach the
// engine, the workers' SA and the card in place: the card holds the new ports, ESP leaves with the
// new source port, the sequence numbers continue (same SA, same counters, the peer's replay window
// keeps accepting) and no echo is lost.
func TestNATTRebindingInPlace(t *testing.T) {
	needRoot(t)
	sock := filepath.Join(t.TempDir(), "gw1.sock")
	encap := func(y string) string {
		for _, spi := range []string{"0x00001000", "0x00001001"} {
			y = strings.Replace(y, "    spi: "+spi+"\n", "    spi: "+spi+"\n    encap: {type: espinudp}\n", 1)
		}
		return y
	}
	tb, gw1, gw2 := startPairWith(t, testbed.DefaultTunnels[:1], testbed.Options{Tag: "dmn", WireTap: true},
		func(y1, y2 string) (string, string) { return encap(y1), encap(y2) },
		func(gw testbed.Node, o *Options) {
			if gw == testbed.GW1 {
				o.NoAPI, o.Socket = false, sock
			}
		})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := pings(ctx, t, tb, testbed.H1, testbed.H2Addr4, 5); got < 3 { // the first may meet unresolved neighbours
		t.Fatalf("through ESP-in-UDP: %d of 5 answered", got)
	}
	out := saIndex(t, gw1, "v4-gw1-to-gw2")
	in := saIndex(t, gw2, "v4-gw1-to-gw2")
	before := saInfo(t, gw1, out)
	top := gw2.drv.held[in].sa.ReplayTop()
	replay0 := saInfo(t, gw2, in).ReplayErrors

	// Whatever leaves gw1 with the new source port, seen from the wire tap.
	captured := tapCount(ctx, t, tb, 3, "udp and src port 4501 and dst port 4500")

	c := api.NewClient(sock)
	defer c.Close()
	v, err := c.GetSA(ctx, sadb.Ref{Name: "v4-gw1-to-gw2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	sa := v.SA
	sa.Encap = &sadb.Encap{Type: "espinudp", Sport: 4501, Dport: 4500}
	if _, err := c.UpdateSA(ctx, sa); err != nil {
		t.Fatalf("update through the API: %v", err)
	}
	peer, err := gw2.Manager().GetSA(sadb.Ref{Name: "v4-gw1-to-gw2"}, true)
	if err != nil {
		t.Fatal(err)
	}
	psa := peer.SA
	psa.Encap = &sadb.Encap{Type: "espinudp", Sport: 4501, Dport: 4500}
	if _, err := gw2.Manager().UpdateSA(psa); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Daemon{gw1, gw2} {
		if err := d.Manager().Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		d   *Daemon
		idx uint32
	}{{gw1, out}, {gw2, in}} {
		card, err := c.d.Card().GetSA(c.idx)
		if err != nil || card.EncapSrcPort != 4501 || card.EncapDstPort != 4500 {
			t.Fatalf("%s: the card's entry after the update: %+v %v", c.d.Info.Instance, card, err)
		}
	}
	if got := pings(ctx, t, tb, testbed.H1, testbed.H2Addr4, 5); got != 5 {
		t.Errorf("after the rebinding: %d of 5 answered", got)
	}
	if out := captured(); !strings.Contains(out, "3 packets captured") {
		t.Errorf("no ESP-in-UDP with source port 4501 on the wire:\n%s", out)
	}
	after := saInfo(t, gw1, out)
	if after.Packets < before.Packets+5 || after.Seq < before.Seq+5 {
		t.Errorf("gw1's SA restarted: packets %d → %d, seq %d → %d", before.Packets, after.Packets, before.Seq, after.Seq)
	}
	if t2 := gw2.drv.held[in].sa.ReplayTop(); t2 < top+5 || saInfo(t, gw2, in).ReplayErrors != replay0 {
		t.Errorf("gw2's replay window: top %d → %d, replay errors %d → %d", top, t2, replay0, saInfo(t, gw2, in).ReplayErrors)
	}
	checkCard(ctx, t, gw1)
	checkCard(ctx, t, gw2)
}

// tapCount starts tcpdump on the wire tap's port towards gw1, waits until it listens, and returns
// a function that waits for it to have seen n packets matching filter (or 20 s) and returns its
// report.
func tapCount(ctx context.Context, t *testing.T, tb *testbed.Testbed, n int, filter string) func() string {
	t.Helper()
	cmd := tb.Command(ctx, testbed.SW, "timeout", "20", "tcpdump", "-i", testbed.SWGW1, "-n", "-c", fmt.Sprint(n), filter)
	var out bytes.Buffer // tcpdump's report (stderr); the packets it prints go nowhere
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
		if !once {
			close(listening)
		}
	}()
	<-listening
	return func() string {
		<-done
		_ = cmd.Wait()
		return out.String()
	}
}

func saInfo(t *testing.T, d *Daemon, idx uint32) SAInfo {
	t.Helper()
	for _, sa := range d.SAs() {
		if sa.Index == idx {
			return sa
		}
	}
	t.Fatalf("%s: no sa at index %d", d.Info.Instance, idx)
	return SAInfo{}
}
