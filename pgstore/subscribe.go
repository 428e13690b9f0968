package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.Subscriber = (*Store)(nil)

// TxHandler handles one event in the transaction in which the
// subscription's checkpoint advances past it: what the handler writes with
// tx commits together with the checkpoint, or not at all, so each event's
// effect is applied exactly once even across crashes. The handler must not
// commit or roll back tx. One transaction covers up to
// [es.SubscribeOpts.BatchSize] events.
type TxHandler func(ctx context.Context, tx pgx.Tx, e es.Event) error

// Subscribe runs the subscription name with an at-least-once handler until
// ctx is cancelled (it returns nil) or the handler fails (a
// *[es.HandlerError]); see [es.Subscriber.Subscribe].
//
// It follows the log on a connection of its own, hijacked from the pool:
// it takes the subscription's lease (other instances of the name wait for
// it; see [es.SubscribeOpts.LeaseTTL]), LISTENs on [Store.Channel], reads
// the log from the
// checkpoint in batches, then reads again on each notification, shortly
// after every read that found events, and every PollInterval in any case.
// A lost connection is re-established with backoff, and the subscription
// LISTENs again and catches up from its checkpoint.
//
// The checkpoint is saved every [es.SubscribeOpts.CheckpointEvery] events
// or [es.SubscribeOpts.CheckpointInterval], when the handler fails, and
// when the subscription stops; after a crash the events handled since the
// last save are delivered again. Use [Store.SubscribeTx] when the handler
// writes to the same database and must apply each event once.
func (s *Store) Subscribe(ctx context.Context, name string, handler es.Handler, opts *es.SubscribeOpts) error {
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	return s.subscribe(ctx, name, handler, nil, opts)
}

// SubscribeTx runs the subscription name with a transactional handler: for
// each batch of events it opens a transaction, hands it to handler with
// every event, advances the checkpoint in it (a compare-and-set) and
// commits. Read-model writes made with the transaction and the checkpoint
// commit together: an event's effect is applied exactly once, whatever
// crashes. A handler error rolls the batch back (and retries or stops, see
// [es.SubscribeOpts.HandlerRetries]). Otherwise as [Store.Subscribe].
//
// The transaction runs on the subscription's listener connection, and
// advances the checkpoint by compare-and-set: should another instance have
// taken over (this one's lease having lapsed), the stale batch cannot
// commit.
func (s *Store) SubscribeTx(ctx context.Context, name string, handler TxHandler, opts *es.SubscribeOpts) error {
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	return s.subscribe(ctx, name, nil, handler, opts)
}

// subscribe runs sessions (one connection each) until ctx is cancelled or
// an error that reconnecting cannot cure.
func (s *Store) subscribe(ctx context.Context, name string, plain es.Handler, txh TxHandler, opts *es.SubscribeOpts) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	o := opts.WithDefaults()
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Categories != nil {
		o.Categories = append([]string(nil), o.Categories...)
	}
	if o.EventTypes != nil {
		o.EventTypes = append([]string(nil), o.EventTypes...)
	}
	sub := &subscription{s: s, name: name, o: &o, plain: plain, txh: txh, holder: uuid.NewString()}
	if len(o.Categories) > 0 {
		sub.categories = o.Categories
	}
	if len(o.EventTypes) > 0 {
		sub.types = o.EventTypes
	}

	backoff := o.ReconnectBackoff
	for {
		err := sub.session(ctx)
		if ctx.Err() != nil {
			var herr *es.HandlerError
			if errors.As(err, &herr) {
				return err
			}
			return nil
		}
		var herr *es.HandlerError
		if errors.As(err, &herr) {
			return err
		}
		if fatal(err) {
			return fmt.Errorf("pgstore: subscription %q: %w", name, err)
		}
		if o.OnError != nil {
			o.OnError(fmt.Errorf("pgstore: subscription %q: %w", name, err))
		}
		if sub.healthy || errors.Is(err, es.ErrCheckpointConflict) || errors.Is(err, errLeaseLost) {
			backoff = o.ReconnectBackoff
		}
		sub.healthy = false
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, max(o.ReconnectBackoffMax, o.ReconnectBackoff))
	}
}

