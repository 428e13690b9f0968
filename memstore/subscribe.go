package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.TxSubscriber = (*Store)(nil)

// Subscribe implements [es.Subscriber.Subscribe] with the subscription
// engine of package storekit, like pgstore: it delivers the log after the
// subscription's checkpoint to handler, then waits for appends (woken
// in-process by every append), until ctx is cancelled or the handler fails.
// Checkpoints live in the Store. A second Subscribe with the same name
// waits until the first returns.
func (s *Store) Subscribe(ctx context.Context, name string, handler es.Handler, opts *es.SubscribeOpts) error {
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	return s.subscribe(ctx, name, opts, storekit.Config{Handler: handler})
}

// SubscribeTx implements [es.TxSubscriber.SubscribeTx] in memory: a
// transaction is the batch of events handed to the handler, and commits by
// advancing the checkpoint (a compare-and-set). The handler makes its own
// writes part of it with [es.Tx.OnRollback] (undo them) or
// [es.Tx.OnCommit] (apply them), so that a projection is tested, without
// PostgreSQL, through the interface it uses in production.
func (s *Store) SubscribeTx(ctx context.Context, name string, handler es.TxHandler, opts *es.SubscribeOpts) error {
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	return s.subscribe(ctx, name, opts, storekit.Config{TxHandler: handler})
}

func (s *Store) subscribe(ctx context.Context, name string, opts *es.SubscribeOpts, cfg storekit.Config) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	o, err := storekit.Options(opts)
	if err != nil {
		return err
	}
	cfg.Name, cfg.Opts, cfg.Progress, cfg.Logger = name, o, s.progress, s.logger
	if o.Partitions > 0 {
		return storekit.RunGroup(ctx, s.newGroupMember(name, &o), storekit.GroupConfig{Config: cfg, Rebalance: groupRebalance})
	}
	return storekit.Run(ctx, &source{s: s, name: name, o: &o}, cfg)
}

// groupRebalance is how often a consumer group member in memory looks for
// partitions to take or hand back.
const groupRebalance = 50 * time.Millisecond

// WaitFor implements [es.Subscriber.WaitFor].
func (s *Store) WaitFor(ctx context.Context, name string, pos es.Position) error {
	return s.progress.WaitForSubscription(ctx, storekit.WaitStore{
		Checkpoint: s.Checkpoint, GroupPartitions: s.groupPartitions, StreamOf: s.streamOf,
	}, name, pos)
}

// SubscriptionStatus implements [es.Subscriber.SubscriptionStatus].
func (s *Store) SubscriptionStatus(name string) es.SubscriptionStatus {
	return s.progress.Status(name)
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
	cp, ok := s.checkpoints[name]
	return cp.pos, ok, nil
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
	if err := s.refuseWhileRunning(name); err != nil {
		return false, err
	}
	_, ok := s.checkpoints[name]
	delete(s.checkpoints, name)
	return ok, nil
}

// advanceCheckpoint moves the checkpoint of name from expected to pos, as
// the SQL advance_checkpoint does: [es.ErrCheckpointConflict] when it is
// not at expected (a missing checkpoint is at the zero Position), and
// [es.ErrInvalidArgument] for a position before expected or beyond the last
// event of the log.
// The functions in with run, under the same lock, when it succeeds.
func (s *Store) advanceCheckpoint(name string, expected, pos es.Position, with ...func()) error {
	if err := s.checkCheckpointPosition(name, pos); err != nil {
		return err
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if pos.Before(expected) {
		return fmt.Errorf("%w: checkpoint %q: position %s is before the expected %s", es.ErrInvalidArgument, name, pos, expected)
	}
	if cur := s.checkpoints[name].pos; cur != expected {
		return fmt.Errorf("memstore: checkpoint %q is at %s, not at the expected %s: %w", name, cur, expected, es.ErrCheckpointConflict)
	}
	s.saveCheckpoint(name, pos)
	for _, fn := range with {
		fn()
	}
	return nil
}

// checkpoint is a saved checkpoint: its position and when it last moved.
type checkpoint struct {
	pos es.Position
	at  time.Time
}

// saveCheckpoint sets the checkpoint of name. Guarded by subMu.
func (s *Store) saveCheckpoint(name string, pos es.Position) {
	if s.checkpoints == nil {
		s.checkpoints = make(map[string]checkpoint)
	}
	s.checkpoints[name] = checkpoint{pos: pos, at: s.now()}
}

// ResetCheckpoint implements [es.Subscriber.ResetCheckpoint].
func (s *Store) ResetCheckpoint(ctx context.Context, name string, pos es.Position) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: resetting checkpoint %q: %w", name, err)
	}
	if err := s.checkCheckpointPosition(name, pos); err != nil {
		return err
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if err := s.refuseWhileRunning(name); err != nil {
		return err
	}
	s.saveCheckpoint(name, pos)
	return nil
}

