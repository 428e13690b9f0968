package integration_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// These tests move a database holding an es log, with subscriptions
// stopped half way through it, to another cluster the ways users do
// (pg_dump and pg_restore into a fresh cluster, pg_upgrade) and check,
// with no manual step in between, that the log and the subscriptions go on
// as if nothing had happened (DESIGN.md, "Ordering": the transaction key
// must survive the database's life).

const (
	movedDB   = "app"
	plainSub  = "mailer"     // Subscribe: at least once
	txSub     = "read-model" // SubscribeTx: exactly once, writes read_model
	freshSub  = "latecomer"  // Subscribe, first run on the new cluster
	tailSub   = "tail"       // Subscribe from the end, first run on the new cluster
	movedType = "Happened"
)

// movedStreams are the source's streams, in three categories.
var movedStreams = []string{
	"order-1", "order-2", "order-3", "order-4",
	"customer-1", "customer-2", "customer-3",
	"invoice-1", "invoice-2", "invoice-3",
}

// movedLog is the log buildMovedLog writes on the source cluster: what
// checkMovedLog expects to find on the cluster it moved to.
type movedLog struct {
	recorded []logEvent // read_all from the start on the source, in order
	handled  int        // the subscriptions stopped after recorded[handled-1]
	counter  uint64     // the source's transaction counter (pg_current_xact_id()) after writing
}

// TestRestoreIntoFreshCluster dumps a database whose log was written
// while the cluster's transaction counter was far along (late in epoch 0;
// in epoch 1) and restores it into a fresh cluster, whose counter starts
// low, as a user moving to a new server does: roles first (pg_dumpall
// --roles-only), then pg_restore; nothing else. The restored log must read
// the same, new appends must come after it, and the subscriptions must
// resume from their saved checkpoints and miss nothing.
func TestRestoreIntoFreshCluster(t *testing.T) {
	t.Parallel()
	requireLocalBinaries(t)

	for _, tc := range []struct {
		name    string
		nextXID uint64
	}{
		{"epoch0", 3_000_000_000},
		{"epoch1", 1<<32 + 5_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t, 4*time.Minute)

			source := ownCluster(t, &pgtest.ClusterOptions{NextXID: tc.nextXID})
			log := buildMovedLog(t, ctx, source)
			require.GreaterOrEqual(t, log.counter, tc.nextXID)
			dump := filepath.Join(t.TempDir(), movedDB+".dump")
			require.NoError(t, source.Dump(ctx, movedDB, dump))
			target := ownCluster(t, nil)
			require.NoError(t, target.CopyRoles(ctx, source))
			require.NoError(t, source.Stop()) // the old server is gone
			require.NoError(t, target.Restore(ctx, dump, movedDB))
			targetCounter := counterOf(t, ctx, target.ConnString(movedDB))
			require.Less(t, targetCounter, log.counter, "the fresh cluster's transaction counter is below the source's")
			t.Logf("source counter %d, fresh cluster's %d", log.counter, targetCounter)

			checkMovedLog(t, ctx, target.ConnString(movedDB), log)
		})
	}
}

// TestUpgradeKeepsTheLog checks the same after pg_upgrade (into a new
// cluster of the same major version), which carries the transaction
// counter over.
func TestUpgradeKeepsTheLog(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)

	source := ownCluster(t, &pgtest.ClusterOptions{NextXID: 3_000_000_000})
	log := buildMovedLog(t, ctx, source)
	target, err := source.Upgrade(ctx, nil)
	require.NoError(t, err)
	removeAtCleanup(t, target)
	require.GreaterOrEqual(t, counterOf(t, ctx, target.ConnString(movedDB)), log.counter,
		"pg_upgrade carries the transaction counter over")

	checkMovedLog(t, ctx, target.ConnString(movedDB), log)
}

