package integration_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// Helpers for the tests that run clusters of their own (moved_log_test.go,
// standby_test.go).

// ownCluster starts a throwaway cluster for t alone, removed at cleanup.
// Without PostgreSQL it skips t (or fails it under ES_REQUIRE_POSTGRES=1);
// with only an ES_TEST_DATABASE_URL server and no local binaries, it skips.
func ownCluster(t testing.TB, opts *pgtest.ClusterOptions) *pgtest.Cluster {
	t.Helper()
	requireLocalBinaries(t)
	c, err := pgtest.StartCluster(opts)
	require.NoError(t, err)
	removeAtCleanup(t, c)
	return c
}

// requireLocalBinaries skips t unless local PostgreSQL binaries can start
// clusters.
func requireLocalBinaries(t testing.TB) {
	t.Helper()
	pgtest.ConnString(t) // skips, or fails under ES_REQUIRE_POSTGRES=1, without PostgreSQL
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip("this test needs local PostgreSQL binaries to run clusters of its own: ", err)
	}
}

// removeAtCleanup removes c when t ends.
func removeAtCleanup(t testing.TB, c *pgtest.Cluster) {
	t.Helper()
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Errorf("removing a cluster: %v", err)
		}
	})
}

// openStore opens a pool on connString (closed at cleanup) and a store on
// it in schema es, with quick subscription timing unless config sets its
// own.
func openStore(t testing.TB, ctx context.Context, connString string, config *pgstore.Config) (*pgxpool.Pool, *pgstore.Store) {
	t.Helper()
	poolConfig, err := pgxpool.ParseConfig(connString)
	require.NoError(t, err)
	poolConfig.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, poolConfig)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var c pgstore.Config
	if config != nil {
		c = *config
	}
	if c.Subscriptions == (pgstore.SubscriptionConfig{}) {
		c.Subscriptions = quickSubscriptions
	}
	store, err := pgstore.New(pool, &c)
	require.NoError(t, err)
	return pool, store
}

// quickSubscriptions is quick subscription timing for tests: short polls.
var quickSubscriptions = pgstore.SubscriptionConfig{
	PollInterval:      50 * time.Millisecond,
	RepollDelay:       5 * time.Millisecond,
	LeasePollInterval: 50 * time.Millisecond,
	ReconnectBackoff:  10 * time.Millisecond,
}

