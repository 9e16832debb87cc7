//go:build linux

package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testbed"
)

// observer is what a system may report beyond Carried (xdpsec does).
type observer interface {
	// counters are cumulative counters worth keeping with a result (drops by cause, sequence
	// reservations that fell behind).
	counters() map[string]uint64
	// workerPackets is how many packets each of gw1's workers sealed and each of gw2's opened so far.
	workerPackets() (sealed, opened []uint64)
	// replayErrors is the replay drops of gw2's inbound SAs so far.
	replayErrors() uint64
}

// observe returns a function that fills a result's extra fields with what changed since now.
func observe(sys System) func(*Result) {
	o, ok := sys.(observer)
	if !ok {
		return func(*Result) {}
	}
	c0, r0 := o.counters(), o.replayErrors()
	s0, o0 := o.workerPackets()
	return func(r *Result) {
		c1 := o.counters()
		s1, o1 := o.workerPackets()
		r.ReplayErrors = o.replayErrors() - r0
		r.Counters = map[string]uint64{}
		for k, v := range c1 {
			if d := v - c0[k]; d > 0 {
				r.Counters[k] = d
			}
		}
		r.WorkerSpread, r.WorkerSpreadIn = shares(s0, s1), shares(o0, o1)
	}
}

// shares is each worker's fraction of what the workers counted from a to b (nil for one worker).
func shares(a, b []uint64) []float64 {
	var tot uint64
	for i := range b {
		tot += b[i] - a[i]
	}
	if len(b) < 2 || len(a) != len(b) || tot == 0 {
		return nil
	}
	out := make([]float64, len(b))
	for i := range b {
		out[i] = float64(b[i]-a[i]) / float64(tot)
	}
	return out
}

// measureTCP runs iperf3 from h1 to h2 through the system.
func measureTCP(ctx context.Context, env *Env, sys System, streams int, d time.Duration) Result {
	res := Result{Phase: PhaseTCP, System: sys.Name(), Streams: streams}
	c0, err := sys.Carried(ctx)
	if err != nil {
		return failed(res, err)
	}
	done, m := observe(sys), markCPU()
	r, err := env.TB.Iperf3(ctx, testbed.IperfOptions{Dst: env.Topo.H2.Addr(false), Streams: streams, Duration: d})
	res.CPU = m.since()
	if err != nil {
		return failed(res, err)
	}
	c1, err := sys.Carried(ctx)
	if err != nil {
		return failed(res, err)
	}
	done(&res)
	res.Seconds = d.Seconds()
	res.Gbps = r.BitsPerSecond / 1e9
	res.Retransmits = r.Retransmits
	res.Delivered = Carried{Bytes: uint64(r.Bytes)}
	res.Carried = c1.minus(c0)
	return res
}

func failed(r Result, err error) Result {
	r.Error = err.Error()
	return r
}

// trial offers the generator's workload at rate (0: flat out) for d and counts what reached h2.
func trial(ctx context.Context, sys System, sink *Sink, gen *Generator, phase string, rate float64, d time.Duration) Result {
	res := Result{Phase: phase, System: sys.Name()}
	p0, b0, err := sink.Count()
	if err != nil {
		return failed(res, err)
	}
	c0, err := sys.Carried(ctx)
	if err != nil {
		return failed(res, err)
	}
	done, m := observe(sys), markCPU()
	start := time.Now()
	sent, err := gen.Paced(ctx, rate, d)
	el := time.Since(start)
	res.CPU = m.since()
	if err != nil {
		return failed(res, err)
	}
	// Let what is still queued in the gateways arrive: wait until the sink stops counting.
	p1, b1 := p0, b0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		time.Sleep(30 * time.Millisecond)
		p, b, err := sink.Count()
		if err != nil {
			return failed(res, err)
		}
		if p == p1 && p > p0 {
			break
		}
		p1, b1 = p, b
	}
	c1, err := sys.Carried(ctx)
	if err != nil {
		return failed(res, err)
	}
	done(&res)
	res.Seconds = el.Seconds()
	res.Offered = uint64(sent)
	res.Delivered = Carried{Packets: p1 - p0, Bytes: b1 - b0}
	res.Carried = c1.minus(c0)
	res.OfferedMpps = float64(sent) / el.Seconds() / 1e6
	res.Mpps = float64(res.Delivered.Packets) / el.Seconds() / 1e6
	if sent > 0 {
		res.Loss = max(0, 1-float64(res.Delivered.Packets)/float64(sent))
	}
	return res
}

// MaxLoss is the loss an RFC 2544 trial may show and still pass.
const MaxLoss = 0.001

