//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// What the bench changes on the path's interfaces, and how it gives them back. On a topology the
// bench built this does not matter (the namespaces go at the end); on an adopted one
// (testbed.Adopt) it is the promise that the topology is left as found. Every change the bench and
// its systems make is in this list or undone by the system that made it:
//   - GRO on every interface (hostSettings): restored from devState.
//   - queue counts (ethtool -L: --queues on an adopted topology, the workers phase): restored.
//   - wireguard-go's routes to the LANs over its interface: it puts back the routes it replaced
//     (wireguardGo.Stop); its interfaces go with its processes.
//   - XDP programs (the sink, xsfwd, xdpsec's cards with on_exit: detach) detach when they stop.
//
// The hosts' checksum offloads are left alone (pair.Options.HostOffloads), and no sysctl changes.

// devState is what the bench may change on one interface, as it found it: GRO, and the queues in
// use (ethtool -l's current rx, tx and combined; -1 where the driver has none).
type devState struct {
	port             testbed.Port
	gro              bool
	rx, tx, combined int
}

func readDevState(ctx context.Context, tb *testbed.Testbed, p testbed.Port) (devState, error) {
	s := devState{port: p, rx: -1, tx: -1, combined: -1}
	k, err := tb.Run(ctx, p.Node, "ethtool", "-k", p.Dev)
	if err != nil {
		return s, err
	}
	gro, ok := ethtoolField(k, "generic-receive-offload")
	if !ok {
		return s, fmt.Errorf("%s: ethtool -k shows no generic-receive-offload", p.Dev)
	}
	s.gro = strings.HasPrefix(gro, "on")
	l, err := tb.Run(ctx, p.Node, "ethtool", "-l", p.Dev)
	if err != nil {
		return s, nil // a driver without channels: the bench never sets them
	}
	_, cur, _ := strings.Cut(l, "Current hardware settings:")
	for name, v := range map[string]*int{"RX": &s.rx, "TX": &s.tx, "Combined": &s.combined} {
		if f, ok := ethtoolField(cur, name); ok {
			if n, err := strconv.Atoi(f); err == nil {
				*v = n
			}
		}
	}
	return s, nil
}

// ethtoolField returns the value of the first "name: value" line of ethtool's output.
func ethtoolField(out, name string) (string, bool) {
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// queues is how many receive queues the interface uses (what a gateway runs a worker for).
func (s devState) queues() int { return max(s.rx, 0) + max(s.combined, 0) }

// restore gives the interface back the settings of s where they differ now.
func (s devState) restore(ctx context.Context, tb *testbed.Testbed) error {
	now, err := readDevState(ctx, tb, s.port)
	if err != nil {
		return err
	}
	var errs []error
	if now.gro != s.gro {
		onOff := map[bool]string{true: "on", false: "off"}[s.gro]
		if _, err := tb.Run(ctx, s.port.Node, "ethtool", "-K", s.port.Dev, "gro", onOff); err != nil {
			errs = append(errs, err)
		}
	}
	var args []string
	for _, c := range []struct {
		name     string
		was, now int
	}{{"rx", s.rx, now.rx}, {"tx", s.tx, now.tx}, {"combined", s.combined, now.combined}} {
		if c.was >= 0 && c.was != c.now {
			args = append(args, c.name, strconv.Itoa(c.was))
		}
	}
	if len(args) > 0 {
		if err := setChannels(ctx, tb, s.port, args...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostState is the path's interfaces as the bench found them.
type hostState []devState

func snapshot(ctx context.Context, tb *testbed.Testbed, topo *testbed.Topology) (hostState, error) {
	var h hostState
	for _, p := range topo.Path() {
		s, err := readDevState(ctx, tb, p)
		if err != nil {
			return nil, err
		}
		h = append(h, s)
	}
	return h, nil
}

// restore gives every interface back what it had (in a fresh context: the run's may be over).
func (h hostState) restore(tb *testbed.Testbed) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, s := range h {
		if err := s.restore(ctx, tb); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gatewayQueues is the queue count the gateways' four interfaces share; the systems serve that
// many queues on every one of them.
func (h hostState) gatewayQueues() (int, error) {
	n := -1
	var got []string
	for _, s := range h {
		if s.port.Node != testbed.GW1 && s.port.Node != testbed.GW2 {
			continue
		}
		got = append(got, fmt.Sprintf("%s %s: %d", s.port.Role, s.port.Dev, s.queues()))
		if n == -1 {
			n = s.queues()
		} else if s.queues() != n {
			n = -2
		}
	}
	if n < 1 {
		return 0, fmt.Errorf("the gateways' interfaces use different (or no) queue counts (%s): pass --queues N to set them all for the run (they are restored at the end)",
			strings.Join(got, ", "))
	}
	return n, nil
}

// hostSettings puts the path's hosts and gateways in the state every system is measured in, and
// says what it did: GRO on every interface, as real NICs have it (the receiving host coalesces
// what the gateways send, whatever they are); the hosts keep their offloads (TSO, checksum).
func hostSettings(ctx context.Context, tb *testbed.Testbed, topo *testbed.Topology) ([]string, error) {
	for _, p := range topo.Path() {
		if _, err := tb.Run(ctx, p.Node, "ethtool", "-K", p.Dev, "gro", "on"); err != nil {
			return nil, err
		}
	}
	s := []string{"GRO on every interface of the path (ethtool -K DEV gro on), as NICs have it",
		"hosts keep their offloads (TSO, GSO, transmit checksum)"}
	if !topo.Adopted {
		return append(s, "MTU 1500 on every link"), nil
	}
	return append(s, "adopted topology (not built by the bench, not removed): "+topo.String(),
		"the bench restores every setting it changes at the end (GRO, queue counts, wireguard-go's routes); the notes say if one could not be"), nil
}

// setQueues sets the receive and transmit queues of every interface of the path to n.
func setQueues(ctx context.Context, tb *testbed.Testbed, topo *testbed.Topology, n int) error {
	for _, p := range topo.Path() {
		if err := setChannels(ctx, tb, p, "rx", fmt.Sprint(n), "tx", fmt.Sprint(n)); err != nil {
			return fmt.Errorf("set %d queues on %s: %w", n, p.Dev, err)
		}
	}
	return nil
}

// setChannels runs ethtool -L on p with args. The kernel refuses to remove a queue an AF_XDP
// socket's buffer pool is still registered on, and it unregisters a closed socket's pool in a
// deferred work item: a system that just stopped may hold the queues for a moment, so that refusal
// is retried for a few seconds.
func setChannels(ctx context.Context, tb *testbed.Testbed, p testbed.Port, args ...string) error {
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := tb.Run(ctx, p.Node, "ethtool", append([]string{"-L", p.Dev}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "AF_XDP sockets") || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
