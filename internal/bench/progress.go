package bench

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// progress shows one bar per phase on a terminal (mpb), or one line per finished measurement
// elsewhere (CI logs).
type progress struct {
	mu    sync.Mutex
	p     *mpb.Progress
	bars  map[string]*mpb.Bar
	lines io.Writer
	done  map[string]int
	total map[string]int
	note  map[string]string
}

func newProgress(w io.Writer, totals map[string]int, order []string) *progress {
	pr := &progress{bars: map[string]*mpb.Bar{}, done: map[string]int{}, total: totals}
	if w == nil {
		return pr
	}
	if !isTerminal(w) {
		pr.lines = w
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(32))
	for _, ph := range order {
		n := totals[ph]
		if n == 0 {
			continue
		}
		pr.bars[ph] = pr.p.AddBar(int64(n),
			mpb.PrependDecorators(decor.Name(ph, decor.WC{W: 9, C: decor.DindentRight}), decor.CountersNoUnit("%d/%d", decor.WC{W: 8})),
			mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_GO, decor.WC{W: 6}), decor.Name(" "), decor.Any(pr.last(ph))))
	}
	return pr
}

// last shows the phase's latest figure beside its bar.
func (pr *progress) last(ph string) decor.DecorFunc {
	return func(decor.Statistics) string {
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return pr.note[ph]
	}
}

// step records one finished measurement of a phase, with a short description of its figure.
func (pr *progress) step(ph, what string) {
	pr.mu.Lock()
	pr.done[ph]++
	if pr.note == nil {
		pr.note = map[string]string{}
	}
	pr.note[ph] = what
	n, t := pr.done[ph], pr.total[ph]
	pr.mu.Unlock()
	if b := pr.bars[ph]; b != nil {
		b.Increment()
	}
	if pr.lines != nil {
		fmt.Fprintf(pr.lines, "bench: %-8s %3d/%-3d %s\n", ph, n, t, what)
	}
}

// finish completes the bars (phases that ended early are marked done) and waits for mpb.
func (pr *progress) finish() {
	if pr.p == nil {
		return
	}
	for _, b := range pr.bars {
		b.SetTotal(-1, true)
	}
	pr.p.Wait()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
