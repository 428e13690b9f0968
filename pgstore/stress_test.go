package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// stressAck is what an acknowledged append said about one of its events.
type stressAck struct {
	stream     string
	version    int64
	txKey      uint64
	minGlobal  int64 // the batch's first global position
	maxGlobal  int64 // the batch's last global position
	batchIndex int   // the event's index in its batch
}

// stressLedger records, across writers, which events were acknowledged and
// which were attempted without an acknowledgement.
type stressLedger struct {
	mu        sync.Mutex
	acked     map[uuid.UUID]stressAck
	unacked   map[uuid.UUID]bool
	conflicts int
	rollbacks int
	txAppends int
}

func (l *stressLedger) ack(stream string, res es.AppendResult, events []es.NewEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range events {
		l.acked[e.ID] = stressAck{
			stream: stream, version: res.FirstVersion + int64(i), txKey: res.LastPosition.TxKey(),
			minGlobal: res.FirstPosition.Global(), maxGlobal: res.LastPosition.Global(), batchIndex: i,
		}
	}
}

func (l *stressLedger) lose(events []es.NewEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range events {
		l.unacked[e.ID] = true
	}
}

// stressWriter appends batches to the shared streams: plain appends, appends
// with an expected version that may conflict, transactions that append to a
// second stream after writing to a first one, and transactions that roll
// back. It counts only what was acknowledged.
type stressWriter struct {
	id      int
	store   *pgstore.Store
	ledger  *stressLedger
	rnd     *rand.Rand
	streams []string
	known   map[string]int64 // the last version this writer saw per stream
}

func (w *stressWriter) events() []es.NewEvent {
	events := make([]es.NewEvent, 1+w.rnd.IntN(5))
	for i := range events {
		events[i] = es.NewEvent{ID: uuid.New(), Type: fmt.Sprintf("W%d", w.id), Data: []byte{0x80}}
	}
	return events
}

func (w *stressWriter) stream() string { return w.streams[w.rnd.IntN(len(w.streams))] }

// expected returns the version to expect for stream: usually the last one
// this writer saw (which may be stale), sometimes any.
func (w *stressWriter) expected(stream string) es.ExpectedVersion {
	if w.rnd.IntN(3) == 0 {
		return es.Any
	}
	return es.Exactly(w.known[stream])
}

// note records the outcome of an append for the writer's view of versions
// and reports whether err is an expected failure (a version conflict).
func (w *stressWriter) note(stream string, res es.AppendResult, err error) (bool, error) {
	if err == nil {
		w.known[stream] = res.StreamVersion
		return true, nil
	}
	var conflict *es.VersionConflictError
	if errors.As(err, &conflict) {
		w.known[stream] = conflict.Actual
		w.ledger.mu.Lock()
		w.ledger.conflicts++
		w.ledger.mu.Unlock()
		return false, nil
	}
	return false, err
}