// checkCheckpointPosition refuses a position beyond the last event of the
// log, and of the events removed from it: a checkpoint there would skip
// every event to come.
func (s *Store) checkCheckpointPosition(name string, pos es.Position) error {
	s.mu.RLock()
	removedEnd := s.removedEnd
	s.mu.RUnlock()
	if end := s.end(); end.Before(pos) && removedEnd.Before(pos) {
		return fmt.Errorf("%w: checkpoint %q: position %s is beyond the last event of the log (%s)", es.ErrInvalidArgument, name, pos, end)
	}
	return nil
}

// refuseWhileRunning returns es.ErrSubscriptionRunning when an instance of
// name runs. Guarded by subMu.
func (s *Store) refuseWhileRunning(name string) error {
	if s.heldLocked(name) {
		return fmt.Errorf("memstore: subscription %q is running: %w", name, es.ErrSubscriptionRunning)
	}
	return nil
}

// end returns the position of the last event of the log.
func (s *Store) end() es.Position {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n := len(s.log); n > 0 {
		return s.log[n-1].Position
	}
	return es.Position{}
}

// source opens the sessions of one subscription: a session is the name's
// one-slot channel, filled while it runs.
type source struct {
	s    *Store
	name string
	o    *es.SubscribeOpts
	// A consumer group's partition: the member's holder id, and which
	// partition (nil for an ordinary subscription).
	holder string
	part   *partitionOf
}

func (src *source) Open(ctx context.Context) (storekit.Session, error) {
	var slot chan struct{}
	if src.part != nil {
		var err error
		if slot, err = src.openPartition(); err != nil {
			return nil, err
		}
	} else {
		slot = src.s.subscriptionSlot(src.name)
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	src.s.subMu.Lock()
	if src.s.activeSince == nil {
		src.s.activeSince = make(map[string]time.Time)
	}
	src.s.activeSince[src.name] = src.s.now()
	src.s.subMu.Unlock()
	return &session{source: src, slot: slot}, nil
}

// session is a turn of a subscription as its active instance.
type session struct {
	*source
	slot chan struct{}
	// signal is closed by the first append after the last read (or wake).
	signal <-chan struct{}
}

func (ss *session) Checkpoint(ctx context.Context) (es.Position, bool, error) {
	return ss.s.Checkpoint(ctx, ss.name)
}

func (ss *session) End(context.Context) (es.Position, error) { return ss.s.end(), nil }

// Read returns up to max events after `after` that pass the filters. It
// takes the wake-up signal first, so that an append after the read wakes
// the next Wait.
func (ss *session) Read(_ context.Context, after es.Position, max int) ([]es.Event, error) {
	ss.signal = ss.s.appendedSignal()
	ss.s.mu.RLock()
	log := ss.s.log
	ss.s.mu.RUnlock()
	i := sort.Search(len(log), func(i int) bool { return after.Before(log[i].Position) })
	var batch []es.Event
	for ; i < len(log) && len(batch) < max; i++ {
		if storekit.Matches(ss.o, &log[i]) && ss.part.keeps(&log[i]) {
			batch = append(batch, clone(log[i]))
		}
	}
	return batch, nil
}

// Hidden is always false: an append is visible as soon as it returns.
func (ss *session) Hidden(context.Context, es.Position) (bool, error) { return false, nil }

func (ss *session) Advance(_ context.Context, expected, pos es.Position) error {
	return ss.s.advanceCheckpoint(ss.name, expected, pos)
}

// Wait waits for an append after the last read, a value on wake, or d.
func (ss *session) Wait(ctx context.Context, d time.Duration, wake <-chan struct{}) (bool, error) {
	if ss.signal == nil {
		ss.signal = ss.s.appendedSignal()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-ss.signal:
		ss.signal = ss.s.appendedSignal()
		return true, nil
	case <-wake:
		return true, nil
	case <-t.C:
		return false, nil
	}
}

func (ss *session) Keep(context.Context) error { return nil }

// Begin starts a transaction of the transactional form: nothing to do
// but remember the subscription (the engine runs the handler's OnCommit
// and OnRollback functions).
func (ss *session) Begin(context.Context) (storekit.Tx, error) { return &tx{ss: ss}, nil }

// tx is a transaction of the transactional form: it commits by advancing
// the checkpoint, and applies the parking it holds (pending) with it.
type tx struct {
	ss      *session
	pending []func() // run under subMu with the checkpoint's advance
}

func (t *tx) Commit(_ context.Context, expected, pos es.Position) error {
	return t.ss.s.advanceCheckpoint(t.ss.name, expected, pos, t.pending...)
}

func (t *tx) Rollback() { t.pending = nil }

func (ss *session) Close() {
	if ss.part != nil {
		ss.s.subMu.Lock()
		delete(ss.s.partitionHolder, ss.name)
		ss.s.subMu.Unlock()
	}
	<-ss.slot
}