// buildMovedLog writes the log on source: the es schema (pgstore.Migrate),
// a read model, events in batches and single events in several streams of
// three categories, some appended by transactions that wrote elsewhere
// first; then it runs the two subscriptions until they have handled all of
// it and stops them (their checkpoints are saved), and writes as much again
// (to old and new streams), which they have not seen.
func buildMovedLog(t *testing.T, ctx context.Context, source *pgtest.Cluster) *movedLog {
	t.Helper()
	admin := connect(t, ctx, source.ConnString("postgres"))
	_, err := admin.Exec(ctx, "CREATE DATABASE "+movedDB)
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))
	conn := connect(t, ctx, source.ConnString(movedDB))
	_, err = pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	for _, sql := range []string{
		// Written before appending, by the transactions that write
		// elsewhere first.
		"CREATE TABLE side_effects (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL)",
		// The transactional subscription's read model: one row per event,
		// applied counts the times its effect was applied, seq the order.
		`CREATE TABLE read_model (
			event_id  uuid PRIMARY KEY,
			stream_id text NOT NULL,
			version   bigint NOT NULL,
			applied   int NOT NULL DEFAULT 1,
			seq       bigint GENERATED ALWAYS AS IDENTITY UNIQUE
		)`,
	} {
		_, err := conn.Exec(ctx, sql)
		require.NoError(t, err)
	}
	require.NoError(t, conn.Close(ctx))
	pool, store := openStore(t, ctx, source.ConnString(movedDB), nil)

	// Phase 1, then both subscriptions handle it and stop.
	phase1 := writeLog(t, ctx, pool, store, movedStreams, 1)
	plain := &deliveries{}
	subPlain := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, plainSub, plain.handle, subscribeOpts())
	})
	subTx := runSubscription(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, txSub, applyToReadModel, subscribeOpts())
	})
	eventually(t, ctx, "both subscriptions handled the first part of the log", func() bool {
		return len(plain.list()) >= len(phase1) && readModelRows(t, ctx, pool) >= len(phase1)
	})
	subPlain.stop(t, ctx)
	subTx.stop(t, ctx)

	// Phase 2: old streams and new ones, unseen by the subscriptions.
	phase2 := writeLog(t, ctx, pool, store, append(slices.Clone(movedStreams[3:8]), "shipment-1", "shipment-2", "refund-1"), 2)

	recorded, stored := settledLog(t, ctx, pool)
	require.Equal(t, stored, len(recorded), "read_all from the start returns every stored event")
	requireSameSet(t, append(slices.Clone(phase1), phase2...), idsOf(recorded), "read_all returns what was appended")
	requireOnce(t, recorded)
	requireStreamOrder(t, recorded)
	handled := len(phase1)
	requireSameSet(t, phase1, idsOf(recorded[:handled]), "what committed after the subscriptions stopped comes after what they handled")
	requireSameIDs(t, idsOf(recorded[:handled]), plain.list(), "the plain subscription handled the first part in order, once")
	model := readModel(t, ctx, pool)
	requireSameIDs(t, idsOf(recorded[:handled]), model.ids, "the transactional subscription applied the first part in order")
	require.Equal(t, handled, model.appliedOnce, "... each event once")
	for _, name := range []string{plainSub, txSub} {
		pos, ok, err := store.Checkpoint(ctx, name)
		require.NoError(t, err)
		require.True(t, ok, name)
		require.Equal(t, recorded[handled-1].Position, pos, "%s's checkpoint is its last event", name)
	}

	return &movedLog{recorded: recorded, handled: handled, counter: counterOf(t, ctx, source.ConnString(movedDB))}
}

