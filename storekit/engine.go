package storekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgevent/es"
)

// The subscription engine: what a subscription does, written once for
// every store. A store supplies a [Source], which opens [Session]s (one
// connection, one turn as the active instance of the name); the engine
// loads the checkpoint, reads batches, hands events to the handler in
// order, saves the checkpoint by compare-and-set, retries failed handlers,
// waits for wake-ups, and opens a new session when one fails.

// Source opens the sessions of one subscription on a store.
type Source interface {
	// Open waits until this instance may run the subscription (no other
	// instance of its name is active), prepares to be woken by appends,
	// and returns the session. It returns ctx's error when ctx ends first.
	Open(ctx context.Context) (Session, error)
}

// Session is one turn of a subscription on a store.
type Session interface {
	// Checkpoint returns the subscription's saved position and whether it
	// has one.
	Checkpoint(ctx context.Context) (es.Position, bool, error)
	// End returns the position of the last event a Read could return now
	// (the zero Position for an empty log).
	End(ctx context.Context) (es.Position, error)
	// Read returns up to max events after `after`, in the global order,
	// that pass the subscription's filters.
	Read(ctx context.Context, after es.Position, max int) ([]es.Event, error)
	// Hidden reports whether events after `after` exist that Read cannot
	// return yet (committed behind an older running transaction), and will
	// not be signalled again when they become readable.
	Hidden(ctx context.Context, after es.Position) (bool, error)
	// Advance moves the checkpoint from expected to pos, a compare-and-set
	// failing with [es.ErrCheckpointConflict]. It must work, if it can at
	// all, after the session's connection was lost (the engine saves what
	// it handled when a session ends).
	Advance(ctx context.Context, expected, pos es.Position) error
	// Wait waits up to d for a wake-up (an append may have stored events,
	// or a value arrives on wake) and reports whether one came. It keeps
	// the session alive meanwhile.
	Wait(ctx context.Context, d time.Duration, wake <-chan struct{}) (bool, error)
	// Keep renews whatever the session holds (a lease), when due; the
	// engine calls it before every read. An error ends the session.
	Keep(ctx context.Context) error
	// Begin starts a transaction for the transactional form.
	Begin(ctx context.Context) (Tx, error)
	// Parker parks events at once (the plain form).
	Parker
	// Parked returns the subscription's unresolved parked events, in the
	// global order.
	Parked(ctx context.Context) ([]es.ParkedEvent, error)
	// Report records what the instance says about itself, with the error
	// of a failing handler and, while it catches up, the events per second
	// it handles (0 otherwise), where operators read it (pgstore: the table
	// es.subscription_status, which subscription_health reads). The engine
	// reports only changes, and goes on when a report fails.
	Report(ctx context.Context, r Report, err error, rate float64) error
	// Behind counts the events after `after` that pass the subscription's
	// filters, committed or hidden (a progress estimate).
	Behind(ctx context.Context, after es.Position) (int64, error)
	// Close ends the session and gives up what it holds.
	Close()
}

// Tx is a transaction of the transactional form: the handler's writes and
// the checkpoint's advance commit together, or not at all.
type Tx interface {
	// Commit advances the checkpoint from expected to pos in the
	// transaction (compare-and-set) and commits it.
	Commit(ctx context.Context, expected, pos es.Position) error
	// Parker parks events in the transaction.
	Parker
	// Rollback rolls the transaction back, even when ctx has ended.
	Rollback()
}

// handlerTx is the [es.Tx] a transactional handler receives: the store's
// transaction, and the functions to run when it ends.
type handlerTx struct {
	tx        Tx
	before    []func(context.Context) error
	commits   []func()
	rollbacks []func()
}

func (h *handlerTx) OnCommit(fn func())                              { h.commits = append(h.commits, fn) }
func (h *handlerTx) OnRollback(fn func())                            { h.rollbacks = append(h.rollbacks, fn) }
func (h *handlerTx) BeforeCommit(fn func(ctx context.Context) error) { h.before = append(h.before, fn) }

// beforeCommit runs the BeforeCommit functions in order, up to the first
// error.
func (h *handlerTx) beforeCommit(ctx context.Context) error {
	for _, fn := range h.before {
		if err := fn(ctx); err != nil {
			return err
		}
	}
	return nil
}

