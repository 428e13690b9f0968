package integration_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// crashBatch is one append attempted before the crash.
type crashBatch struct {
	stream string
	ids    []uuid.UUID
	acked  bool
	res    es.AppendResult // when acked
}

// TestCrashRecovery kills a server (SIGKILL to the postmaster and all its
// processes) in the middle of a write load and restarts it: every
// acknowledged append must be there in full, with the versions and
// positions it returned, and no append may be there in part.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	const (
		writers     = 4
		minAcked    = 800 // appends acknowledged before the kill: about a second
		maxAttempts = 100_000
	)
	ctx := testContext(t, testTimeout)

	// Durable commits: synchronous_commit stays on. fsync may stay off: the
	// server's processes die, not the machine, so the kernel keeps the WAL.
	pgtest.ConnString(t) // skips, or fails under ES_REQUIRE_POSTGRES=1, without PostgreSQL
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip("the crash test needs local PostgreSQL binaries to start a server it can kill: ", err)
	}
	cluster, err := pgtest.StartCluster(&pgtest.ClusterOptions{Settings: map[string]string{"synchronous_commit": "on"}})
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := cluster.Remove(); err != nil {
			t.Errorf("removing the cluster: %v", err)
		}
	})
	connString := cluster.ConnString("postgres")

	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	_, err = pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	var syncCommit string
	require.NoError(t, conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit))
	require.Equal(t, "on", syncCommit)
	require.NoError(t, conn.Close(ctx))

	config, err := pgxpool.ParseConfig(connString)
	require.NoError(t, err)
	config.MaxConns = writers
	pool, err := pgxpool.NewWithConfig(ctx, config)
	require.NoError(t, err)
	store, err := pgstore.New(pool, nil)
	require.NoError(t, err)

	var (
		killed   atomic.Bool
		ackCount atomic.Int64
		enough   = make(chan struct{})
		once     sync.Once
		batches  = make([][]*crashBatch, writers)
		wg       sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for w := range writers {
		rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
		wg.Go(func() {
			for n := range maxAttempts {
				// Own streams and streams shared with the other writers.
				stream := fmt.Sprintf("crash-%d-%d", w, rnd.IntN(5))
				if rnd.IntN(3) == 0 {
					stream = fmt.Sprintf("shared-%d", rnd.IntN(3))
				}
				events := make([]es.NewEvent, 1+rnd.IntN(10))
				b := &crashBatch{stream: stream, ids: make([]uuid.UUID, len(events))}
				for i := range events {
					b.ids[i] = uuid.New()
					events[i] = es.NewEvent{ID: b.ids[i], Type: "Crashed", Data: []byte{0x80, byte(i)}}
				}
				batches[w] = append(batches[w], b)
				res, err := store.Append(loadCtx, stream, es.Any, events)
				if err != nil {
					if !killed.Load() && loadCtx.Err() == nil {
						t.Errorf("writer %d, append %d, before the kill: %v", w, n, err)
					}
					return // the server is gone: stop
				}
				b.acked, b.res = true, res
				if ackCount.Add(1) >= minAcked {
					once.Do(func() { close(enough) })
				}
			}
		})
	}

	select {
	case <-enough:
	case <-ctx.Done():
		require.FailNow(t, "the writers did not get going", "%d appends acknowledged", ackCount.Load())
	}
	killed.Store(true)
	require.NoError(t, cluster.Kill())
	wg.Wait()
	stopLoad()
	pool.Close()
	require.NoError(t, cluster.Start())

	conn, err = pgx.Connect(ctx, connString)
	require.NoError(t, err)
	defer conn.Close(context.Background())

	type stored struct {
		stream  string
		version int64
		global  int64
		txKey   uint64
	}
	var allIDs []uuid.UUID
	attempted, acked, inFlight := 0, 0, 0
	for _, bs := range batches {
		for _, b := range bs {
			allIDs = append(allIDs, b.ids...)
			attempted++
			if b.acked {
				acked++
			}
		}
		inFlight += len(bs) - countAcked(bs)
	}
	rows, err := conn.Query(ctx,
		"SELECT event_id, stream_id, version, global_position, transaction_id FROM es.events WHERE event_id = ANY($1)", allIDs)
	require.NoError(t, err)
	found := map[uuid.UUID]stored{}
	for rows.Next() {
		var id uuid.UUID
		var s stored
		require.NoError(t, rows.Scan(&id, &s.stream, &s.version, &s.global, &s.txKey))
		found[id] = s
	}
	require.NoError(t, rows.Err())

	committedUnacked := 0
	for w, bs := range batches {
		for n, b := range bs {
			present := 0
			for _, id := range b.ids {
				if _, ok := found[id]; ok {
					present++
				}
			}
			require.True(t, present == 0 || present == len(b.ids),
				"writer %d, append %d to %s: %d of its %d events survived", w, n, b.stream, present, len(b.ids))
			if !b.acked {
				if present > 0 {
					committedUnacked++
				}
				continue
			}
			require.Equal(t, len(b.ids), present, "writer %d, append %d to %s was acknowledged but lost", w, n, b.stream)
			for i, id := range b.ids {
				s := found[id]
				require.Equal(t, b.stream, s.stream)
				require.Equal(t, b.res.FirstVersion+int64(i), s.version, "version of event %d of writer %d's append %d", i, w, n)
				require.Equal(t, b.res.LastPosition.TxKey(), s.txKey)
				require.True(t, s.global >= b.res.FirstPosition.Global() && s.global <= b.res.LastPosition.Global(),
					"global position %d outside the acknowledged [%s, %s]", s.global, b.res.FirstPosition, b.res.LastPosition)
			}
		}
	}
	require.Equal(t, len(found), countStoredEvents(t, ctx, conn), "events that no writer attempted")

	// Every stream is consistent after recovery: versions 1..n, and the
	// stream row says n.
	var broken int
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT count(*) FROM es.streams s
		 WHERE s.version <> (SELECT count(*) FROM es.events e WHERE e.stream_id = s.stream_id)
		    OR s.version <> (SELECT max(e.version) FROM es.events e WHERE e.stream_id = s.stream_id)`).Scan(&broken))
	require.Zero(t, broken, "streams whose version does not match their events")

	// And the store works again.
	_, err = conn.Exec(ctx, `SELECT es.append_event('after-1', 'Recovered', '\x80')`)
	require.NoError(t, err)
	t.Logf("%d appends attempted, %d acknowledged, %d in flight at the kill (%d of those committed)",
		attempted, acked, inFlight, committedUnacked)
	require.GreaterOrEqual(t, acked, minAcked)
}

func countAcked(bs []*crashBatch) int {
	n := 0
	for _, b := range bs {
		if b.acked {
			n++
		}
	}
	return n
}

func countStoredEvents(t *testing.T, ctx context.Context, conn *pgx.Conn) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM es.events").Scan(&n))
	return n
}
