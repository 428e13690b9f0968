package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.Subscriber = (*Store)(nil)

// Subscribe implements [es.Subscriber.Subscribe]: it delivers the log after
// the subscription's checkpoint to handler, then waits for appends (woken
// in-process by every append), until ctx is cancelled or the handler fails.
// Checkpoints live in the Store. A second Subscribe with the same name
// waits until the first returns.
func (s *Store) Subscribe(ctx context.Context, name string, handler es.Handler, opts *es.SubscribeOpts) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	o := opts.WithDefaults()
	if err := o.Validate(); err != nil {
		return err
	}

	// One active instance per name.
	slot := s.subscriptionSlot(name)
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-slot }()

	sub := &subscription{s: s, name: name, o: &o, handler: handler}
	if err := sub.start(); err != nil {
		return err
	}
	err := sub.run(ctx)
	if ferr := sub.flush(); ferr != nil && err == nil {
		err = ferr
	}
	if ctx.Err() != nil && (err == nil || isCancel(ctx, err)) {
		return nil
	}
	return err
}

// subscriptionSlot returns the one-slot channel of the subscription name.
func (s *Store) subscriptionSlot(name string) chan struct{} {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.subActive == nil {
		s.subActive = make(map[string]chan struct{})
	}
	slot := s.subActive[name]
	if slot == nil {
		slot = make(chan struct{}, 1)
		s.subActive[name] = slot
	}
	return slot
}

// Checkpoint implements [es.Subscriber.Checkpoint].
func (s *Store) Checkpoint(ctx context.Context, name string) (es.Position, bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return es.Position{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return es.Position{}, false, fmt.Errorf("memstore: reading checkpoint %q: %w", name, err)
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	pos, ok := s.checkpoints[name]
	return pos, ok, nil
}

// DeleteCheckpoint implements [es.Subscriber.DeleteCheckpoint].
func (s *Store) DeleteCheckpoint(ctx context.Context, name string) (bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memstore: deleting checkpoint %q: %w", name, err)
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	_, ok := s.checkpoints[name]
	delete(s.checkpoints, name)
	return ok, nil
}

// advanceCheckpoint moves the checkpoint of name from expected to pos, as
// the SQL advance_checkpoint does: [es.ErrCheckpointConflict] when it is
// not at expected (a missing checkpoint is at the zero Position).
func (s *Store) advanceCheckpoint(name string, expected, pos es.Position) error {
	s.mu.RLock()
	var end es.Position
	if len(s.log) > 0 {
		end = s.log[len(s.log)-1].Position
	}
	s.mu.RUnlock()
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if end.Before(pos) {
		return fmt.Errorf("%w: checkpoint %q: position %s is beyond the last event of the log (%s)", es.ErrInvalidArgument, name, pos, end)
	}
	if pos.Before(expected) {
		return fmt.Errorf("%w: checkpoint %q: position %s is before the expected %s", es.ErrInvalidArgument, name, pos, expected)
	}
	if cur := s.checkpoints[name]; cur != expected {
		return fmt.Errorf("memstore: checkpoint %q is at %s, not at the expected %s: %w", name, cur, expected, es.ErrCheckpointConflict)
	}
	if s.checkpoints == nil {
		s.checkpoints = make(map[string]es.Position)
	}
	s.checkpoints[name] = pos
	return nil
}

// subscription is one running instance of a subscription.
type subscription struct {
	s       *Store
	name    string
	o       *es.SubscribeOpts
	handler es.Handler

	pos      es.Position // after the last event handled
	saved    es.Position // the saved checkpoint
	unsaved  int         // events handled since the last save
	lastSave time.Time

	failedAt es.Position // the event the handler last failed on
	failures int         // how often in a row
}

// start loads the checkpoint, or sets it as the options say.
func (sub *subscription) start() error {
	s := sub.s
	s.subMu.Lock()
	pos, ok := s.checkpoints[sub.name]
	s.subMu.Unlock()
	if !ok && sub.o.Start == es.StartFromEnd {
		s.mu.RLock()
		if n := len(s.log); n > 0 {
			pos = s.log[n-1].Position
		}
		s.mu.RUnlock()
		if err := s.advanceCheckpoint(sub.name, es.Position{}, pos); err != nil {
			return err
		}
	}
	sub.pos, sub.saved, sub.lastSave = pos, pos, time.Now()
	return nil
}

// run delivers events until ctx is cancelled or the handler fails.
func (sub *subscription) run(ctx context.Context) error {
	o := sub.o
	for {
		// Take the wake-up signal before reading: an append after the
		// read closes it.
		signal := sub.s.appendedSignal()
		batch := sub.read()
		for i := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := batch[i]
			if err := sub.handler(ctx, e); err != nil {
				if err := sub.failed(ctx, e, err); err != nil {
					return err
				}
				break // read again from the failed event
			}
			sub.failures = 0
			sub.pos = e.Position
			sub.unsaved++
			if sub.unsaved >= o.CheckpointEvery || time.Since(sub.lastSave) >= o.CheckpointInterval {
				if err := sub.flush(); err != nil {
					return err
				}
			}
		}
		if len(batch) == o.BatchSize || (len(batch) > 0 && sub.failures > 0) {
			continue
		}

		if err := sub.wait(ctx, signal); err != nil {
			return err
		}
	}
}

