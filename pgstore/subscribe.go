package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.TxSubscriber = (*Store)(nil)

// PgxTx returns the PostgreSQL transaction of a transactional handler's
// [es.Tx] ([Store.SubscribeTx]): what the handler writes with it commits
// together with the subscription's checkpoint, or not at all. It returns
// nil for an es.Tx that pgstore did not make (memstore's, in tests).
func PgxTx(tx es.Tx) pgx.Tx {
	if t, ok := storekit.StoreTx(tx).(*subscriptionTx); ok {
		return t.tx
	}
	return nil
}

// Subscribe runs the subscription name with an at-least-once handler until
// ctx is cancelled (it returns nil) or the handler fails (a
// *[es.HandlerError]); see [es.Subscriber.Subscribe]. It runs the
// subscription engine of package storekit, as memstore does.
//
// It follows the log on a connection of its own, hijacked from the pool:
// it takes the subscription's lease (other instances of the name wait for
// it; see [SubscriptionConfig.LeaseTTL]), LISTENs on [Store.Channel], reads
// the log from the checkpoint in batches, then reads again on each
// notification, shortly after every read that found events, and every
// PollInterval in any case. A lost connection is re-established with
// backoff, and the subscription takes its lease again, LISTENs again and
// catches up from its checkpoint. On a hot standby it fails at once with
// [es.ErrReadOnly].
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
	return s.subscribe(ctx, name, opts, storekit.Config{Handler: handler})
}

// SubscribeTx runs the subscription name with a transactional handler: for
// each batch of events it opens a transaction, hands it to handler with
// every event, advances the checkpoint in it (a compare-and-set) and
// commits. Read-model writes made with the transaction ([PgxTx] gives it to
// the handler) and the checkpoint commit together: an event's effect is
// applied exactly once, whatever crashes. A handler error rolls the batch
// back (and retries or stops, see [es.SubscribeOpts.HandlerRetries]). A
// transaction commits after
// [SubscriptionConfig.TxMaxDuration] (20 ms) even with fewer than BatchSize
// events: while open, it holds back every reader of the global log in the
// cluster. Otherwise as [Store.Subscribe].
//
// The transaction runs on the subscription's listener connection, and
// advances the checkpoint by compare-and-set: should another instance have
// taken over (this one's lease having lapsed), the stale batch cannot
// commit.
func (s *Store) SubscribeTx(ctx context.Context, name string, handler es.TxHandler, opts *es.SubscribeOpts) error {
	if handler == nil {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, name)
	}
	return s.subscribe(ctx, name, opts, storekit.Config{TxHandler: func(ctx context.Context, tx es.Tx, e es.Event) error {
		err := handler(ctx, tx, e)
		if err != nil && storekit.StoreTx(tx).(*subscriptionTx).conn.IsClosed() {
			return fmt.Errorf("%w: %w", storekit.ErrSessionLost, err)
		}
		return err
	}})
}

// WaitFor implements [es.Subscriber.WaitFor].
func (s *Store) WaitFor(ctx context.Context, name string, pos es.Position) error {
	if err := s.progress.WaitForSubscription(ctx, storekit.WaitStore{
		Checkpoint: s.Checkpoint, GroupPartitions: s.groupPartitions, StreamOf: s.streamOf,
	}, name, pos); err != nil {
		return fmt.Errorf("pgstore: waiting for subscription %q to handle %s: %w", name, pos, err)
	}
	return nil
}

// SubscriptionStatus implements [es.Subscriber.SubscriptionStatus].
func (s *Store) SubscriptionStatus(name string) es.SubscriptionStatus {
	return s.progress.Status(name)
}

