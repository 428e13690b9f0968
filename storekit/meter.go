package storekit

import (
	"context"
	"time"

	"github.com/pgevent/es"
)

// meter measures a subscription's progress while it catches up: the rate
// it handles events at and how many remain, for [es.SubscribeOpts.OnProgress]
// and the rate it reports to its store.
type meter struct {
	active      bool      // catching up: measuring
	handled     int64     // events handled since the runner started
	last        time.Time // the last measure
	lastHandled int64     // handled at the last measure
	measures    int       // since the last count
	counted     int64     // events behind at the last count
	countedAt   int64     // handled at the last count
}

// countEvery is how many measures pass between two counts of the events
// behind (a count scans the backlog); in between, the events handled are
// taken off the last count.
const countEvery = 10

// start begins measuring (the session opened, or it fell behind).
func (m *meter) start(now time.Time) {
	m.active, m.last, m.lastHandled, m.measures = true, now, m.handled, 0
}

// measure is called after every read: while the subscription catches up,
// every ProgressInterval it counts (now and then) what remains, reports the
// rate and calls OnProgress; once it has caught up, it makes a last call
// and stops until the subscription falls behind again.
func (r *runner) measure(ctx context.Context, caughtUp bool) error {
	m, o := &r.meter, r.o
	now := time.Now()
	switch {
	case !m.active && !caughtUp:
		m.start(now)
		return nil
	case !m.active:
		return nil
	case !caughtUp && now.Sub(m.last) < o.ProgressInterval:
		return nil
	}
	p := es.SubscriptionProgress{Name: r.cfg.Name, Handled: m.handled, Position: r.pos, CaughtUp: caughtUp}
	if elapsed := now.Sub(m.last).Seconds(); elapsed > 0 {
		p.Rate = float64(m.handled-m.lastHandled) / elapsed
	}
	if !caughtUp {
		// Counting scans the backlog: only for OnProgress, which shows it.
		if o.OnProgress != nil && m.measures%countEvery == 0 {
			n, err := r.s.Behind(ctx, r.pos)
			if err != nil {
				return err
			}
			m.counted, m.countedAt = n, m.handled
		}
		m.measures++
		p.Behind = max(m.counted-(m.handled-m.countedAt), 0)
		if p.Rate > 0 {
			p.Remaining = time.Duration(float64(p.Behind) / p.Rate * float64(time.Second))
		}
		if r.reported != ReportRetrying { // a failing handler reports that
			r.report(ctx, ReportRunning, nil, p.Rate)
		}
	} else {
		m.active = false
		if r.reported != ReportRetrying {
			r.report(ctx, ReportRunning, nil, 0)
		}
	}
	m.last, m.lastHandled = now, m.handled
	if o.OnProgress != nil {
		o.OnProgress(p)
	}
	return nil
}