// wait waits for signal (an append), and saves the checkpoint when it is
// due meanwhile.
func (sub *subscription) wait(ctx context.Context, signal <-chan struct{}) error {
	var due <-chan time.Time
	if sub.unsaved > 0 {
		t := time.NewTimer(max(0, sub.o.CheckpointInterval-time.Since(sub.lastSave)))
		defer t.Stop()
		due = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-signal:
		return nil
	case <-due:
		return sub.flush()
	}
}

// failed records a handler failure on e: it saves the checkpoint of the
// events handled before e, and after a backoff returns nil to retry e, or
// the *es.HandlerError when the retries are used up.
func (sub *subscription) failed(ctx context.Context, e es.Event, err error) error {
	if ctx.Err() != nil {
		return ctx.Err() // stopping: e was not handled
	}
	if sub.failures == 0 || sub.failedAt != e.Position {
		sub.failedAt, sub.failures = e.Position, 0
	}
	sub.failures++
	if ferr := sub.flush(); ferr != nil {
		return ferr
	}
	if sub.failures > sub.o.HandlerRetries {
		return &es.HandlerError{Subscription: sub.name, Event: e, Attempts: sub.failures, Err: err}
	}
	t := time.NewTimer(sub.o.RetryWait(sub.failures))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// read returns up to BatchSize events after sub.pos that pass the filters.
func (sub *subscription) read() []es.Event {
	s := sub.s
	s.mu.RLock()
	log := s.log
	s.mu.RUnlock()
	i := sort.Search(len(log), func(i int) bool { return sub.pos.Before(log[i].Position) })
	var batch []es.Event
	for ; i < len(log) && len(batch) < sub.o.BatchSize; i++ {
		if sub.o.Matches(&log[i]) {
			batch = append(batch, clone(log[i]))
		}
	}
	return batch
}

// flush saves the checkpoint when events were handled since the last save.
// A conflict (the checkpoint was deleted while the subscription ran) stops
// the subscription with [es.ErrCheckpointConflict].
func (sub *subscription) flush() error {
	sub.lastSave = time.Now()
	if sub.pos == sub.saved {
		sub.unsaved = 0
		return nil
	}
	if err := sub.s.advanceCheckpoint(sub.name, sub.saved, sub.pos); err != nil {
		return err
	}
	sub.saved, sub.unsaved = sub.pos, 0
	return nil
}

// isCancel reports whether err is ctx's own cancellation.
func isCancel(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (err == ctx.Err() || err == context.Canceled || err == context.DeadlineExceeded)
}
