package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress reports how far a long job has come. On a terminal it draws a progress bar with a
// rate and an estimate of the time left; on anything else (a file, a pipe, a CI log) it writes
// plain lines, without carriage returns, when another tenth of the work is done or
// PlainEvery has passed since the last line; with no writer it says nothing.
type Progress struct {
	w            io.Writer
	bar          *progressbar.ProgressBar
	total        int
	label, unit  string
	start, last  time.Time
	n, nextTenth int
}

// PlainEvery is the longest time between two plain progress lines.
const PlainEvery = 30 * time.Second

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewProgress starts reporting a job of total units (named unit, e.g. "steps") on w; w nil
// reports nothing.
func NewProgress(w io.Writer, total int, label, unit string) *Progress {
	now := time.Now()
	p := &Progress{w: w, total: total, label: label, unit: unit, start: now, last: now, nextTenth: 1}
	if w != nil && isTerminal(w) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

// Describe changes the label (the bar's description, or the plain lines' prefix).
func (p *Progress) Describe(label string) {
	p.label = label
	if p.bar != nil {
		p.bar.Describe(label)
	}
}

// Set says that n units are done.
func (p *Progress) Set(n int) {
	p.n = n
	switch {
	case p.w == nil:
	case p.bar != nil:
		_ = p.bar.Set(n)
	case p.total > 0 && n*10 >= p.nextTenth*p.total, time.Since(p.last) >= PlainEvery:
		for p.total > 0 && n*10 >= p.nextTenth*p.total {
			p.nextTenth++
		}
		p.line()
	}
}

// Add says that n more units are done.
func (p *Progress) Add(n int) { p.Set(p.n + n) }

// Finish ends the report: it clears the bar, or writes the last plain line if the
// previous one did not already say that everything was done.
func (p *Progress) Finish() {
	switch {
	case p.bar != nil:
		_ = p.bar.Finish()
	case p.w != nil && p.nextTenth <= 10:
		p.line()
	}
}

// line writes one plain progress line.
func (p *Progress) line() {
	p.last = time.Now()
	elapsed := time.Since(p.start)
	s := fmt.Sprintf("%s: %d/%d %s", p.label, p.n, p.total, p.unit)
	if p.total > 0 {
		s += fmt.Sprintf(" (%d %%)", p.n*100/p.total)
	}
	s += fmt.Sprintf(", %s elapsed", elapsed.Round(time.Second))
	if p.n > 0 && p.n < p.total {
		left := time.Duration(float64(elapsed) / float64(p.n) * float64(p.total-p.n))
		s += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	fmt.Fprintln(p.w, s)
}
