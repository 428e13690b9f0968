package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// Config configures a [Store]. A nil *Config uses every default.
type Config struct {
	// Schema is the schema the es tables and functions live in (see
	// [Migrate]). Defaults to "es".
	Schema string
	// ReadBatchSize is how many events [Store.ReadAll] and
	// [Store.ReadStream] fetch per query as they page through the log or a
	// stream; it bounds what a reader that stops early has fetched for
	// nothing. Defaults to 1000.
	ReadBatchSize int
	// Subscriptions tunes how the store's subscriptions follow the log.
	// Defaults to the defaults of each of its fields.
	Subscriptions SubscriptionConfig
	// Logger receives the log records of the store's subscriptions:
	// Info when one becomes active or stops, Warn for a failed session
	// (before reconnecting), a failed handler (before retrying) and a
	// parked event, Error when one stops on an error, Debug when one
	// waits for another instance's lease or has caught up. Each record
	// names its subscription. es.SubscribeOpts.Logger overrides it for one
	// subscription. Defaults to none.
	Logger *slog.Logger
	// Replicas are pools on hot standbys of the store's database
	// (PostgreSQL streaming replication). When set, the reads (ReadStream,
	// ReadAll, StreamInfo, Load, and so Repository.Load) go to them, in
	// turn; appends, snapshots, checkpoints and subscriptions stay on the
	// primary (the pool given to New), but for the reading of subscriptions
	// with SubscriptionConfig.ReadReplicas. A read on a context from
	// [es.ReadAfter] waits until its replica shows the position, for at
	// most ReplicaWait, then reads from the primary; one from
	// [es.ReadFromPrimary] (Repository.Update's) reads from the primary.
	// A read without either may not see the latest writes. Defaults to
	// none: every read on the primary.
	Replicas []*pgxpool.Pool
	// ReplicaWait bounds how long a read with an [es.ReadAfter] position
	// waits for a replica to replay it before it reads from the primary.
	// Defaults to 1 second.
	ReplicaWait time.Duration
}

// SubscriptionConfig tunes how a [Store]'s subscriptions follow the log on
// PostgreSQL. What a subscription delivers is shaped per subscription by
// [es.SubscribeOpts].
type SubscriptionConfig struct {
	// PollInterval is the fallback poll: a subscription reads the log at
	// least this often even when no notification comes, so no committed
	// event waits longer than this when a wake-up was coalesced away or
	// notifications are off (es.notify = off). Defaults to 1 second.
	PollInterval time.Duration
	// RepollDelay is how soon a subscription reads again after a read that
	// found events or followed a notification: appends that skipped
	// notifying (notifications are coalesced) or that were hidden behind
	// an older running transaction are picked up then. While events keep
	// coming it is also the shortest time between two reads. Defaults to
	// 10 milliseconds.
	RepollDelay time.Duration
	// ReconnectBackoff is the first wait before reconnecting after the
	// listener connection failed; it doubles with each failed attempt up
	// to ReconnectBackoffMax. Defaults to 100 milliseconds.
	ReconnectBackoff time.Duration
	// ReconnectBackoffMax caps the reconnect wait. Defaults to 5 seconds.
	ReconnectBackoffMax time.Duration
	// KeepaliveInterval is how often an idle listener connection is pinged
	// when PollInterval is longer. Defaults to 30 seconds.
	KeepaliveInterval time.Duration
	// LeasePollInterval is how often an instance waiting for the
	// subscription's lease (another instance is active) tries again.
	// Defaults to 1 second.
	LeasePollInterval time.Duration
	// LeaseTTL is how long the active instance's lease lasts unless
	// renewed; it is renewed every third of it. Another instance takes over
	// once the lease expires, or at once when the active instance's
	// connection is gone. Defaults to 30 seconds.
	LeaseTTL time.Duration
	// ReadReplicas makes the store's subscriptions read the log from
	// Config.Replicas (each session from one standby, the standbys in
	// turn), which must be set. The lease, the LISTEN, the checkpoint and
	// SubscribeTx's transaction stay on the primary, and every delivery
	// guarantee holds. A notification may arrive before the standby has
	// replayed the append: the subscription reads again soon until the
	// standby shows it, so its events arrive with the standby's lag
	// (SubscriptionHealth.ReplicaLag shows it). While a read on the
	// standby fails (a restart, a lost connection), the subscription reads
	// the primary, trying the standby again after ReconnectBackoff,
	// doubling up to ReconnectBackoffMax. A subscription whose Subscribe
	// context comes from es.ReadFromPrimary reads the primary. Defaults to
	// false.
	ReadReplicas bool
	// TxMaxDuration bounds how long SubscribeTx's transaction runs: once
	// it has run this long it commits the events handled so far (at least
	// one) and goes on in a new transaction. While open it holds an xid,
	// which holds back every reader of the global log in the cluster,
	// other subscriptions included. Defaults to 20 milliseconds.
	TxMaxDuration time.Duration
}

// withDefaults fills the unset fields.
func (c SubscriptionConfig) withDefaults() SubscriptionConfig {
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.RepollDelay = cmp.Or(c.RepollDelay, 10*time.Millisecond)
	c.ReconnectBackoff = cmp.Or(c.ReconnectBackoff, 100*time.Millisecond)
	c.ReconnectBackoffMax = cmp.Or(c.ReconnectBackoffMax, 5*time.Second)
	c.KeepaliveInterval = cmp.Or(c.KeepaliveInterval, 30*time.Second)
	c.LeasePollInterval = cmp.Or(c.LeasePollInterval, time.Second)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, 30*time.Second)
	c.TxMaxDuration = cmp.Or(c.TxMaxDuration, 20*time.Millisecond)
	return c
}