// end runs the functions registered for the outcome, rollbacks in reverse
// order (undo).
func (h *handlerTx) end(committed bool) {
	if committed {
		for _, fn := range h.commits {
			fn()
		}
		return
	}
	for i := len(h.rollbacks) - 1; i >= 0; i-- {
		h.rollbacks[i]()
	}
}

// StoreTx returns the store's transaction under tx, an [es.Tx] the engine
// handed to a transactional handler, or nil when tx is not one: stores use
// it to give the handler their own transaction type (pgstore.PgxTx).
func StoreTx(tx es.Tx) Tx {
	if h, ok := tx.(*handlerTx); ok {
		return h.tx
	}
	return nil
}

// Report is what an instance reports about itself ([Session.Report]).
type Report string

const (
	// ReportRunning: the instance follows the log.
	ReportRunning Report = "running"
	// ReportRetrying: the handler failed on an event; the instance will
	// hand it the event again.
	ReportRetrying Report = "retrying"
	// ReportFailed: the handler's retries are used up; the instance
	// stopped.
	ReportFailed Report = "failed"
	// ReportStopped: the instance stopped (its context ended).
	ReportStopped Report = "stopped"
)

// StallAfter is how long a running subscription with events waiting may
// leave its checkpoint where it is before its health is "stalled" (SQL
// subscription_health's default p_stall).
const StallAfter = time.Minute

// ErrSessionLost is wrapped by the errors a store returns when its session
// broke (a lost connection) while a handler ran: the engine then opens a
// new session instead of counting a handler failure.
var ErrSessionLost = errors.New("storekit: the subscription's session was lost")

// Stage is a point of a session the engine reports to [Config.Observe].
type Stage int

const (
	// StageOpened: the session is open (the instance is the active one and
	// will be woken by appends) and about to load its checkpoint.
	StageOpened Stage = iota + 1
	// StageCaughtUp: the session has read the whole visible log.
	StageCaughtUp
)

// Config is a subscription run by [Run].
type Config struct {
	// Name is the subscription's name, valid (see
	// [ValidateSubscriptionName]).
	Name string
	// Opts are the subscription's options, with defaults (see [Options]).
	Opts es.SubscribeOpts
	// Handler is the plain (at-least-once) handler; TxHandler the
	// transactional one. Exactly one is set.
	Handler   es.Handler
	TxHandler es.TxHandler
	// Progress, when set, is told the subscription's status and how far
	// it has handled the log (see [Progress]).
	Progress *Progress

	// PollInterval is the longest the engine waits without reading (the
	// fallback poll). Defaults to an hour.
	PollInterval time.Duration
	// RepollDelay is how soon the engine reads again after a read that
	// found events or followed a wake-up. Defaults to 0.
	RepollDelay time.Duration
	// ReconnectBackoff and ReconnectBackoffMax bound the wait before a new
	// session after one failed (doubling). Default to 100 ms and 5 s.
	ReconnectBackoff, ReconnectBackoffMax time.Duration
	// TxMaxDuration is how long a transaction of the transactional form
	// runs at most before it commits (at least one event). Defaults to
	// 20 ms.
	TxMaxDuration time.Duration
	// Fatal reports whether a session's error cannot be cured by a new
	// session, so that Run returns it. Defaults to none (but for invalid
	// arguments, read-only stores and handler errors, always fatal).
	Fatal func(error) bool
	// Observe, when set, is called at each [Stage] of each session, for
	// tests. It must not block. Defaults to nil.
	Observe func(Stage)
	// Logger receives the subscription's log records: Opts.Logger when
	// set, else this (the store's), else none.
	Logger *slog.Logger
}

