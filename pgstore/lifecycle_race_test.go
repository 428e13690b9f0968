package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

// Races between archive_events and the operations that meet the events it
// moves: each test holds an archive step open in one transaction, starts
// the other operation, waits until it blocks on the moved rows, then
// commits the archive step.

// archiveRace is a pool and store on a fresh schema, and a transaction
// holding an archive step of every event but the log's last.
type archiveRace struct {
	pool  *pgxpool.Pool
	store *pgstore.Store
}

func newArchiveRace(t *testing.T) *archiveRace {
	t.Helper()
	pool := pgstoretest.Pool(t, nil)
	store, err := pgstore.New(pool, nil)
	require.NoError(t, err)
	return &archiveRace{pool: pool, store: store}
}

// holdArchiveStep begins a transaction that archives every event before
// last (want of them; last, the log's last event, stays), and returns it
// uncommitted. An archive step moves only events below the log's horizon,
// which any transaction of the cluster that is running (another test's)
// holds back: the step is tried again until it moves them all.
func (r *archiveRace) holdArchiveStep(t *testing.T, ctx context.Context, last es.Position, want int64) pgx.Tx {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		tx, err := r.pool.Begin(ctx)
		require.NoError(t, err)
		var moved int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT es.archive_events($1, $2)", last.TxKey(), last.Global()+1).Scan(&moved))
		if moved == want {
			t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
			return tx
		}
		require.NoError(t, tx.Rollback(ctx))
		require.Less(t, moved, want)
		require.True(t, time.Now().Before(deadline), "the archive step moved %d events, want %d", moved, want)
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

// lockWaitTimeout bounds the wait for an operation to block on the
// archive step's lock (waitForLockWait, ordering_test.go).
const lockWaitTimeout = time.Minute

// TestTombstoneWhileArchiving: a tombstone whose DELETE waits for an
// archive step moving the stream's events removes them from the archive.
func TestTombstoneWhileArchiving(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newArchiveRace(t)
	_, err := r.store.Append(ctx, "doomed-1", es.NoStream, []es.NewEvent{{Type: "E"}, {Type: "E"}})
	require.NoError(t, err)
	last, err := r.store.Append(ctx, "kept-1", es.NoStream, []es.NewEvent{{Type: "E"}})
	require.NoError(t, err)
	archiving := r.holdArchiveStep(t, ctx, last.LastPosition, 2) // doomed-1's two events

	conn, err := r.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var pid uint32
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	done := make(chan error, 1)
	var removed int64
	go func() {
		done <- conn.QueryRow(ctx, "SELECT es.tombstone_stream('doomed-1')").Scan(&removed)
	}()
	lockCtx, cancel := context.WithTimeout(ctx, lockWaitTimeout)
	defer cancel()
	waitForLockWait(t, lockCtx, r.pool, pid, done)
	require.NoError(t, archiving.Commit(ctx))
	require.NoError(t, <-done)
	require.Equal(t, int64(2), removed)
	var left int
	require.NoError(t, r.pool.QueryRow(ctx, "SELECT count(*) FROM es.all_events WHERE stream_id = 'doomed-1'").Scan(&left))
	require.Zero(t, left, "the tombstoned stream's events are gone, archived or not")
}

// TestRetryWhileArchiving: an append retried while an archive step moves
// the events it retries stores no duplicate: its insert waits for the
// step's lock on events, then finds the id in the archive, and the append
// replays the original one.
func TestRetryWhileArchiving(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := newArchiveRace(t)
	batch := []es.NewEvent{{ID: uuid.Must(uuid.NewV7()), Type: "E"}}
	original, err := r.store.Append(ctx, "retried-1", es.NoStream, batch)
	require.NoError(t, err)
	last, err := r.store.Append(ctx, "later-1", es.NoStream, []es.NewEvent{{Type: "E"}})
	require.NoError(t, err)
	archiving := r.holdArchiveStep(t, ctx, last.LastPosition, 1) // retried-1's event

	// The retry runs on its own pool, so that its pid can be watched.
	cfg := r.pool.Config()
	cfg.MaxConns, cfg.MinConns = 1, 1
	retryPool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer retryPool.Close()
	var pid uint32
	require.NoError(t, retryPool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	retryStore, err := pgstore.New(retryPool, nil)
	require.NoError(t, err)
	type result struct {
		res es.AppendResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := retryStore.Append(ctx, "retried-1", es.Any, batch)
		done <- result{res, err}
	}()
	lockCtx, cancel := context.WithTimeout(ctx, lockWaitTimeout)
	defer cancel()
	waitForLockWait(t, lockCtx, r.pool, pid, done)
	require.NoError(t, archiving.Commit(ctx))
	got := <-done
	require.NoError(t, got.err)
	require.Equal(t, original, got.res, "the retry replays the original append")
	var copies int
	require.NoError(t, r.pool.QueryRow(ctx, "SELECT count(*) FROM es.all_events WHERE event_id = $1", batch[0].ID).Scan(&copies))
	require.Equal(t, 1, copies, "one copy of the event id")
	var version int64
	require.NoError(t, r.pool.QueryRow(ctx, "SELECT version FROM es.streams WHERE stream_id = 'retried-1'").Scan(&version))
	require.Equal(t, int64(1), version)
}
