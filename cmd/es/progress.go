package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress shows how far a long operation is: on a terminal a bar redrawn
// in place, otherwise a plain line at most every plainEvery.
type progress struct {
	w        io.Writer
	terminal bool
	label    string
	unit     string    // what is counted: "events", "streams"
	last     time.Time // when a plain line was last written
}

// plainEvery is how often progress writes a line when not on a terminal.
const plainEvery = time.Second

// newProgress returns a progress of events for w; a terminal gets the bar.
func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, terminal: isTerminal(w), label: label, unit: "events"}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// show shows done of total at rate per second, and the time left.
func (p *progress) show(done, total int64, rate float64) {
	done = min(max(done, 0), total)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	eta := "?"
	switch {
	case done == total:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s %5.1f%% %d/%d %s, %.0f/s, %s left", p.label, pct, done, total, p.unit, rate, eta)
	if p.terminal {
		const width = 30
		filled := int(pct / 100 * width)
		fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), line)
		return
	}
	if time.Since(p.last) >= plainEvery || done == total {
		fmt.Fprintln(p.w, line)
		p.last = time.Now()
	}
}

// done ends the bar's line.
func (p *progress) done(msg string) {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
	fmt.Fprintln(p.w, msg)
}