// Run runs the subscription until ctx is cancelled (it saves the checkpoint
// of the events handled and returns nil) or an error that a new session
// cannot cure: a *[es.HandlerError] when the handler's retries are used
// up, or an error Config.Fatal accepts (wrapped). Other errors are passed to
// Opts.OnError and a new session is opened after a backoff.
func Run(ctx context.Context, src Source, cfg Config) error {
	if (cfg.Handler == nil) == (cfg.TxHandler == nil) {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, cfg.Name)
	}
	cfg.PollInterval = orDefault(cfg.PollInterval, time.Hour)
	cfg.ReconnectBackoff = orDefault(cfg.ReconnectBackoff, 100*time.Millisecond)
	cfg.ReconnectBackoffMax = max(orDefault(cfg.ReconnectBackoffMax, 5*time.Second), cfg.ReconnectBackoff)
	cfg.TxMaxDuration = orDefault(cfg.TxMaxDuration, 20*time.Millisecond)
	r := &runner{cfg: &cfg, o: &cfg.Opts, log: logger(&cfg)}
	r.progress = cfg.Progress.start(cfg.Name, cfg.Opts.OnStatus)
	defer r.progress.stop()

	backoff := cfg.ReconnectBackoff
	for {
		err := r.session(ctx, src)
		var herr *es.HandlerError
		switch {
		case errors.As(err, &herr):
			r.log.Error("subscription stopped: its handler failed", "event", herr.Event.Position,
				"stream_id", herr.Event.StreamID, "event_type", herr.Event.Type, "attempts", herr.Attempts, "error", herr.Err)
			return err
		case ctx.Err() != nil:
			r.log.Info("subscription stopped", "position", r.pos)
			return nil
		case errors.Is(err, ErrPartitionTaken):
			r.log.Debug("partition taken by another member of its group")
			return err
		case r.fatal(err):
			r.log.Error("subscription stopped", "error", err)
			return fmt.Errorf("subscription %q: %w", cfg.Name, err)
		}
		r.progress.closed(err)
		r.log.Warn("subscription session failed; opening a new one", "error", err, "backoff", backoff)
		if r.o.OnError != nil {
			r.o.OnError(fmt.Errorf("subscription %q: %w", cfg.Name, err))
		}
		if r.healthy || errors.Is(err, es.ErrCheckpointConflict) {
			backoff = cfg.ReconnectBackoff
		}
		r.healthy = false
		if !Sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, cfg.ReconnectBackoffMax)
	}
}

// logger returns the subscription's logger (a discarding one for none).
func logger(cfg *Config) *slog.Logger {
	l := cfg.Opts.Logger
	if l == nil {
		l = cfg.Logger
	}
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("subscription", cfg.Name)
}