// checkMovedLog checks, on the database the log moved to, that (a) read_all
// from the start returns the log as recorded, in order; (b) appends to old
// and new streams, several concurrently, work and get positions after the
// subscriptions' checkpoints; (c) read_all returns the old log then the new
// events, each once, every stream in version order; (d) both subscriptions
// resume from their checkpoints and deliver everything after them, the
// plain one missing nothing, the transactional one applying each event once;
// (e) a new subscription from the beginning sees the whole log, and one
// from the end only what is appended after it started.
func checkMovedLog(t *testing.T, ctx context.Context, connString string, log *movedLog) {
	t.Helper()
	pool, store := openStore(t, ctx, connString, nil)
	recorded, handled := log.recorded, log.handled

	readable := t.Run("the moved log reads the same", func(t *testing.T) {
		got, stored := settledLog(t, ctx, pool)
		require.Equal(t, len(recorded), stored, "events stored")
		requireSameIDs(t, idsOf(recorded), idsOf(got), "read_all from the start returns the recorded log")
	})

	// The checkpoints as restored, before the subscriptions run again.
	checkpoints := map[string]es.Position{}
	for _, name := range []string{plainSub, txSub} {
		pos, ok, err := store.Checkpoint(ctx, name)
		require.NoError(t, err)
		require.True(t, ok, "%s's checkpoint is restored", name)
		checkpoints[name] = pos
	}

	// Both subscriptions follow the log live while the new events come.
	plain := &deliveries{}
	subPlain := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, plainSub, plain.handle, subscribeOpts())
	})
	subTx := runSubscription(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, txSub, applyToReadModel, subscribeOpts())
	})

	var added []uuid.UUID
	t.Run("append to old and new streams", func(t *testing.T) {
		versions := map[string]int64{}
		for _, e := range recorded {
			versions[e.StreamID] = e.Version
		}
		var results []es.AppendResult
		// Old streams at the versions they had, expected exactly.
		for _, stream := range []string{"order-1", "customer-2", "invoice-3"} {
			info, err := store.StreamInfo(ctx, stream)
			require.NoError(t, err)
			require.Equal(t, versions[stream], info.Version, "%s's version is restored", stream)
			events, ids := newEvents(movedType, 3)
			res, err := store.Append(ctx, stream, es.Exactly(info.Version), events)
			require.NoError(t, err)
			require.Equal(t, info.Version+1, res.FirstVersion)
			results = append(results, res)
			added = append(added, ids...)
		}
		// Concurrent writers, old and new streams.
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
		)
		for w := range 4 {
			wg.Go(func() {
				for i := range 6 {
					stream := fmt.Sprintf("new%d-%d", w, i%2)
					if i%3 == 0 {
						stream = movedStreams[(w+i)%len(movedStreams)]
					}
					events, ids := newEvents(movedType, 1+i%3)
					res, err := store.Append(ctx, stream, es.Any, events)
					mu.Lock()
					if err != nil {
						errs = append(errs, fmt.Errorf("writer %d, append %d to %s: %w", w, i, stream, err))
					} else {
						results = append(results, res)
						added = append(added, ids...)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		// A transaction that wrote elsewhere first, on an old and a new
		// stream.
		for _, stream := range []string{"order-2", "new0-0"} {
			res, ids := appendAfterWritingElsewhere(t, ctx, pool, store, stream)
			results = append(results, res...)
			added = append(added, ids...)
		}

		for _, name := range []string{plainSub, txSub} {
			pos := checkpoints[name]
			var behind []string
			for _, res := range results {
				if !pos.Before(res.FirstPosition) {
					behind = append(behind, fmt.Sprintf("%s at %s", res.StreamID, res.FirstPosition))
				}
			}
			if len(behind) > 0 {
				require.Failf(t, "appends before a restored checkpoint",
					"%d of %d appends on the new cluster got positions not after %s's restored checkpoint %s, so a subscription skips them; the first: %s",
					len(behind), len(results), name, pos, strings.Join(behind[:min(len(behind), 5)], ", "))
			}
		}
	})

	var final []logEvent
	ordered := t.Run("old then new", func(t *testing.T) {
		got, stored := settledLog(t, ctx, pool)
		final = got
		require.Equal(t, len(recorded)+len(added), stored, "events stored")
		require.Equal(t, stored, len(got), "read_all from the start returns every stored event")
		requireOnce(t, got)
		requireSameIDs(t, idsOf(recorded), idsOf(got[:len(recorded)]), "the old log first, as recorded")
		requireSameSet(t, added, idsOf(got[len(recorded):]), "then the new events")
		requireStreamOrder(t, got)
	})
	if !readable || !ordered {
		t.Fatal("read_all does not return the whole log (see above), so the subscriptions cannot catch up: not waiting for them")
	}
	after := idsOf(final[handled:])

	t.Run("subscriptions resume from their checkpoints", func(t *testing.T) {
		eventually(t, ctx, "both subscriptions handled the whole log", func() bool {
			first, _ := firstDeliveries(plain.list())
			return len(first) >= len(after) && readModelRows(t, ctx, pool) >= len(final)
		})
		subPlain.stop(t, ctx)
		subTx.stop(t, ctx)

		first, repeats := firstDeliveries(plain.list())
		requireSameIDs(t, after, first, "the plain subscription delivers every event after its checkpoint, in the log's order")
		if repeats > 0 {
			t.Logf("the plain subscription delivered %d events more than once (allowed: at least once)", repeats)
		}
		model := readModel(t, ctx, pool)
		requireSameIDs(t, idsOf(final), model.ids, "the read model applied every event, in the log's order")
		require.Equal(t, len(final), model.appliedOnce, "... each exactly once")
	})

	t.Run("a new subscription sees everything", func(t *testing.T) {
		fresh := &deliveries{}
		sub := runSubscription(t, func(ctx context.Context) error {
			return store.Subscribe(ctx, freshSub, fresh.handle, subscribeOpts())
		})
		eventually(t, ctx, "the new subscription handled the whole log", func() bool {
			return len(fresh.list()) >= len(final)
		})
		sub.stop(t, ctx)
		requireSameIDs(t, idsOf(final), fresh.list(), "a subscription from the beginning delivers the whole log in order")
	})

	t.Run("a subscription from the end sees only what comes next", func(t *testing.T) {
		tail := &deliveries{}
		opts := subscribeOpts()
		opts.Start = es.StartFromEnd
		sub := runSubscription(t, func(ctx context.Context) error {
			return store.Subscribe(ctx, tailSub, tail.handle, opts)
		})
		eventually(t, ctx, "the subscription from the end saved its starting point", func() bool {
			_, ok, err := store.Checkpoint(ctx, tailSub)
			require.NoError(t, err)
			return ok
		})
		var next []uuid.UUID
		for _, stream := range []string{"order-3", "tail-1"} {
			events, ids := newEvents(movedType, 2)
			_, err := store.Append(ctx, stream, es.Any, events)
			require.NoError(t, err)
			next = append(next, ids...)
		}
		eventually(t, ctx, "the subscription from the end handled the new events", func() bool {
			return len(tail.list()) >= len(next)
		})
		sub.stop(t, ctx)
		requireSameIDs(t, next, tail.list(), "a subscription from the end delivers only the events appended after it started")
	})
}

// writeLog appends one part of the log to streams: single events and
// batches, spread over the streams, and in each of three streams an
// append by a transaction that wrote elsewhere first. It returns the
// events' ids.
func writeLog(t *testing.T, ctx context.Context, pool *pgxpool.Pool, store *pgstore.Store, streams []string, part int) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for i := range 40 {
		stream := streams[(i*7+part)%len(streams)]
		n := 1
		if i%3 == 0 {
			n = 2 + i%5 // a batch
		}
		events, batch := newEvents(movedType, n)
		_, err := store.Append(ctx, stream, es.Any, events)
		require.NoError(t, err)
		ids = append(ids, batch...)
	}
	for _, stream := range streams[:3] {
		_, batch := appendAfterWritingElsewhere(t, ctx, pool, store, stream)
		ids = append(ids, batch...)
	}
	return ids
}

// appendAfterWritingElsewhere appends to stream in a transaction that
// wrote to another table first, so that it holds an older transaction id
// than an append to the same stream that commits while it waits: the case
// for which the transaction key is the greater of the own and the
// stream's previous one. It returns both appends' results and ids (the
// other one's first).
func appendAfterWritingElsewhere(t testing.TB, ctx context.Context, pool *pgxpool.Pool, store *pgstore.Store, stream string) ([]es.AppendResult, []uuid.UUID) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, "INSERT INTO side_effects (note) VALUES ($1)", "before appending to "+stream)
	require.NoError(t, err)

	events, otherIDs := newEvents(movedType, 1)
	other, err := store.Append(ctx, stream, es.Any, events)
	require.NoError(t, err)
	events, ids := newEvents(movedType, 2)
	res, err := store.WithTx(tx).Append(ctx, stream, es.Any, events)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return []es.AppendResult{other, res}, append(otherIDs, ids...)
}