// fatal reports whether err cannot be cured by reconnecting: a bad
// argument, a missing schema or function, refused credentials.
func fatal(err error) bool {
	if errors.Is(err, es.ErrInvalidArgument) || errors.Is(err, es.ErrReadOnly) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && len(pg.Code) == 5 {
		switch pg.Code[:2] {
		case "42", "3F", "3D", "28":
			return true
		}
	}
	return false
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// subscription is one running instance of a subscription.
type subscription struct {
	s          *Store
	name       string
	o          *es.SubscribeOpts
	plain      es.Handler
	txh        TxHandler
	categories []string // nil for all
	types      []string // nil for all

	l       *listener // the current session's connection
	healthy bool      // the current session got as far as following the log

	holder  string    // this instance's lease holder id
	renewed time.Time // when the lease was last taken or renewed

	pos      es.Position // after the last event handled
	saved    es.Position // the saved checkpoint
	unsaved  int         // events handled (plain form) since the last save
	lastSave time.Time

	failedAt es.Position   // the event the handler last failed on
	failures int           // how often in a row
	retry    bool          // read again at once: a failed event is to be retried
	limit    int           // >0: handle at most this many events of the next batch (transactional retry)
	chasing  time.Duration // >0: the re-read delay while committed events are hidden
	// hiddenSince is when the read first found committed events hidden
	// behind an older running transaction (zero when none are).
	hiddenSince time.Time
	batch       []es.Event
}

// session runs the subscription on one listener connection: take the
// lock, LISTEN, load the checkpoint, catch up, follow.
func (sub *subscription) session(ctx context.Context) (err error) {
	o := sub.o
	l, err := sub.s.connectListener(ctx, appName(sub.name))
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	sub.l = l
	// A standby can neither LISTEN nor save checkpoints: fail at once
	// rather than retry forever.
	var standby bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&standby); err != nil {
		l.close()
		sub.l = nil
		return fmt.Errorf("connecting: %w", err)
	}
	if standby {
		l.close()
		sub.l = nil
		return fmt.Errorf("the server is a hot standby (in recovery): %w", es.ErrReadOnly)
	}
	defer func() {
		if ferr := sub.flushOnExit(); ferr != nil && err == nil {
			err = ferr
		}
		sub.releaseLease()
		l.close()
		sub.l = nil
	}()

	// One active instance: wait for the lease, trying again every
	// LockPollInterval (each try is also a keepalive).
	for {
		ok, err := sub.s.acquireLease(ctx, l.conn, sub.name, sub.holder, o.LeaseTTL)
		if err != nil {
			return fmt.Errorf("taking the subscription's lease: %w", err)
		}
		l.lastUsed = time.Now()
		if ok {
			sub.renewed = l.lastUsed
			break
		}
		if !sleep(ctx, o.LockPollInterval) {
			return ctx.Err()
		}
	}
	// LISTEN before reading: an append that commits after the first read
	// has been notified to this connection.
	if err := l.listen(ctx, sub.s.Channel()); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	runHook(sub.name, "listening")
	if err := sub.load(ctx); err != nil {
		return err
	}
	sub.healthy = true
	return sub.follow(ctx)
}

// appName is the listener's application_name (at most 63 bytes).
func appName(name string) string {
	a := "es subscription " + name
	if len(a) > 63 {
		a = a[:63]
		for len(a) > 0 && a[len(a)-1]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
			a = a[:len(a)-1]
		}
		if len(a) > 0 && a[len(a)-1] >= 0xC0 {
			a = a[:len(a)-1]
		}
	}
	return a
}

// load reads the checkpoint, or sets it at the end of the log for a new
// subscription that starts there.
func (sub *subscription) load(ctx context.Context) error {
	pos, exists, err := sub.s.readCheckpoint(ctx, sub.l.conn, sub.name)
	if err != nil {
		return err
	}
	if !exists && sub.o.Start == es.StartFromEnd {
		var tx uint64
		var global int64
		err := sub.l.conn.QueryRow(ctx, "SELECT transaction_id, global_position FROM "+sub.s.config.Schema+
			".log_end()").Scan(&tx, &global)
		if err != nil {
			return fmt.Errorf("pgstore: subscription %q: finding the end of the log: %w", sub.name, interpretError(err))
		}
		pos = es.NewPosition(tx, global)
		if err := sub.s.advanceCheckpoint(ctx, sub.l.conn, sub.name, es.Position{}, pos); err != nil {
			return err
		}
	}
	sub.pos, sub.saved, sub.unsaved, sub.lastSave = pos, pos, 0, time.Now()
	sub.retry, sub.limit = false, 0
	sub.l.lastUsed = time.Now()
	return nil
}