func (c *Config) validate() error {
	if err := validSchema(c.Schema); err != nil {
		return err
	}
	if c.ReadBatchSize < 1 || c.ReadBatchSize > maxBatch {
		return fmt.Errorf("pgstore: ReadBatchSize must be between 1 and %d, got %d", maxBatch, c.ReadBatchSize)
	}
	if c.ReplicaWait <= 0 {
		return fmt.Errorf("pgstore: ReplicaWait must be positive, got %v", c.ReplicaWait)
	}
	for i, r := range c.Replicas {
		if r == nil {
			return fmt.Errorf("pgstore: Replicas[%d] is nil", i)
		}
	}
	sc := &c.Subscriptions
	if sc.ReadReplicas && len(c.Replicas) == 0 {
		return fmt.Errorf("pgstore: Subscriptions.ReadReplicas needs Replicas")
	}
	for name, d := range map[string]time.Duration{
		"PollInterval": sc.PollInterval, "RepollDelay": sc.RepollDelay,
		"ReconnectBackoff": sc.ReconnectBackoff, "ReconnectBackoffMax": sc.ReconnectBackoffMax,
		"KeepaliveInterval": sc.KeepaliveInterval, "LeasePollInterval": sc.LeasePollInterval,
		"LeaseTTL": sc.LeaseTTL, "TxMaxDuration": sc.TxMaxDuration,
	} {
		if d <= 0 {
			return fmt.Errorf("pgstore: Subscriptions.%s must be positive, got %v", name, d)
		}
	}
	return nil
}

// maxBatch is the largest page size: the SQL functions take an int4 count,
// and one more row than a page is fetched to tell whether another follows.
const maxBatch = math.MaxInt32 - 1

// Store is the PostgreSQL event store. It calls the PL/pgSQL functions of
// the es schema; it holds no state of its own beyond the pool and is safe
// for concurrent use. [Store.WithTx] returns one bound to a transaction.
type Store struct {
	pool   *pgxpool.Pool
	config Config
	sql    queries
	// db runs the store's statements: the pool, or tx.
	db querier
	// tx is the caller's transaction a store from WithTx is bound to; nil
	// otherwise. bound is set by WithTx (also for a nil tx).
	tx    pgx.Tx
	bound bool
	// observe, set by tests only, sees the stages of every subscription
	// session.
	observe func(name string, st storekit.Stage)
	// progress tracks the subscriptions running in this process (WaitFor,
	// SubscriptionStatus); shared with the stores WithTx makes.
	progress *storekit.Progress
	// sharedReads lets the partitions of a consumer group that this store
	// runs (for any number of its members) read the log together.
	sharedReads *storekit.SharedReadsByGroup
	// nextReplica picks the replica of the next read (replica.go).
	nextReplica *atomic.Uint64
}

var _ es.Store = (*Store)(nil)

// New returns a Store using pool. The schema must have been migrated (see
// [Migrate]).
func New(pool *pgxpool.Pool, config *Config) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("pgstore: New needs a pool")
	}
	var c Config
	if config != nil {
		c = *config
	}
	c.Schema = cmp.Or(c.Schema, DefaultSchema)
	c.ReadBatchSize = cmp.Or(c.ReadBatchSize, 1000)
	c.ReplicaWait = cmp.Or(c.ReplicaWait, time.Second)
	c.Subscriptions = c.Subscriptions.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Store{pool: pool, config: c, sql: newQueries(c.Schema), db: pool, progress: storekit.NewProgress(),
		sharedReads: new(storekit.SharedReadsByGroup), nextReplica: new(atomic.Uint64)}, nil
}

// querier is what the store's statements run on: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// WithTx returns the store bound to the caller's transaction tx: its
// appends (with or without a snapshot), snapshot saves, reads and
// checkpoint reads and deletions run in tx, so that they commit or roll
// back with the caller's other writes (a read-model row, an outbox
// message). It is an [es.Store] and an [es.SnapshotStore] like s, so a
// repository saves in the transaction with
//
//	orders.WithStore(store.WithTx(tx)).Save(ctx, order)
//
// An append runs inside a savepoint, sent with it in one round trip: when
// it fails (a version conflict, a duplicate id, bad input) the savepoint is
// rolled back and tx stays usable, so the caller may continue, retry or
// commit its other work. (A ctx cancelled while the append is in flight is
// different: pgx then closes the connection, which ends tx.)
//
// The events are visible to readers of the global log only once tx
// commits, and while tx is open it holds the stream's row lock (other
// appends to the same stream wait for it) and holds back every reader of
// the global log in the cluster: keep such transactions short. A
// transaction runs one statement at a time: finish iterating a read before
// sending another statement in tx. A bound store cannot subscribe.
func (s *Store) WithTx(tx pgx.Tx) *Store {
	b := *s
	b.db, b.tx, b.bound = tx, tx, true
	if tx == nil {
		b.db = noTx{}
	}
	return &b
}

// noTx is the querier of a store bound to a nil transaction: every
// statement fails with es.ErrInvalidArgument.
type noTx struct{}

var errNoTx = fmt.Errorf("%w: WithTx needs a transaction, got nil", es.ErrInvalidArgument)

func (noTx) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errNoTx }
func (noTx) QueryRow(context.Context, string, ...any) pgx.Row        { return errRow{} }

type errRow struct{}

func (errRow) Scan(...any) error { return errNoTx }

// Pool returns the pool the store uses.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema the store uses.
func (s *Store) Schema() string { return s.config.Schema }

// Channel returns the notification channel append signals: "<schema>_events".
func (s *Store) Channel() string { return s.config.Schema + "_events" }
