package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Capture is tcpdump on the wire tap's port towards gw1 (Options.WireTap): a gateway's AF_XDP
// transmissions skip its own interface's packet taps and the peer's XDP program takes packets before
// its taps, so only the hop in between sees the wire.
type Capture struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

// StartCapture writes the wire's packets to file (pcap), the first snap bytes of each (0: whole
// packets), with a large kernel buffer and tcpdump's extra arguments, and returns once tcpdump listens.
func (tb *Testbed) StartCapture(ctx context.Context, file string, snap int, extra ...string) (*Capture, error) {
	if !tb.wireTap {
		return nil, errors.New("capture: the testbed has no wire tap (Options.WireTap)")
	}
	cmd := tb.Command(ctx, SW, "tcpdump", append([]string{"-i", SWGW1, "-n", "-s", fmt.Sprint(snap), "-B", "131072",
		"-Z", "root", "-w", file}, extra...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	c := &Capture{cmd: cmd, stderr: new(bytes.Buffer), done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			c.stderr.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(listening)
			}
		}
		if !once {
			close(listening)
		}
	}()
	select {
	case <-listening:
		return c, nil
	case <-time.After(10 * time.Second):
		c.Kill()
		return nil, errors.New("tcpdump did not start")
	}
}

// Stop ends the capture and returns the packets tcpdump missed: those the filter received that never
// reached the file.
func (c *Capture) Stop() int {
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	<-c.done
	_ = c.cmd.Wait()
	var captured, received, dropped int
	for _, l := range strings.Split(c.stderr.String(), "\n") {
		switch {
		case strings.Contains(l, "packets captured"):
			fmt.Sscan(l, &captured)
		case strings.Contains(l, "received by filter"):
			fmt.Sscan(l, &received)
		case strings.Contains(l, "dropped by kernel"):
			fmt.Sscan(l, &dropped)
		}
	}
	// "Received by filter" counts every packet the kernel put in tcpdump's ring: those it dropped
	// for a full ring, and those still in a block not handed over when tcpdump stopped.
	return max(dropped, received-captured)
}

// Kill ends tcpdump at once (cleanup after a failure).
func (c *Capture) Kill() { _ = c.cmd.Process.Kill() }

// Report is tcpdump's summary lines.
func (c *Capture) Report() string { return c.stderr.String() }