// subscribe runs the engine with the store's timing.
func (s *Store) subscribe(ctx context.Context, name string, opts *es.SubscribeOpts, cfg storekit.Config) error {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return err
	}
	if s.bound {
		return fmt.Errorf("%w: subscription %q: a store bound to a transaction (WithTx) cannot subscribe", es.ErrInvalidArgument, name)
	}
	o, err := storekit.Options(opts)
	if err != nil {
		return err
	}
	c := &s.config.Subscriptions
	cfg.Name, cfg.Opts = name, o
	cfg.PollInterval, cfg.RepollDelay = c.PollInterval, c.RepollDelay
	cfg.ReconnectBackoff, cfg.ReconnectBackoffMax = c.ReconnectBackoff, c.ReconnectBackoffMax
	cfg.TxMaxDuration = c.TxMaxDuration
	cfg.Fatal = fatal
	cfg.Progress = s.progress
	cfg.Logger = s.config.Logger
	if s.observe != nil {
		cfg.Observe = func(st storekit.Stage) { s.observe(name, st) }
	}
	src := &source{s: s, name: name, holder: uuid.NewString(), logger: cmp.Or(o.Logger, s.config.Logger),
		readReplicas: c.ReadReplicas && !es.ReadsFromPrimary(ctx)}
	if len(o.Categories) > 0 {
		src.categories = o.Categories
	}
	if len(o.EventTypes) > 0 {
		src.types = o.EventTypes
	}
	if o.Partitions > 0 {
		src.partitions = o.Partitions
		key := fmt.Sprintf("%s\x00%d\x00%q\x00%q", name, o.Partitions, src.categories, src.types)
		src.reads = s.sharedReads.Acquire(key, o.Partitions)
		defer s.sharedReads.Release(key)
		g := &groupMember{template: *src}
		err = storekit.RunGroup(ctx, g, storekit.GroupConfig{Config: cfg, Rebalance: c.LeasePollInterval})
	} else {
		err = storekit.Run(ctx, src, cfg)
	}
	if err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return nil
}

// fatal reports whether err cannot be cured by reconnecting: a missing
// schema or function, a missing database, refused credentials or
// insufficient privilege.
func fatal(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	return pgerrcode.IsSyntaxErrororAccessRuleViolation(pg.Code) || pgerrcode.IsInvalidSchemaName(pg.Code) ||
		pgerrcode.IsInvalidCatalogName(pg.Code) || pgerrcode.IsInvalidAuthorizationSpecification(pg.Code)
}

// source opens the sessions of one subscription instance.
type source struct {
	s          *Store
	name       string
	holder     string   // this instance's lease holder id
	categories []string // nil for all
	types      []string // nil for all
	logger     *slog.Logger
	// readReplicas: its sessions read the log from a standby
	// (replica_subscribe.go).
	readReplicas bool
	// A consumer group's partition (partitions 0: an ordinary
	// subscription): its sessions read the partition's streams only, and
	// Open does not wait for its lease.
	partition, partitions int
	// reads, for a group's partitions: their reads of the log, shared
	// with the other partitions of the group this process runs.
	reads *storekit.SharedReads
}

// partitionArgs are the partition arguments of read_partitions and
// log_behind: NULL for an ordinary subscription.
func (src *source) partitionArgs() (p, n *int) {
	if src.partitions == 0 {
		return nil, nil
	}
	return &src.partition, &src.partitions
}