// rfc2544 searches for the highest offered rate whose loss is at most MaxLoss (RFC 2544 §26.1,
// binary search), starting from guess (packets per second, e.g. what the system delivered flat
// out) with iters trials of d each. The result carries the last passing trial's figures; Mpps is
// its offered rate (what the system forwarded without loss).
func rfc2544(ctx context.Context, sys System, sink *Sink, gen *Generator, guess float64, iters int, d time.Duration) Result {
	lo, hi := 0.0, guess*1.1
	rate := guess * 0.9
	var best *Result
	var last Result
	var total time.Duration
	for range iters {
		r := trial(ctx, sys, sink, gen, PhaseRFC2544, rate, d)
		total += time.Duration(r.Seconds * float64(time.Second))
		if r.Error != "" {
			return r
		}
		last = r
		// The generator may not reach the rate asked: judge the rate it offered.
		offered := r.OfferedMpps * 1e6
		if r.Loss <= MaxLoss {
			lo = max(lo, offered)
			if best == nil || offered > best.OfferedMpps*1e6 {
				rr := r
				best = &rr
			}
			if offered < rate*0.95 {
				break // the generator itself is the limit
			}
		} else {
			hi = min(hi, offered)
		}
		rate = (lo + hi) / 2
		time.Sleep(100 * time.Millisecond) // let queues drain between trials
	}
	if best == nil {
		last.Mpps = 0
		last.Seconds = total.Seconds()
		return last
	}
	best.Mpps = best.OfferedMpps * (1 - best.Loss)
	return *best
}

// latency sends timestamped UDP probes from h1 to h2 (probeRate per second for d) while the
// generator offers load packets per second, and returns the one-way latency distribution: from
// just before the probe's sendto on h1 to its kernel receive timestamp on h2 (one clock: both are
// namespaces of one machine).
func latency(ctx context.Context, env *Env, sys System, gen *Generator, load float64, probeRate int, d time.Duration) Result {
	res := Result{Phase: PhaseLatency, System: sys.Name(), LoadPPS: load, Frame: "64"}
	tb, h1, h2 := env.TB, env.Topo.H1.Addr(false), env.Topo.H2.Addr(false)
	var rx, tx int
	err := tb.InNS(testbed.H2, func() error {
		var err error
		rx, err = udpSocket(h2.As4(), ProbePort)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		return unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	})
	if err != nil {
		return failed(res, fmt.Errorf("probe receiver: %w", err))
	}
	defer unix.Close(rx)
	err = tb.InNS(testbed.H1, func() error {
		var err error
		if tx, err = udpSocket(h1.As4(), 0); err != nil {
			return err
		}
		// No UDP checksum (IPv4 allows it): a partial one, left for the "hardware", would not
		// verify behind a forwarder that does not complete it (xsfwd).
		if err := unix.SetsockoptInt(tx, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			return err
		}
		return unix.Connect(tx, &unix.SockaddrInet4{Addr: h2.As4(), Port: ProbePort})
	})
	if err != nil {
		return failed(res, fmt.Errorf("probe sender: %w", err))
	}
	defer unix.Close(tx)

	var lat []float64
	var stopRX sync.WaitGroup
	stopped := make(chan struct{})
	stopRX.Add(1)
	go func() {
		defer stopRX.Done()
		buf, oob := make([]byte, 64), make([]byte, 128)
		for {
			n, oobn, _, _, err := unix.Recvmsg(rx, buf, oob, 0)
			if err != nil {
				select {
				case <-stopped:
					return
				default:
					continue // timeout: look at stopped again
				}
			}
			if n < 16 {
				continue
			}
			sent := int64(binary.LittleEndian.Uint64(buf[8:]))
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				continue
			}
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
					ts := unix.Timespec{Sec: int64(binary.LittleEndian.Uint64(m.Data)), Nsec: int64(binary.LittleEndian.Uint64(m.Data[8:]))}
					lat = append(lat, float64(ts.Nano()-sent)/1e3)
				}
			}
		}
	}()
	var bg sync.WaitGroup
	var bgErr error
	if load > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			_, bgErr = gen.Paced(ctx, load, d+200*time.Millisecond)
		}()
		time.Sleep(100 * time.Millisecond) // the load first
	}
	m := markCPU()
	sent := 0
	start := time.Now()
	buf := make([]byte, 16)
	for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
		if ahead := time.Duration(float64(i)/float64(probeRate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
		var now unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &now)
		binary.LittleEndian.PutUint64(buf, uint64(i))
		binary.LittleEndian.PutUint64(buf[8:], uint64(now.Nano()))
		if _, err := unix.Write(tx, buf); err == nil {
			sent++
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.CPU = m.since()
	bg.Wait()
	time.Sleep(300 * time.Millisecond)
	close(stopped)
	stopRX.Wait()
	if bgErr != nil {
		return failed(res, bgErr)
	}
	if len(lat) == 0 {
		return failed(res, fmt.Errorf("none of %d probes arrived", sent))
	}
	res.Latency = distribution(lat)
	res.Latency.Lost = sent - len(lat)
	res.Offered = uint64(sent)
	res.Delivered = Carried{Packets: uint64(len(lat))}
	return res
}

func udpSocket(addr [4]byte, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr, Port: port}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// distribution summarises latencies (µs).
func distribution(v []float64) *Latency {
	s := slices.Clone(v)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	l := &Latency{Samples: len(s), P50: q(0.5), P99: q(0.99), P999: q(0.999), Max: s[len(s)-1]}
	for p := 0; p <= 100; p++ {
		l.CDF = append(l.CDF, q(float64(p)/100))
	}
	l.CDF[0] = s[0]
	return l
}