// eventually polls cond until it holds, failing t when ctx ends first.
// Give ctx a generous deadline: it only matters when cond never holds.
func eventually(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			require.FailNowf(t, "timed out", "waiting until %s: %v", what, context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// logEvent is an event of the global log as a test compares it.
type logEvent struct {
	ID       uuid.UUID
	StreamID string
	Version  int64
	Position es.Position
}

func (e logEvent) String() string {
	return fmt.Sprintf("%s v%d at %s (%s)", e.StreamID, e.Version, e.Position, e.ID)
}

func idsOf(events []logEvent) []uuid.UUID {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// settledLog reads the whole global log with es.read_all, page by page from
// the start, in one REPEATABLE READ transaction whose snapshot shows no
// transaction running anywhere in the cluster, and counts es.events in the
// same snapshot. With nothing running, read_all has no reason to hide
// anything: a correct store returns every stored event. It waits (until
// ctx ends) for such a quiet moment: an autovacuum ANALYZE or a
// subscription's transaction may be running.
func settledLog(t testing.TB, ctx context.Context, pool *pgxpool.Pool) (events []logEvent, stored int) {
	t.Helper()
	for {
		events, stored, quiet := readQuietLog(t, ctx, pool)
		if quiet {
			return events, stored
		}
		select {
		case <-ctx.Done():
			require.FailNowf(t, "timed out", "waiting for a moment without running transactions to read the log: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func readQuietLog(t testing.TB, ctx context.Context, pool *pgxpool.Pool) (events []logEvent, stored int, quiet bool) {
	t.Helper()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	require.NoError(t, tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT FROM pg_snapshot_xip(pg_current_snapshot()))").Scan(&quiet))
	if !quiet {
		return nil, 0, false
	}
	const page = 1000
	var after es.Position
	for {
		rows, err := tx.Query(ctx, "SELECT event_id, stream_id, version, transaction_id, global_position FROM es.read_all($1, $2, $3)",
			after.TxKey(), after.Global(), page)
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			var e logEvent
			var txKey uint64
			var global int64
			require.NoError(t, rows.Scan(&e.ID, &e.StreamID, &e.Version, &txKey, &global))
			e.Position = es.NewPosition(txKey, global)
			events = append(events, e)
			after = e.Position
			n++
		}
		require.NoError(t, rows.Err())
		if n < page {
			break
		}
	}
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM es.events").Scan(&stored))
	return events, stored, true
}

// requireSameIDs checks that got is want, element by element, and reports
// a difference briefly: the lengths, and where the two first differ.
func requireSameIDs(t testing.TB, want, got []uuid.UUID, msgAndArgs ...any) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	at := func(ids []uuid.UUID) string {
		if i < len(ids) {
			return ids[i].String()
		}
		return "(end)"
	}
	require.Failf(t, "different event ids",
		"want %d ids, got %d; the first %d agree; at %d want %s, got %s: %s",
		len(want), len(got), i, i, at(want), at(got), fmt.Sprint(msgAndArgs...))
}

// requireSameSet checks that got holds the ids of want, in any order, and
// reports how many are missing and how many are extra.
func requireSameSet(t testing.TB, want, got []uuid.UUID, msgAndArgs ...any) {
	t.Helper()
	count := map[uuid.UUID]int{}
	for _, id := range want {
		count[id]++
	}
	for _, id := range got {
		count[id]--
	}
	missing, extra := 0, 0
	for _, n := range count {
		if n > 0 {
			missing += n
		} else {
			extra -= n
		}
	}
	if missing > 0 || extra > 0 {
		require.Failf(t, "different sets of event ids", "want %d ids, got %d: %d missing, %d extra: %s",
			len(want), len(got), missing, extra, fmt.Sprint(msgAndArgs...))
	}
}

// requireStreamOrder checks that every stream's events appear in events
// in version order, 1, 2, 3, ... without gaps.
func requireStreamOrder(t testing.TB, events []logEvent, msgAndArgs ...any) {
	t.Helper()
	next := map[string]int64{}
	for i, e := range events {
		require.Equal(t, next[e.StreamID]+1, e.Version, "event %d of the log, %s: %s", i, e, fmt.Sprint(msgAndArgs...))
		next[e.StreamID] = e.Version
	}
}

// requireOnce checks that no event id appears twice in events.
func requireOnce(t testing.TB, events []logEvent, msgAndArgs ...any) {
	t.Helper()
	seen := make(map[uuid.UUID]int, len(events))
	for i, e := range events {
		if j, dup := seen[e.ID]; dup {
			require.Failf(t, "an event appears twice", "%s at %d and %d: %s", e, j, i, fmt.Sprint(msgAndArgs...))
		}
		seen[e.ID] = i
	}
}

// newEvents returns n events of type typ with fresh ids.
func newEvents(typ string, n int) ([]es.NewEvent, []uuid.UUID) {
	events := make([]es.NewEvent, n)
	ids := make([]uuid.UUID, n)
	for i := range events {
		ids[i] = uuid.Must(uuid.NewV7())
		events[i] = es.NewEvent{ID: ids[i], Type: typ, Data: []byte{0x80}}
	}
	return events, ids
}

// deliveries records what a plain subscription handler is given.
type deliveries struct {
	mu  sync.Mutex
	ids []uuid.UUID
}

func (d *deliveries) handle(_ context.Context, e es.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids = append(d.ids, e.ID)
	return nil
}

func (d *deliveries) list() []uuid.UUID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ids)
}

// firstDeliveries returns ids without repeats, in the order of their first
// appearance, and how many repeats there were.
func firstDeliveries(ids []uuid.UUID) ([]uuid.UUID, int) {
	seen := make(map[uuid.UUID]bool, len(ids))
	var first []uuid.UUID
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			first = append(first, id)
		}
	}
	return first, len(ids) - len(first)
}

// subscription is a subscription running in a goroutine.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// runSubscription runs f (a Subscribe or SubscribeTx call) in a goroutine
// until stop, or until t ends.
func runSubscription(t testing.TB, f func(ctx context.Context) error) *subscription {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// stop cancels the subscription, which saves its checkpoint and returns
// nil, and waits for it.
func (s *subscription) stop(t testing.TB, ctx context.Context) {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		require.NoError(t, s.err, "the subscription stopped with an error")
	case <-ctx.Done():
		require.FailNow(t, "the subscription did not stop")
	}
}

// subscribeOpts are subscription options for tests: small batches (several
// transactions in the transactional form). (openStore's stores poll
// quickly.)
func subscribeOpts() *es.SubscribeOpts {
	return &es.SubscribeOpts{BatchSize: 50, CheckpointEvery: 10}
}
