package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// report is what the active instance of a subscription last reported, as
// pgstore's subscription_status row holds it.
type report struct {
	state      storekit.Report
	err        string
	since      time.Time // when state last changed
	categories []string
	types      []string
	rate       float64
}

// Report records what the instance reports.
func (ss *session) Report(_ context.Context, r storekit.Report, err error, rate float64) error {
	s := ss.s
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.reports == nil {
		s.reports = make(map[string]report)
	}
	prev, ok := s.reports[ss.name]
	rep := report{state: r, since: s.now(), categories: slices.Clone(ss.o.Categories), types: slices.Clone(ss.o.EventTypes), rate: rate}
	if ok && prev.state == r {
		rep.since = prev.since
	}
	if err != nil {
		rep.err = truncateError(err.Error())
	}
	s.reports[ss.name] = rep
	return nil
}

// SubscriptionHealth implements [es.Subscriber.SubscriptionHealth] by the
// rules of pgstore's subscription_health: failing while the handler fails,
// idle without a running instance, live with nothing to handle, catching
// up while its checkpoint moved within [storekit.StallAfter], stalled
// otherwise. (memstore hides no event: HiddenEvents is always 0.)
func (s *Store) SubscriptionHealth(ctx context.Context, name string) (es.SubscriptionHealth, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return es.SubscriptionHealth{}, err
	}
	if err := ctx.Err(); err != nil {
		return es.SubscriptionHealth{}, fmt.Errorf("memstore: health of subscription %q: %w", name, err)
	}
	s.subMu.Lock()
	cp, hasCheckpoint := s.checkpoints[name]
	rep := s.reports[name]
	parked := int64(len(s.unresolved(name)))
	running := s.refuseWhileRunning(name) != nil
	var part *partitionOf
	if po, ok := s.partitionsOf[name]; ok {
		part = &po
	}
	s.subMu.Unlock()

	h := es.SubscriptionHealth{Name: name, Checkpoint: cp.pos, HasCheckpoint: hasCheckpoint, LastProgressAt: cp.at, ParkedEvents: parked}
	h.EventsBehind, h.OldestUnhandledAt = s.behind(cp.pos, &es.SubscribeOpts{Categories: rep.categories, EventTypes: rep.types}, part)
	if running && rep.state == storekit.ReportRunning {
		h.Rate = rep.rate
	}
	switch {
	case rep.state == storekit.ReportRetrying || rep.state == storekit.ReportFailed:
		h.Health, h.LastError = es.HealthFailing, rep.err
	case !running:
		h.Health = es.HealthIdle
	case h.EventsBehind == 0:
		h.Health = es.HealthLive
	case !s.now().Add(-storekit.StallAfter).After(latest(cp.at, s.leasedAt(name))):
		h.Health = es.HealthCatchingUp
	default:
		h.Health = es.HealthStalled
	}
	return h, nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// behind counts the events after `after` that o's filters and the
// partition part (nil: none) keep, and returns when the oldest of them was
// recorded, as SQL log_behind does.
func (s *Store) behind(after es.Position, o *es.SubscribeOpts, part *partitionOf) (n int64, oldest time.Time) {
	s.mu.RLock()
	log := s.log
	s.mu.RUnlock()
	for i := range log {
		if e := &log[i]; after.Before(e.Position) && storekit.Matches(o, e) && part.keeps(e) {
			n++
			if oldest.IsZero() || e.RecordedAt.Before(oldest) {
				oldest = e.RecordedAt
			}
		}
	}
	return n, oldest
}

// Behind counts the events after `after` that the subscription's filters
// keep.
func (ss *session) Behind(_ context.Context, after es.Position) (int64, error) {
	n, _ := ss.s.behind(after, ss.o, ss.part)
	return n, nil
}

// leasedAt returns when the running instance of name became the active one
// (pgstore: its lease's acquired_at).
func (s *Store) leasedAt(name string) time.Time {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return s.activeSince[name]
}