// applyToReadModel is the transactional subscription's handler.
func applyToReadModel(ctx context.Context, tx es.Tx, e es.Event) error {
	_, err := pgstore.PgxTx(tx).Exec(ctx, `INSERT INTO read_model (event_id, stream_id, version) VALUES ($1, $2, $3)
		ON CONFLICT (event_id) DO UPDATE SET applied = read_model.applied + 1`, e.ID, e.StreamID, e.Version)
	return err
}

func readModelRows(t testing.TB, ctx context.Context, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM read_model").Scan(&n))
	return n
}

// readModelState is the read model: event ids in the order first applied,
// and how many were applied exactly once.
type readModelState struct {
	ids         []uuid.UUID
	appliedOnce int
}

func readModel(t testing.TB, ctx context.Context, pool *pgxpool.Pool) readModelState {
	t.Helper()
	var m readModelState
	rows, err := pool.Query(ctx, "SELECT event_id, applied FROM read_model ORDER BY seq")
	require.NoError(t, err)
	for rows.Next() {
		var id uuid.UUID
		var applied int
		require.NoError(t, rows.Scan(&id, &applied))
		m.ids = append(m.ids, id)
		if applied == 1 {
			m.appliedOnce++
		}
	}
	require.NoError(t, rows.Err())
	return m
}

// counterOf returns the cluster's transaction counter: the id
// pg_current_xact_id() gives a new transaction (it takes one).
func counterOf(t testing.TB, ctx context.Context, connString string) uint64 {
	t.Helper()
	conn := connect(t, ctx, connString)
	defer conn.Close(context.WithoutCancel(ctx))
	var xid uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid))
	return xid
}