func (w *stressWriter) batch(ctx context.Context) error {
	switch mode := w.rnd.IntN(10); {
	case mode < 6: // one append in its own transaction
		stream, events := w.stream(), w.events()
		res, err := w.store.Append(ctx, stream, w.expected(stream), events)
		ok, err := w.note(stream, res, err)
		if ok {
			w.ledger.ack(stream, res, events)
		} else {
			w.ledger.lose(events)
		}
		return err

	default: // a longer transaction: two streams, locked in a fixed order
		i := w.rnd.IntN(len(w.streams))
		j := (i + 1 + w.rnd.IntN(len(w.streams)-1)) % len(w.streams) // another stream
		first, second := w.streams[i], w.streams[j]
		if second < first {
			first, second = second, first
		}
		rollback := mode == 9
		tx, err := w.store.Pool().Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

		events1, events2 := w.events(), w.events()
		res1, err := w.store.WithTx(tx).Append(ctx, first, es.Any, events1)
		if err != nil {
			return fmt.Errorf("first AppendTx: %w", err)
		}
		res2, err := w.store.WithTx(tx).Append(ctx, second, w.expected(second), events2)
		ok2, err := w.note(second, res2, err)
		if err != nil {
			return fmt.Errorf("second AppendTx: %w", err)
		}
		if rollback {
			if err := tx.Rollback(ctx); err != nil {
				return err
			}
			w.ledger.lose(events1)
			w.ledger.lose(events2)
			w.ledger.mu.Lock()
			w.ledger.rollbacks++
			w.ledger.mu.Unlock()
			return nil
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		w.known[first] = res1.StreamVersion
		w.ledger.ack(first, res1, events1)
		if ok2 {
			w.ledger.ack(second, res2, events2)
		} else {
			w.ledger.lose(events2)
		}
		w.ledger.mu.Lock()
		w.ledger.txAppends++
		w.ledger.mu.Unlock()
		return nil
	}
}

// TestStressWritersAndFollower runs concurrent writers while a reader
// follows the global log, and checks that the reader sees every
// acknowledged event exactly once, in an order that keeps every stream's
// versions gapless and increasing, and nothing else.
func TestStressWritersAndFollower(t *testing.T) {
	t.Parallel()
	const (
		writers = 6
		batches = 150
	)
	// Generous: the 900 batches take many times as long on a busy
	// machine. It only stops a test that hangs.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	// Small pages, so the follower pages through the log too.
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema, ReadBatchSize: 50})
	require.NoError(t, err)

	var streams []string
	for _, category := range []string{"order", "invoice"} {
		for i := range 6 {
			streams = append(streams, fmt.Sprintf("%s-%d", category, i))
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	ledger := &stressLedger{acked: map[uuid.UUID]stressAck{}, unacked: map[uuid.UUID]bool{}}

	var wg sync.WaitGroup
	writerErrs := make(chan error, writers)
	for i := range writers {
		w := &stressWriter{
			id: i, store: store, ledger: ledger, rnd: rand.New(rand.NewPCG(seed, uint64(i))),
			streams: streams, known: map[string]int64{},
		}
		wg.Go(func() {
			for n := range batches {
				if err := w.batch(ctx); err != nil {
					writerErrs <- fmt.Errorf("writer %d, batch %d: %w", w.id, n, err)
					return
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(writersDone)
	}()

	// The follower, on the test goroutine.
	var (
		last    es.Position
		seen    = map[uuid.UUID]es.Event{}
		version = map[string]int64{}
		reads   int
	)
	follow := func() int {
		n := 0
		for e, err := range store.ReadAll(ctx, &es.ReadAllOpts{After: last}) {
			require.NoError(t, err)
			require.True(t, last.Before(e.Position), "position %s after %s", e.Position, last)
			_, dup := seen[e.ID]
			require.False(t, dup, "event %s seen twice", e.ID)
			require.Equal(t, version[e.StreamID]+1, e.Version, "%s: versions must be read in order without gaps", e.StreamID)
			version[e.StreamID] = e.Version
			seen[e.ID] = e
			last = e.Position
			n++
		}
		reads++
		return n
	}
	for done := false; ; {
		select {
		case <-writersDone:
			done = true
		default:
		}
		n := follow()
		if done {
			ledger.mu.Lock()
			caughtUp := len(seen) >= len(ledger.acked)
			ledger.mu.Unlock()
			if caughtUp {
				break
			}
		}
		if ctx.Err() != nil {
			ledger.mu.Lock()
			acked := len(ledger.acked)
			ledger.mu.Unlock()
			require.FailNowf(t, "the follower did not catch up", "%d of %d events seen: %v", len(seen), acked, ctx.Err())
		}
		if n == 0 {
			select { // polling: nothing new yet
			case <-writersDone:
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	close(writerErrs)
	for err := range writerErrs {
		require.NoError(t, err)
	}
	// Nothing more shows up later.
	require.Zero(t, follow())

	t.Logf("%d events acknowledged, %d not (%d conflicts, %d rollbacks), %d two-stream transactions, %d reads",
		len(ledger.acked), len(ledger.unacked), ledger.conflicts, ledger.rollbacks, ledger.txAppends, reads)
	require.NotEmpty(t, ledger.acked)
	require.NotEmpty(t, ledger.unacked, "the mix should include failed and rolled-back appends")
	for id, e := range seen {
		require.False(t, ledger.unacked[id], "unacknowledged event %s (%s v%d) was read", id, e.StreamID, e.Version)
		a, ok := ledger.acked[id]
		require.True(t, ok, "event %s (%s v%d) was never appended", id, e.StreamID, e.Version)
		require.Equal(t, a.stream, e.StreamID)
		require.Equal(t, a.version, e.Version, "version of %s", id)
		require.Equal(t, a.txKey, e.Position.TxKey(), "transaction key of %s v%d", e.StreamID, e.Version)
		require.True(t, e.Position.Global() >= a.minGlobal && e.Position.Global() <= a.maxGlobal,
			"global position %d of %s v%d outside its batch's [%d, %d]", e.Position.Global(), e.StreamID, e.Version, a.minGlobal, a.maxGlobal)
	}
	require.Len(t, seen, len(ledger.acked))

	// The database agrees: totals, and each stream's version.
	var total int64
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s.events", schema)).Scan(&total))
	require.Equal(t, int64(len(ledger.acked)), total)
	rows, err := pool.Query(ctx, fmt.Sprintf("SELECT stream_id, version FROM %s.streams", schema))
	require.NoError(t, err)
	dbVersions := map[string]int64{}
	for rows.Next() {
		var s string
		var v int64
		require.NoError(t, rows.Scan(&s, &v))
		dbVersions[s] = v
	}
	require.NoError(t, rows.Err())
	require.Equal(t, version, dbVersions)
	require.Subset(t, streams, slices.Collect(maps.Keys(dbVersions)))
}