func (r *runner) fatal(err error) bool {
	return errors.Is(err, es.ErrInvalidArgument) || errors.Is(err, es.ErrReadOnly) ||
		(r.cfg.Fatal != nil && r.cfg.Fatal(err))
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Sleep waits d, or returns false when ctx ends first. Stores use it for
// their own waits (a lease taken by another instance).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runner is one running instance of a subscription.
type runner struct {
	cfg      *Config
	o        *es.SubscribeOpts
	log      *slog.Logger
	progress *instance // nil without Config.Progress
	s        Session   // the current session
	healthy  bool      // the current session got as far as following the log
	reported Report    // what the current session last reported
	rate     float64   // the rate it last reported
	meter    meter     // progress while catching up
	park     parking   // parked events (ParkOnFailure)

	pos      es.Position // after the last event handled
	saved    es.Position // the saved checkpoint
	unsaved  int         // events handled (plain form) since the last save
	lastSave time.Time

	failedAt es.Position // the event the handler last failed on
	failures int         // how often in a row
	single   int         // >0: hand this many events over one per transaction (a BeforeCommit failed)
	retry    bool        // read again at once: a failed event is to be retried, or a batch was cut short
	limit    int         // >0: handle at most this many events of the next batch (transactional retry)

	chasing     time.Duration // >0: the re-read delay while committed events are hidden
	hiddenSince time.Time     // when events were first found hidden (zero when none are)
}

// While committed events are hidden behind an older running transaction,
// the engine re-reads every RepollDelay for chaseFast, then backs off,
// doubling the delay up to maxChase.
const (
	chaseFast = 250 * time.Millisecond
	maxChase  = time.Second
)

// session runs one session: open, load the checkpoint, catch up, follow.
func (r *runner) session(ctx context.Context, src Source) (err error) {
	s, err := src.Open(ctx)
	if err != nil {
		return err
	}
	r.s, r.reported, r.rate = s, "", 0
	defer func() {
		if ferr := r.flushOnExit(); ferr != nil && err == nil {
			err = ferr
		}
		r.reportOnExit(ctx, err)
		s.Close()
		r.s = nil
	}()
	r.observe(StageOpened)
	if err := r.load(ctx); err != nil {
		return err
	}
	r.healthy = true
	r.log.Info("subscription active", "checkpoint", r.pos)
	r.report(ctx, ReportRunning, nil, 0)
	r.meter.start(time.Now())
	return r.follow(ctx)
}

// report tells the session what the instance is doing, when it changed.
func (r *runner) report(ctx context.Context, rep Report, err error, rate float64) {
	if rep == r.reported && err == nil && rate == r.rate {
		return
	}
	if r.s.Report(ctx, rep, err, rate) == nil {
		r.reported, r.rate = rep, rate
	}
}

// recovered reports running again after the handler failed: an event was
// handled, or parked.
func (r *runner) recovered(ctx context.Context) {
	if r.reported == ReportRetrying {
		r.report(ctx, ReportRunning, nil, 0)
	}
}

// reportOnExit reports why a session that followed the log ends: its
// handler failed for good, or the subscription stops.
func (r *runner) reportOnExit(ctx context.Context, err error) {
	if r.reported == "" {
		return // never got as far as following the log
	}
	var herr *es.HandlerError
	rep := ReportStopped
	switch {
	case errors.As(err, &herr):
		rep, err = ReportFailed, herr.Err
	case ctx.Err() == nil:
		return // a failed session: a new one reports again
	default:
		err = nil
	}
	rctx, cancel := context.WithTimeout(context.Background(), flushOnExitTimeout)
	defer cancel()
	r.report(rctx, rep, err, 0)
}

func (r *runner) observe(st Stage) {
	if r.cfg.Observe != nil {
		r.cfg.Observe(st)
	}
}

// load reads the checkpoint, or sets it at the end of the log for a new
// subscription that starts there.
func (r *runner) load(ctx context.Context) error {
	pos, exists, err := r.s.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if !exists && r.o.Start == es.StartFromEnd {
		if pos, err = r.s.End(ctx); err != nil {
			return err
		}
		if err := r.s.Advance(ctx, es.Position{}, pos); err != nil {
			return err
		}
	}
	r.pos, r.saved, r.unsaved, r.lastSave = pos, pos, 0, time.Now()
	r.retry, r.limit, r.single = false, 0, 0
	if _, err := r.loadParked(ctx); err != nil {
		return err
	}
	r.progress.opened(pos)
	return nil
}

// follow catches up and then follows the log: it reads a batch, handles
// it, and reads again at once when the batch was full; otherwise it waits
// for a wake-up, RepollDelay after a read that found events or followed a
// wake-up, or PollInterval, whichever comes first.
func (r *runner) follow(ctx context.Context) error {
	cfg, o := r.cfg, r.o
	notified, caughtUp := false, false
	for {
		n, err := r.step(ctx)
		if err != nil {
			return err
		}
		caughtUpNow := n < o.BatchSize && !r.retry
		if err := r.measure(ctx, caughtUpNow); err != nil {
			return fmt.Errorf("measuring progress: %w", err)
		}
		if !caughtUpNow {
			if n == o.BatchSize {
				r.progress.state(es.SubscriptionCatchingUp, nil)
			}
			r.retry = false
			continue
		}
		r.progress.state(es.SubscriptionLive, nil)
		if err := r.retryParked(ctx); err != nil {
			return err
		}
		if !caughtUp {
			caughtUp = true
			r.log.Debug("subscription caught up", "position", r.pos)
			r.observe(StageCaughtUp)
		}
		delay := cfg.PollInterval
		if n > 0 || notified {
			// An append that did not signal (notifications are coalesced)
			// may commit just after the one that did.
			delay = min(delay, cfg.RepollDelay)
		}
		if n > 0 {
			r.chasing, r.hiddenSince = 0, time.Time{}
		} else if delay, err = r.chase(ctx, delay); err != nil {
			return err
		}
		notified = false
		readAt := time.Now().Add(delay)
		for {
			now := time.Now()
			if !now.Before(readAt) {
				break
			}
			wake := readAt
			var saveAt time.Time
			if r.unsaved > 0 {
				saveAt = r.lastSave.Add(o.CheckpointInterval)
				wake = earliest(wake, saveAt)
			}
			got, err := r.s.Wait(ctx, max(wake.Sub(now), 0), r.progress.wakeup())
			if err != nil {
				return fmt.Errorf("waiting: %w", err)
			}
			if got {
				notified = true
				if n == 0 {
					break // idle: read at once
				}
				// Busy (the last read found events): the read due at
				// readAt, RepollDelay after it, covers this wake-up, so
				// that a stream of wake-ups costs at most one read per
				// RepollDelay.
			}
			if r.unsaved > 0 && !time.Now().Before(saveAt) {
				if err := r.flush(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// chase returns the delay before the next read after a read that found
// nothing: when committed events are hidden behind an older transaction
// that is still running, they will not be signalled again when it ends, so
// read again soon, backing off (up to a second) while they stay hidden.
func (r *runner) chase(ctx context.Context, delay time.Duration) (time.Duration, error) {
	hidden, err := r.s.Hidden(ctx, r.pos)
	if err != nil {
		return 0, err
	}
	switch {
	case !hidden:
		r.chasing, r.hiddenSince = 0, time.Time{}
		return delay, nil
	case r.hiddenSince.IsZero() || time.Since(r.hiddenSince) < chaseFast:
		// Most often a short transaction (another subscription's batch,
		// an append in flight): keep re-reading at RepollDelay for a
		// while.
		if r.hiddenSince.IsZero() {
			r.hiddenSince = time.Now()
		}
		r.chasing = min(r.cfg.RepollDelay, r.cfg.PollInterval)
	default:
		r.chasing = min(max(2*r.chasing, r.cfg.RepollDelay), r.cfg.PollInterval, maxChase)
	}
	return r.chasing, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// step reads one batch after r.pos and handles it. It returns the number
// of events read.
func (r *runner) step(ctx context.Context) (int, error) {
	if err := r.s.Keep(ctx); err != nil {
		return 0, err
	}
	if r.park.stale {
		if _, err := r.loadParked(ctx); err != nil {
			return 0, err
		}
	}
	// A filtered read says nothing of the events it skips after the last
	// one it returns: while a WaitFor waits for a position ahead, read the
	// end of the log first, so that a read that does not fill its batch
	// shows everything up to that end handled.
	var end es.Position
	filtered := len(r.o.Categories) > 0 || len(r.o.EventTypes) > 0
	if filtered && r.progress.wantsBeyond(r.pos) {
		var err error
		if end, err = r.s.End(ctx); err != nil {
			return 0, fmt.Errorf("reading the end of the log: %w", err)
		}
	}
	batch, err := r.s.Read(ctx, r.pos, r.o.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("reading: %w", err)
	}
	if r.single > 0 && (r.limit == 0 || r.limit > 1) {
		r.limit = 1
	}
	n := len(batch)
	if n > 0 {
		if r.limit > 0 && len(batch) > r.limit {
			// Only the events before a failed one: the rest is read
			// again at once, and this read says nothing of the end.
			batch = batch[:r.limit]
			r.retry = true
		}
		r.limit = 0
		if r.cfg.TxHandler != nil {
			err = r.handleTx(ctx, batch)
		} else {
			err = r.handlePlain(ctx, batch)
		}
		if err != nil {
			return n, err
		}
	}
	if n < r.o.BatchSize && !r.retry && r.pos.Before(end) {
		r.progress.handled(end)
	}
	return n, nil
}

// handlePlain hands the events to the plain handler one by one, saving the
// checkpoint as the options say.
func (r *runner) handlePlain(ctx context.Context, batch []es.Event) error {
	o := r.o
	for _, e := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		parked, err := r.parkIfDue(ctx, r.s, e)
		if err != nil {
			return err
		}
		if parked {
			r.pos = e.Position
			r.progress.handled(r.pos)
			r.unsaved++
			continue
		}
		if err := r.cfg.Handler(ctx, e); err != nil {
			// e is retried or parked when read again (r.retry), or the
			// subscription stops.
			return r.failed(ctx, e, err)
		}
		r.failures = 0
		r.pos = e.Position
		r.progress.handled(r.pos)
		r.meter.handled++
		r.recovered(ctx)
		r.unsaved++
		if r.unsaved >= o.CheckpointEvery || time.Since(r.lastSave) >= o.CheckpointInterval {
			if err := r.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// handleTx hands the events to the transactional handler in one
// transaction that also advances the checkpoint. The transaction holds back
// every reader of the global log while it runs (PostgreSQL: from its first
// write): it commits after TxMaxDuration even when fewer events are handled,
// and the rest are read again at once.
func (r *runner) handleTx(ctx context.Context, batch []es.Event) error {
	stx, err := r.s.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning: %w", err)
	}
	tx := &handlerTx{tx: stx}
	// Parking done in the transaction goes with it.
	r.park.begin()
	parkedInTx := false
	undoParking := func() {
		r.park.rollback()
		r.park.stale = r.park.stale || parkedInTx
	}
	rollback := func() {
		stx.Rollback()
		tx.end(false)
		undoParking()
	}
	deadline := time.Now().Add(r.cfg.TxMaxDuration)
	for i, e := range batch {
		if err := ctx.Err(); err != nil {
			rollback()
			return err
		}
		if i > 0 && !time.Now().Before(deadline) {
			batch = batch[:i]
			r.retry = true
			break
		}
		parked, err := r.parkIfDue(ctx, stx, e)
		if err != nil {
			rollback()
			return err
		}
		if parked {
			parkedInTx = true
			continue
		}
		if err := r.cfg.TxHandler(ctx, tx, e); err != nil {
			rollback()
			if errors.Is(err, ErrSessionLost) {
				return err // not the handler's fault: a new session
			}
			if i > 0 {
				// The events before e were rolled back with it: handle
				// them (only them) again first, then retry e.
				r.limit = i
			}
			return r.failed(ctx, e, err)
		}
	}
	if err := tx.beforeCommit(ctx); err != nil {
		rollback()
		if errors.Is(err, ErrSessionLost) || ctx.Err() != nil {
			return cmpErr(ctx.Err(), err)
		}
		if len(batch) > 1 {
			// Which event's writes failed is not known: hand them over
			// one per transaction.
			r.single, r.retry = len(batch), true
			return nil
		}
		return r.failed(ctx, batch[0], err)
	}
	last := batch[len(batch)-1].Position
	// Once the events are handled, stopping (ctx ending) lets the commit
	// finish rather than interrupt it: an interrupted commit may or may not
	// have committed, and the handler's OnCommit functions would not run
	// for one that did.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushOnExitTimeout)
	err = stx.Commit(cctx, r.saved, last)
	cancel()
	if err != nil {
		tx.end(false)
		undoParking()
		return err
	}
	tx.end(true)
	r.single = max(r.single-len(batch), 0)
	r.meter.handled += int64(len(batch))
	r.recovered(ctx)
	r.failures = 0
	r.pos, r.saved, r.lastSave = last, last, time.Now()
	r.progress.handled(last)
	return nil
}

// failed records a handler failure on e (the events before it are handled,
// or in the transactional form are to be handled again): it saves the
// checkpoint of the handled events, and after a backoff returns nil to
// retry e; when the retries are used up, it returns nil with e due to be
// parked (ParkOnFailure), or the *es.HandlerError. On nil, r.retry is set:
// the caller reads again from e.
func (r *runner) failed(ctx context.Context, e es.Event, err error) error {
	if ctx.Err() != nil {
		return ctx.Err() // stopping: e was not handled
	}
	if r.failures == 0 || r.failedAt != e.Position {
		r.failedAt, r.failures = e.Position, 0
	}
	r.failures++
	if ferr := r.flush(ctx); ferr != nil {
		return ferr
	}
	if r.failures > r.o.HandlerRetries {
		if r.o.OnFailure == es.ParkOnFailure {
			r.parkNext(e, err)
			r.recovered(ctx)
			return nil
		}
		return &es.HandlerError{Subscription: r.cfg.Name, Event: e, Attempts: r.failures, Err: err}
	}
	r.progress.state(es.SubscriptionRetrying, err)
	r.report(ctx, ReportRetrying, err, 0)
	r.log.Warn("handler failed; retrying", "event", e.Position, "stream_id", e.StreamID, "event_type", e.Type,
		"attempt", r.failures, "error", err, "wait", RetryWait(r.o, r.failures))
	if !Sleep(ctx, RetryWait(r.o, r.failures)) {
		return ctx.Err()
	}
	r.retry = true
	return nil
}

// flush saves the checkpoint when events were handled since the last save.
func (r *runner) flush(ctx context.Context) error {
	r.lastSave = time.Now()
	if r.pos == r.saved {
		r.unsaved = 0
		return nil
	}
	if err := r.s.Advance(ctx, r.saved, r.pos); err != nil {
		return err
	}
	r.saved, r.unsaved = r.pos, 0
	return nil
}

// flushOnExitTimeout bounds the checkpoint save of a session that ends.
const flushOnExitTimeout = 5 * time.Second

// flushOnExit saves the checkpoint of the handled events when a session
// ends, even when ctx has been cancelled. The compare-and-set keeps that
// safe should another instance have taken over meanwhile.
func (r *runner) flushOnExit() error {
	if r.pos == r.saved {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushOnExitTimeout)
	defer cancel()
	return r.flush(ctx)
}
