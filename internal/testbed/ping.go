package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PingOptions shape a PingCount run beyond its count.
type PingOptions struct {
	Interval time.Duration // between echo requests; default 0.2 s
	Wait     time.Duration // for each reply; default 2 s
	Size     int           // ICMP payload bytes (ping -s); default ping's 56
	NoDF     bool          // IPv4 without DF (ping -M dont): the sender fragments what exceeds its MTU
	Replies  bool          // a line per reply in Output (ping without -q), for tests that read them
}

// PingResult is what one run of ping counted.
type PingResult struct {
	Sent, Received int
	Output         string
}

// Lost is the number of echo requests that got no reply.
func (r PingResult) Lost() int { return r.Sent - r.Received }

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

// PingCount sends count echo requests from node to dst and returns how many went out and how many
// were answered. Its error is for a ping that could not run or say what it counted, never for lost
// replies: the caller asserts the count it means.
func (tb *Testbed) PingCount(ctx context.Context, from Node, dst netip.Addr, count int, o PingOptions) (PingResult, error) {
	if o.Interval == 0 {
		o.Interval = 200 * time.Millisecond
	}
	if o.Wait == 0 {
		o.Wait = 2 * time.Second
	}
	args := []string{"-n", "-c", fmt.Sprint(count), "-i", strconv.FormatFloat(o.Interval.Seconds(), 'f', -1, 64),
		"-W", strconv.FormatFloat(o.Wait.Seconds(), 'f', -1, 64)}
	if !o.Replies {
		args = append(args, "-q")
	}
	if o.Size > 0 {
		args = append(args, "-s", fmt.Sprint(o.Size))
	}
	if o.NoDF {
		args = append(args, "-M", "dont")
	}
	out, err := tb.Command(ctx, from, "ping", append(args, dst.String())...).CombinedOutput()
	r, err := parsePing(string(out), err)
	if err != nil {
		return r, fmt.Errorf("ping %s from %s: %w", dst, from, err)
	}
	return r, nil
}

// parsePing reads ping's summary line. ping exits 1 when replies are missing (and 0 when at least
// one came back); any other failure, or no summary, is a ping that did not run.
func parsePing(out string, err error) (PingResult, error) {
	r := PingResult{Output: out}
	m := pingSummary.FindStringSubmatch(out)
	var ee *exec.ExitError
	if m == nil || (err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1)) {
		return r, fmt.Errorf("no count (%v): %s", err, strings.TrimSpace(out))
	}
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	return r, nil
}

// Ping sends count echo requests from node to dst, 0.2 s apart, and fails unless every one of them
// is answered: for a path that is warm (WarmUp), any loss is a fault.
func (tb *Testbed) Ping(ctx context.Context, from Node, dst netip.Addr, count int) error {
	r, err := tb.PingCount(ctx, from, dst, count, PingOptions{})
	if err != nil {
		return err
	}
	if r.Sent != count || r.Received != count {
		return fmt.Errorf("ping %s from %s: %d echo requests sent, %d answered; want all %d: %s", dst, from,
			r.Sent, r.Received, count, strings.TrimSpace(r.Output))
	}
	return nil
}

// MaxWarmUpLoss is how many echo requests the first exchange between two hosts through the gateway
// pair may lose, and why loss is inherent there: a gateway's worker takes a packet's next hop from a
// neighbour cache that never blocks, so a packet towards a neighbour not yet resolved is dropped
// (and counted) while the resolution it starts completes. A request and its reply cross four next
// hops that a fresh pair may not have resolved: gw1 → gw2, gw2 → the host, gw2 → gw1, gw1 → the
// host; each costs at most one echo.
const MaxWarmUpLoss = 4

// WarmUp sends one echo request at a time from node to dst (a second's wait each) until one is
// answered and returns how many were not; it fails when more than MaxWarmUpLoss are lost. Tests
// call it before the exchanges they count exactly, and keep its count apart.
func (tb *Testbed) WarmUp(ctx context.Context, from Node, dst netip.Addr) (lost int, err error) {
	for ; lost <= MaxWarmUpLoss; lost++ {
		r, err := tb.PingCount(ctx, from, dst, 1, PingOptions{Wait: time.Second})
		if err != nil {
			return lost, err
		}
		if r.Received == 1 {
			return lost, nil
		}
	}
	return lost, fmt.Errorf("warm-up ping %s from %s: %d echo requests unanswered; at most %d may be lost while the "+
		"gateways resolve their next hops", dst, from, lost, MaxWarmUpLoss)
}