// follow catches up and then follows the log: it reads a batch, handles
// it, and reads again at once when the batch was full; otherwise it waits
// for a notification, RepollDelay after a read that found events or
// followed a notification, or PollInterval, whichever comes first.
func (sub *subscription) follow(ctx context.Context) error {
	o := sub.o
	notified, caughtUp := false, false
	for {
		n, err := sub.step(ctx)
		if err != nil {
			return err
		}
		if n == o.BatchSize || sub.retry {
			sub.retry = false
			continue
		}
		if !caughtUp {
			caughtUp = true
			runHook(sub.name, "caught-up")
		}
		delay := o.PollInterval
		if n > 0 || notified {
			// An append that skipped notifying (notifications are
			// coalesced) may commit just after the one that did.
			delay = min(delay, o.RepollDelay)
		}
		if n > 0 {
			sub.chasing, sub.hiddenSince = 0, time.Time{}
		} else {
			// Committed events hidden behind an older transaction that is
			// still running will not be notified again when it ends: read
			// again soon, backing off (up to a second) while they stay
			// hidden.
			hidden, err := sub.hidden(ctx)
			if err != nil {
				return err
			}
			switch {
			case !hidden:
				sub.chasing, sub.hiddenSince = 0, time.Time{}
			case sub.hiddenSince.IsZero() || time.Since(sub.hiddenSince) < chaseFast:
				// Most often a short transaction (another
				// subscription's batch, an append in flight): keep
				// re-reading at RepollDelay for a while.
				if sub.hiddenSince.IsZero() {
					sub.hiddenSince = time.Now()
				}
				sub.chasing = min(o.RepollDelay, o.PollInterval)
				delay = sub.chasing
			default:
				sub.chasing = min(max(2*sub.chasing, o.RepollDelay), o.PollInterval, maxChase)
				delay = sub.chasing
			}
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
			if sub.unsaved > 0 {
				saveAt = sub.lastSave.Add(o.CheckpointInterval)
				wake = earliest(wake, saveAt)
			}
			pingAt := sub.l.lastUsed.Add(o.KeepaliveInterval)
			wake = earliest(wake, pingAt)
			renewAt := sub.renewed.Add(o.LeaseTTL / 3)
			wake = earliest(wake, renewAt)
			got, err := sub.l.wait(ctx, max(wake.Sub(now), 0))
			if err != nil {
				return fmt.Errorf("waiting for notifications: %w", err)
			}
			if got {
				sub.l.drain()
				notified = true
				if n == 0 {
					break // idle: read at once
				}
				// Busy (the last read found events): the read due at
				// readAt, RepollDelay after it, covers this wake-up, so
				// that a stream of notifications costs at most one read
				// per RepollDelay.
			}
			now = time.Now()
			if sub.unsaved > 0 && !now.Before(saveAt) {
				if err := sub.flush(ctx); err != nil {
					return err
				}
			}
			if !now.Before(renewAt) {
				if err := sub.keepLease(ctx); err != nil {
					return err
				}
			}
			if !now.Before(pingAt) && now.Before(readAt) {
				if err := sub.l.ping(ctx); err != nil {
					return fmt.Errorf("keepalive: %w", err)
				}
			}
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// While committed events are hidden behind an older running transaction,
// the subscription re-reads every RepollDelay for chaseFast, then backs
// off, doubling the delay up to maxChase.
const (
	chaseFast = 250 * time.Millisecond
	maxChase  = time.Second
)

// hidden reports whether committed events after sub.pos are hidden from
// read_all because an older transaction is still running.
func (sub *subscription) hidden(ctx context.Context) (bool, error) {
	var hidden bool
	err := sub.l.conn.QueryRow(ctx, "SELECT "+sub.s.config.Schema+".log_hidden($1, $2)", sub.pos.TxKey(), sub.pos.Global()).Scan(&hidden)
	if err != nil {
		return false, fmt.Errorf("reading: %w", interpretError(err))
	}
	return hidden, nil
}

// step reads one batch after sub.pos and handles it. It returns the
// number of events read.
func (sub *subscription) step(ctx context.Context) (int, error) {
	if err := sub.keepLease(ctx); err != nil {
		return 0, err
	}
	batch, err := sub.read(ctx)
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	n := len(batch)
	if sub.limit > 0 && len(batch) > sub.limit {
		batch = batch[:sub.limit]
	}
	sub.limit = 0
	if sub.txh != nil {
		return n, sub.handleTx(ctx, batch)
	}
	return n, sub.handlePlain(ctx, batch)
}

// read reads up to BatchSize events after sub.pos on the listener
// connection.
func (sub *subscription) read(ctx context.Context) ([]es.Event, error) {
	rows, err := sub.l.conn.Query(ctx, sub.s.sql.readAll, sub.pos.TxKey(), sub.pos.Global(), sub.o.BatchSize, sub.categories, sub.types)
	if err != nil {
		return nil, fmt.Errorf("reading: %w", interpretError(err))
	}
	defer rows.Close()
	batch := sub.batch[:0]
	sc := newEventScanner(true)
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			return nil, fmt.Errorf("reading: %w", err)
		}
		batch = append(batch, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", interpretError(err))
	}
	sub.batch = batch
	sub.l.lastUsed = time.Now()
	return batch, nil
}

// handlePlain hands the events to the plain handler one by one, saving
// the checkpoint as the policy says.
func (sub *subscription) handlePlain(ctx context.Context, batch []es.Event) error {
	o := sub.o
	for _, e := range batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := sub.plain(ctx, e); err != nil {
			return sub.failed(ctx, e, err)
		}
		sub.failures = 0
		sub.pos = e.Position
		sub.unsaved++
		if sub.unsaved >= o.CheckpointEvery || time.Since(sub.lastSave) >= o.CheckpointInterval {
			if err := sub.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// handleTx hands the events to the transactional handler in one
// transaction that also advances the checkpoint.
func (sub *subscription) handleTx(ctx context.Context, batch []es.Event) error {
	tx, err := sub.l.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning: %w", err)
	}
	rollback := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}
	// The transaction holds an xid from the handler's first write until
	// it ends, and while it does it holds back every reader of the global
	// log in the cluster (other subscriptions included): commit after
	// TxMaxDuration even when fewer than BatchSize events are handled, and
	// read the rest again at once.
	deadline := time.Now().Add(sub.o.TxMaxDuration)
	for i, e := range batch {
		if err := ctx.Err(); err != nil {
			rollback()
			return err
		}
		if i > 0 && !time.Now().Before(deadline) {
			batch = batch[:i]
			sub.retry = true
			break
		}
		if err := sub.txh(ctx, tx, e); err != nil {
			rollback()
			if sub.l.conn.IsClosed() {
				// Not the handler's fault: reconnect and carry on.
				return fmt.Errorf("connection lost while handling: %w", err)
			}
			if i > 0 {
				// The events before e were rolled back with it: handle
				// them (only them) again first, then retry e.
				sub.limit = i
			}
			return sub.failed(ctx, e, err)
		}
	}
	last := batch[len(batch)-1].Position
	if err := sub.s.advanceCheckpoint(ctx, tx, sub.name, sub.saved, last); err != nil {
		rollback()
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: subscription %q: committing: %w", sub.name, interpretError(err))
	}
	sub.failures = 0
	sub.pos, sub.saved, sub.lastSave = last, last, time.Now()
	sub.l.lastUsed = sub.lastSave
	return nil
}

// failed records a handler failure on e (the events before it are
// handled, or in the transactional form are to be handled again): it
// saves the checkpoint of the handled events, and after a backoff returns
// nil to retry e, or the *es.HandlerError when the retries are used up.
func (sub *subscription) failed(ctx context.Context, e es.Event, err error) error {
	if ctx.Err() != nil {
		return ctx.Err() // stopping: e was not handled
	}
	if sub.failures == 0 || sub.failedAt != e.Position {
		sub.failedAt, sub.failures = e.Position, 0
	}
	sub.failures++
	if ferr := sub.flush(ctx); ferr != nil {
		return ferr
	}
	if sub.failures > sub.o.HandlerRetries {
		return &es.HandlerError{Subscription: sub.name, Event: e, Attempts: sub.failures, Err: err}
	}
	if !sleep(ctx, sub.o.RetryWait(sub.failures)) {
		return ctx.Err()
	}
	sub.retry = true
	return nil
}

// flush saves the checkpoint when events were handled since the last save.
func (sub *subscription) flush(ctx context.Context) error {
	sub.lastSave = time.Now()
	if sub.pos == sub.saved {
		sub.unsaved = 0
		return nil
	}
	var q rowQuerier = sub.s.pool
	if sub.l != nil && !sub.l.conn.IsClosed() {
		q = sub.l.conn
	}
	if err := sub.s.advanceCheckpoint(ctx, q, sub.name, sub.saved, sub.pos); err != nil {
		return err
	}
	sub.saved, sub.unsaved = sub.pos, 0
	return nil
}

// flushOnExit saves the checkpoint of the handled events when a session
// ends, even when ctx has been cancelled. When the listener connection
// is gone it writes through the pool: the compare-and-set keeps that safe
// should another instance have taken over meanwhile.
func (sub *subscription) flushOnExit() error {
	if sub.pos == sub.saved {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return sub.flush(ctx)
}

// testHooks maps a subscription name to a function the tests run at named
// stages of a session ("listening", "caught-up").
var testHooks sync.Map

func runHook(name, stage string) {
	if f, ok := testHooks.Load(name); ok {
		f.(func(string))(stage)
	}
}
