package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// parkedEvent is a parked event and whether it is resolved, as a row of
// pgstore's parked_events.
type parkedEvent struct {
	es.ParkedEvent
	resolved bool
}

// park records p for the subscription (as SQL park_event): parking an
// event again updates it. Guarded by subMu.
func (s *Store) park(p es.ParkedEvent) {
	if s.parked == nil {
		s.parked = make(map[string][]*parkedEvent)
	}
	p.ParkedAt = s.now()
	p.Error = truncateError(p.Error)
	list := s.parked[p.Subscription]
	i := slices.IndexFunc(list, func(q *parkedEvent) bool { return q.Event.Position == p.Event.Position })
	if i >= 0 {
		p.Attempts += list[i].Attempts
		list[i].ParkedEvent, list[i].resolved = p, false
		return
	}
	i, _ = slices.BinarySearchFunc(list, p.Event.Position, func(q *parkedEvent, pos es.Position) int {
		return q.Event.Position.Compare(pos)
	})
	s.parked[p.Subscription] = slices.Insert(list, i, &parkedEvent{ParkedEvent: p})
}

// retried records the outcome of a retry (as SQL parked_retried). Guarded
// by subMu.
func (s *Store) retried(name string, pos es.Position, handled bool, err error) {
	for _, p := range s.parked[name] {
		if p.Event.Position == pos && !p.resolved {
			p.Attempts++
			p.RetryRequested = false
			if handled {
				p.resolved = true
			} else if err != nil {
				p.Error = truncateError(err.Error())
			}
		}
	}
}

// unresolved returns the subscription's unresolved parked events. Guarded
// by subMu.
func (s *Store) unresolved(name string) []es.ParkedEvent {
	var out []es.ParkedEvent
	for _, p := range s.parked[name] {
		if !p.resolved {
			out = append(out, p.ParkedEvent)
		}
	}
	return out
}

// ParkedEvents implements [es.Subscriber.ParkedEvents].
func (s *Store) ParkedEvents(ctx context.Context, name string) ([]es.ParkedEvent, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: parked events of %q: %w", name, err)
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return s.unresolved(name), nil
}

// RetryParked implements [es.Subscriber.RetryParked].
func (s *Store) RetryParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	// The request goes on the earliest parked event of the stream, as SQL
	// retry_parked records it: the stream's parked events are retried in
	// order from there.
	found, err := s.resolveParked(ctx, name, pos, func(p *parkedEvent) {
		for _, q := range s.parked[name] {
			if !q.resolved && q.Event.StreamID == p.Event.StreamID {
				q.RetryRequested = true
				return
			}
		}
	})
	if found {
		s.progress.RetryRequested(name)
	}
	return found, err
}

// SkipParked implements [es.Subscriber.SkipParked].
func (s *Store) SkipParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	return s.resolveParked(ctx, name, pos, func(p *parkedEvent) { p.resolved, p.RetryRequested = true, false })
}

func (s *Store) resolveParked(ctx context.Context, name string, pos es.Position, do func(*parkedEvent)) (bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memstore: parked event %s of %q: %w", pos, name, err)
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, p := range s.parked[name] {
		if p.Event.Position == pos && !p.resolved {
			do(p)
			return true, nil
		}
	}
	return false, nil
}

// Park parks p at once (the plain form).
func (ss *session) Park(_ context.Context, p es.ParkedEvent) error {
	ss.s.subMu.Lock()
	defer ss.s.subMu.Unlock()
	ss.s.park(p)
	return nil
}

// Retried records the outcome of a retry at once (the plain form).
func (ss *session) Retried(_ context.Context, pos es.Position, handled bool, err error) error {
	ss.s.subMu.Lock()
	defer ss.s.subMu.Unlock()
	ss.s.retried(ss.name, pos, handled, err)
	return nil
}

// Parked returns the subscription's unresolved parked events.
func (ss *session) Parked(context.Context) ([]es.ParkedEvent, error) {
	ss.s.subMu.Lock()
	defer ss.s.subMu.Unlock()
	return ss.s.unresolved(ss.name), nil
}

// Park parks p when the transaction commits.
func (t *tx) Park(_ context.Context, p es.ParkedEvent) error {
	t.pending = append(t.pending, func() { t.ss.s.park(p) })
	return nil
}

// Retried records the outcome of a retry when the transaction commits.
func (t *tx) Retried(_ context.Context, pos es.Position, handled bool, err error) error {
	t.pending = append(t.pending, func() { t.ss.s.retried(t.ss.name, pos, handled, err) })
	return nil
}

// truncateError keeps the first 10,000 characters of an error's text, as
// the SQL functions store it.
func truncateError(msg string) string {
	n := 0
	for i := range msg {
		if n == 10000 {
			return msg[:i]
		}
		n++
	}
	return msg
}