// Open connects, takes the subscription's lease (waiting while another
// instance holds it) and LISTENs.
func (src *source) Open(ctx context.Context) (storekit.Session, error) {
	c := &src.s.config.Subscriptions
	l, err := src.s.connectListener(ctx, appName(src.name))
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	ss := &session{source: src, l: l}
	if src.readReplicas {
		ss.useReplica(int(src.s.nextReplica.Add(1) % uint64(len(src.s.config.Replicas))))
	}
	ok := false
	defer func() {
		if !ok {
			l.close()
		}
	}()
	// A standby can neither LISTEN nor save checkpoints: fail at once
	// rather than retry forever.
	var standby bool
	if err := l.conn.QueryRow(ctx, isInRecovery).Scan(&standby); err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	if standby {
		return nil, fmt.Errorf("the server is a hot standby (in recovery): %w", es.ErrReadOnly)
	}
	// One active instance: wait for the lease, trying again every
	// LeasePollInterval (each try is also a keepalive).
	waiting := false
	for {
		got, err := src.s.acquireLease(ctx, l.conn, src.name, src.holder, c.LeaseTTL)
		if err != nil {
			return nil, fmt.Errorf("taking the subscription's lease: %w", err)
		}
		l.lastUsed = time.Now()
		if got {
			ss.renewed = l.lastUsed
			break
		}
		if src.partitions > 0 {
			return nil, storekit.ErrPartitionTaken
		}
		if !waiting {
			waiting = true
			if lg := src.logger; lg != nil {
				lg.Debug("another instance of the subscription is active; waiting for its lease", "subscription", src.name)
			}
		}
		if !storekit.Sleep(ctx, c.LeasePollInterval) {
			return nil, ctx.Err()
		}
	}
	// LISTEN before reading: an append that commits after the first read
	// has been notified to this connection.
	if err := l.listen(ctx, src.s.Channel()); err != nil {
		ss.releaseLease()
		return nil, fmt.Errorf("listening: %w", err)
	}
	ok = true
	return ss, nil
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

// session is one connection of a subscription instance holding its lease.
// Everything runs on the connection: reads, checkpoint saves, the
// transactional form's transactions.
type session struct {
	*source
	l       *listener
	renewed time.Time  // when the lease was last taken or renewed
	batch   []es.Event // reused by Read
	log     logSource  // where it reads the log (replica_subscribe.go)
}

func (ss *session) Checkpoint(ctx context.Context) (es.Position, bool, error) {
	return ss.s.readCheckpoint(ctx, ss.l.conn, ss.name)
}

// End returns the end of the visible log (SQL log_end) on the primary: a
// subscription that starts at the end starts at the primary's, as it
// would without standbys. A session that reads a standby reads it at its
// next Read only once the standby's log reaches that end (else the
// primary), so that a read that does not fill its batch covers it (a
// filtered WaitFor).
func (ss *session) End(ctx context.Context) (es.Position, error) {
	end, err := ss.logEnd(ctx, ss.l.conn)
	if err != nil {
		return es.Position{}, fmt.Errorf("pgstore: subscription %q: finding the end of the log: %w", ss.name, err)
	}
	if ss.log.replica != nil {
		ss.log.cover, ss.log.coverSet = end, true
		ss.log.primaryEnd, ss.log.primaryEndAt = end, time.Now()
	}
	return end, nil
}

// Read reads up to max events after `after` (SQL read_partitions with the
// subscription's filters and partition): a group member's partitions
// through their shared reads.
func (ss *session) Read(ctx context.Context, after es.Position, max int) ([]es.Event, error) {
	if ss.reads != nil {
		return ss.reads.Read(ctx, ss.partition, after, max, ss.readPartitions)
	}
	batch, err := ss.read(ctx, after, max, nil, ss.batch[:0])
	ss.batch = batch
	return batch, err
}

// readPartitions reads up to max events after `after` of the group's
// partitions in set (a storekit.ReadFunc), into a slice of their own.
func (ss *session) readPartitions(ctx context.Context, after es.Position, max int, set []int) ([]es.Event, error) {
	return ss.read(ctx, after, max, set, make([]es.Event, 0, max))
}

// read appends to batch up to max events after `after` of the partitions
// in set (nil: the subscription's partition, or the whole log).
func (ss *session) read(ctx context.Context, after es.Position, max int, set []int, batch []es.Event) ([]es.Event, error) {
	p, n := ss.partitionArgs()
	if set == nil && p != nil {
		set = []int{*p}
	}
	start := len(batch)
	onReplica := false
	readOn := func(ctx context.Context, q querier) error {
		batch = batch[:start]
		onReplica = q != querier(ss.l.conn)
		rows, err := q.Query(ctx, ss.s.sql.readPartitions, after.TxKey(), after.Global(), max, set, n, ss.categories, ss.types)
		if err != nil {
			return interpretError(err)
		}
		defer rows.Close()
		sc := newEventScanner(true)
		for rows.Next() {
			e, err := sc.scan(rows)
			if err != nil {
				return err
			}
			batch = append(batch, e)
		}
		if err := rows.Err(); err != nil {
			return interpretError(err)
		}
		if q == querier(ss.l.conn) {
			ss.l.lastUsed = time.Now()
		}
		return nil
	}
	covered := true
	if ss.log.coverSet {
		ss.log.coverSet = false
		var err error
		if covered, err = ss.standbyCovers(ctx, ss.log.cover); err != nil {
			return nil, err
		}
	}
	var err error
	if covered {
		err = ss.onLog(ctx, readOn)
	} else {
		err = readOn(ctx, ss.l.conn)
	}
	if err != nil {
		return nil, err
	}
	if onReplica {
		return ss.cutAtPrimary(ctx, batch, start)
	}
	return batch, nil
}

// Hidden reports whether committed events after `after` are hidden behind
// the log's horizon (SQL log_hidden).
// On a standby, also events the primary shows and the standby does not
// yet, and events the standby shows and the primary does not yet
// (hiddenOnStandby): the engine reads again soon until they can be handed
// over (the notification that woke it was the primary's).
func (ss *session) Hidden(ctx context.Context, after es.Position) (bool, error) {
	if ss.onReplica() {
		hidden, ok, err := ss.hiddenOnStandby(ctx, after)
		if err != nil {
			return false, fmt.Errorf("reading: %w", err)
		}
		if ok {
			return hidden, nil
		}
	}
	var hidden bool
	if err := ss.l.conn.QueryRow(ctx, ss.s.sql.logHidden, after.TxKey(), after.Global()).Scan(&hidden); err != nil {
		return false, fmt.Errorf("reading: %w", interpretError(err))
	}
	return hidden, nil
}

// Advance saves the checkpoint on the session's connection, or through the
// pool when the connection is gone (a session that ends after losing it
// still saves what it handled; the compare-and-set keeps that safe should
// another instance have taken over meanwhile).
func (ss *session) Advance(ctx context.Context, expected, pos es.Position) error {
	var q rowQuerier = ss.s.pool
	if !ss.l.conn.IsClosed() {
		q = ss.l.conn
	}
	return ss.s.advanceCheckpoint(ctx, q, ss.name, expected, pos)
}

// Wait waits up to d for a notification, pinging an idle connection every
// KeepaliveInterval and renewing the lease when due meanwhile.
func (ss *session) Wait(ctx context.Context, d time.Duration, wake <-chan struct{}) (bool, error) {
	c := &ss.s.config.Subscriptions
	deadline := time.Now().Add(d)
	for {
		now := time.Now()
		if !now.Before(deadline) {
			return false, nil
		}
		pingAt := ss.l.lastUsed.Add(c.KeepaliveInterval)
		renewAt := ss.renewed.Add(c.LeaseTTL / 3)
		got, err := ss.l.wait(ctx, min(deadline.Sub(now), max(pingAt.Sub(now), 0), max(renewAt.Sub(now), 0)), wake)
		if err != nil {
			return false, err
		}
		if got {
			ss.l.drain()
			return true, nil
		}
		if err := ss.Keep(ctx); err != nil {
			return false, err
		}
		if now := time.Now(); !now.Before(pingAt) && now.Before(deadline) {
			if err := ss.l.ping(ctx); err != nil {
				return false, fmt.Errorf("keepalive: %w", err)
			}
		}
	}
}

// Begin starts the transactional form's transaction on the connection.
func (ss *session) Begin(ctx context.Context) (storekit.Tx, error) {
	tx, err := ss.l.conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &subscriptionTx{ss: ss, tx: tx, conn: ss.l.conn}, nil
}

// Close gives the lease up and closes the connection (which ends the
// LISTEN).
func (ss *session) Close() {
	if ss.reads != nil {
		ss.reads.Close(ss.partition)
	}
	ss.releaseLease()
	ss.l.close()
}

// subscriptionTx is a transaction of the transactional form.
type subscriptionTx struct {
	ss   *session
	tx   pgx.Tx
	conn *pgx.Conn
}

// Commit advances the checkpoint in the transaction and commits it.
func (t *subscriptionTx) Commit(ctx context.Context, expected, pos es.Position) error {
	if err := t.ss.s.advanceCheckpoint(ctx, t.tx, t.ss.name, expected, pos); err != nil {
		t.Rollback()
		return err
	}
	if err := t.tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: subscription %q: committing: %w", t.ss.name, interpretError(err))
	}
	t.ss.l.lastUsed = time.Now()
	return nil
}

// Rollback rolls the transaction back, also when ctx has been cancelled.
func (t *subscriptionTx) Rollback() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = t.tx.Rollback(ctx)
}
