package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// IperfOptions describe one iperf3 run from h1 to h2.
type IperfOptions struct {
	Dst      netip.Addr    // h2's address; default the topology's (H2Addr4 in a testbed New built)
	Streams  int           // parallel streams (-P); default 1
	Duration time.Duration // test length (-t), whole seconds; default 5 s
	UDP      bool          // UDP instead of TCP
	Bitrate  string        // UDP target rate (-b), e.g. "1G"; default "0" (unlimited)
	Len      int           // UDP payload length (-l); 0 = iperf3's default
}

// IperfResult is what the receiver measured.
type IperfResult struct {
	BitsPerSecond float64
	Bytes         int64
	Packets       int64 // UDP only
	LostPackets   int64 // UDP only
	Retransmits   int64 // TCP only, sender side
}

func (r IperfResult) String() string {
	s := fmt.Sprintf("%.2f Gbit/s, %d bytes", r.BitsPerSecond/1e9, r.Bytes)
	if r.Packets > 0 {
		s += fmt.Sprintf(", %d packets, %d lost", r.Packets, r.LostPackets)
	} else {
		s += fmt.Sprintf(", %d retransmits", r.Retransmits)
	}
	return s
}

// Iperf3 runs an iperf3 server in h2 for exactly one test and a client in h1, and returns the
// receiver's figures. Every run is bounded by Duration plus a margin.
func (tb *Testbed) Iperf3(ctx context.Context, o IperfOptions) (IperfResult, error) {
	if !o.Dst.IsValid() {
		o.Dst = tb.topo.H2.Addr(false)
	}
	if o.Streams == 0 {
		o.Streams = 1
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	secs := int((o.Duration + time.Second - 1) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, o.Duration+20*time.Second)
	defer cancel()

	srv := tb.Command(ctx, H2, "iperf3", "-s", "-1", "-B", o.Dst.String())
	srvOut := new(LockedBuffer)
	srv.Stdout, srv.Stderr = srvOut, srvOut
	if err := srv.Start(); err != nil {
		return IperfResult{}, fmt.Errorf("start iperf3 server: %w", err)
	}
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}()
	args := []string{"-c", o.Dst.String(), "-t", fmt.Sprint(secs), "-P", fmt.Sprint(o.Streams), "-J"}
	if o.UDP {
		b := o.Bitrate
		if b == "" {
			b = "0"
		}
		// Without a large socket buffer iperf3's UDP loses 1-2 % on this machine (PERF-NOTES).
		args = append(args, "-u", "-b", b, "-w", "4M")
		if o.Len > 0 {
			args = append(args, "-l", fmt.Sprint(o.Len))
		}
	}
	var out []byte
	var err error
	// The server needs a moment to listen; retry a refused connection for a while rather than
	// sleep a fixed time.
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err = tb.Command(ctx, H1, "iperf3", args...).Output()
		// iperf3 -J may exit 0 after failing to connect; the JSON's error field says so.
		if !bytes.Contains(out, []byte("refused")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return IperfResult{}, fmt.Errorf("run iperf3 client: %w: %s (server: %s)", err, iperfError(out),
			srvOut.String())
	}
	res, err := parseIperf(out, o.UDP)
	if err != nil {
		return res, fmt.Errorf("%w (server: %s)", err, srvOut.String())
	}
	_ = srv.Wait()
	return res, nil
}

func iperfError(out []byte) string {
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(out, &j) == nil && j.Error != "" {
		return j.Error
	}
	return strings.TrimSpace(string(out))
}

func parseIperf(out []byte, udp bool) (IperfResult, error) {
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int64 `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			Sum struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Packets       int64   `json:"packets"`
				LostPackets   int64   `json:"lost_packets"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return IperfResult{}, fmt.Errorf("parse iperf3 output: %w", err)
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	if udp {
		s := j.End.Sum
		// The client's "sum" of a UDP test holds the server's loss figures; the rate the
		// receiver saw is the sent rate scaled by what arrived.
		r := IperfResult{Packets: s.Packets, LostPackets: s.LostPackets, Bytes: s.Bytes,
			BitsPerSecond: s.BitsPerSecond}
		if s.Packets > 0 {
			frac := float64(s.Packets-s.LostPackets) / float64(s.Packets)
			r.BitsPerSecond *= frac
			r.Bytes = int64(float64(r.Bytes) * frac)
		}
		return r, nil
	}
	return IperfResult{
		BitsPerSecond: j.End.SumReceived.BitsPerSecond,
		Bytes:         j.End.SumReceived.Bytes,
		Retransmits:   j.End.SumSent.Retransmits,
	}, nil
}

// LockedBuffer collects a child's output while the child runs, safe to read meanwhile.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
