package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// These tests prove the ordering rules of DESIGN.md ("Ordering: the global
// log without gaps") against a real server: an outstanding transaction holds
// read_all back and nothing is skipped when it ends, and per-stream order is
// kept in the global log when the appending transaction wrote elsewhere
// first. Every test has a freshly migrated schema of its own, but the
// read_all horizon (the oldest running transaction) is cluster-wide, so a
// parallel test's open transaction can hold a read back for a moment:
// positive expectations poll with a deadline, negative ones are exact.

// orderingTimeout bounds each test that calls orderingSetup, every wait
// included. It is generous: on a busy machine a test takes many times as
// long as on a quiet one, and another test may hold the read_all horizon
// back for a long while. It only stops a test that hangs.
const orderingTimeout = 5 * time.Minute

// orderingBundle is what every ordering test needs.
type orderingBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
	store  *pgstore.Store
}

// orderingSetup makes the bundle of t: call it in the test or parallel
// subtest that uses it, after t.Parallel, never in a parent for its
// parallel subtests (they may start long after the parent's deadline).
func orderingSetup(t *testing.T) *orderingBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), orderingTimeout)
	t.Cleanup(cancel)
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	return &orderingBundle{ctx: ctx, pool: pool, schema: schema, store: store}
}

// begin starts a transaction that is rolled back at cleanup unless the test
// ended it.
func (b *orderingBundle) begin(t *testing.T) pgx.Tx {
	t.Helper()
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// readAll reads the whole visible global log after `after`.
func (b *orderingBundle) readAll(t *testing.T, after es.Position) []es.Event {
	t.Helper()
	var events []es.Event
	for e, err := range b.store.ReadAll(b.ctx, &es.ReadAllOpts{After: after}) {
		require.NoError(t, err)
		events = append(events, e)
	}
	return events
}

// waitReadAll polls ReadAll after `after` until it returns at least n events
// (another test's open transaction may hold the horizon back, for a while
// on a busy machine: only the bundle's deadline bounds the wait), and
// returns what it read.
func (b *orderingBundle) waitReadAll(t *testing.T, after es.Position, n int) []es.Event {
	t.Helper()
	for {
		events := b.readAll(t, after)
		if len(events) >= n {
			return events
		}
		select {
		case <-b.ctx.Done():
			require.FailNowf(t, "ReadAll did not catch up", "after %s: want %d events, got %d: %v (%v)",
				after, n, len(events), eventIDs(events), b.ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// newEvents returns n events of type typ with fresh explicit ids.
func newEvents(n int, typ string) []es.NewEvent {
	events := make([]es.NewEvent, n)
	for i := range events {
		events[i] = es.NewEvent{ID: uuid.New(), Type: typ, Data: []byte{0x80}}
	}
	return events
}

func eventIDs(events []es.Event) []uuid.UUID {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

func newEventIDs(events ...[]es.NewEvent) []uuid.UUID {
	var ids []uuid.UUID
	for _, batch := range events {
		for _, e := range batch {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// requireEventsMatch checks that got are exactly the events of want, in
// order, with the stream, versions and positions each append returned.
func requireEventsMatch(t *testing.T, got []es.Event, want ...orderedAppend) {
	t.Helper()
	var wantIDs []uuid.UUID
	for _, w := range want {
		wantIDs = append(wantIDs, newEventIDs(w.events)...)
	}
	require.Equal(t, wantIDs, eventIDs(got), "events in the global log")
	i := 0
	for _, w := range want {
		for j := range w.events {
			e := got[i]
			require.Equal(t, w.stream, e.StreamID)
			require.Equal(t, w.res.FirstVersion+int64(j), e.Version)
			require.Equal(t, w.res.LastPosition.TxKey(), e.Position.TxKey(), "transaction key of %s v%d", e.StreamID, e.Version)
			require.GreaterOrEqual(t, e.Position.Global(), w.res.FirstPosition.Global())
			require.LessOrEqual(t, e.Position.Global(), w.res.LastPosition.Global())
			i++
		}
	}
	for i := 1; i < len(got); i++ {
		require.True(t, got[i-1].Position.Before(got[i].Position), "positions must increase: %s then %s",
			got[i-1].Position, got[i].Position)
	}
}

// orderedAppend is an append and its result, for requireEventsMatch.
type orderedAppend struct {
	stream string
	events []es.NewEvent
	res    es.AppendResult
}

func TestOrderingOutstandingTransactionHoldsReadAllBack(t *testing.T) {
	t.Parallel()

	// setup: tx A appends to a-1 and stays open; then B appends to b-1 and
	// commits. B's transaction key is above A's, and A's is the horizon.
	setup := func(t *testing.T) (*orderingBundle, pgx.Tx, orderedAppend, orderedAppend) {
		t.Helper()
		b := orderingSetup(t)
		txA := b.begin(t)
		a := orderedAppend{stream: "a-1", events: newEvents(2, "A")}
		var err error
		a.res, err = b.store.WithTx(txA).Append(b.ctx, a.stream, es.NoStream, a.events)
		require.NoError(t, err)

		bb := orderedAppend{stream: "b-1", events: newEvents(1, "B")}
		bb.res, err = b.store.Append(b.ctx, bb.stream, es.NoStream, bb.events)
		require.NoError(t, err)
		require.Greater(t, bb.res.LastPosition.TxKey(), a.res.LastPosition.TxKey(), "B's transaction key must be above A's")
		require.Greater(t, bb.res.FirstPosition.Global(), a.res.LastPosition.Global())

		// A is running: nothing at or after its key is visible, not even
		// B's committed event.
		require.Empty(t, b.readAll(t, es.Position{}), "ReadAll while A is open")
		return b, txA, a, bb
	}

	t.Run("Commit", func(t *testing.T) {
		t.Parallel()
		b, txA, a, bb := setup(t)
		// Still nothing with a filter that selects only B's category.
		for e, err := range b.store.ReadAll(b.ctx, &es.ReadAllOpts{Categories: []string{"b"}}) {
			require.NoError(t, err)
			require.Failf(t, "ReadAll by category while A is open", "got %s v%d", e.StreamID, e.Version)
		}

		require.NoError(t, txA.Commit(b.ctx))
		got := b.waitReadAll(t, es.Position{}, 3)
		requireEventsMatch(t, got, a, bb)
	})

	t.Run("Rollback", func(t *testing.T) {
		t.Parallel()
		b, txA, _, bb := setup(t)

		require.NoError(t, txA.Rollback(b.ctx))
		got := b.waitReadAll(t, es.Position{}, 1)
		requireEventsMatch(t, got, bb)
		_, err := b.store.StreamInfo(b.ctx, "a-1")
		require.ErrorIs(t, err, es.ErrNotFound)
	})

	// A reader that has read past A's global position (an event of an older
	// transaction that committed while A was open) must still get A's events
	// and B's after A commits: a reader by global_position alone would skip
	// A's events (Eventuous #222, Emmett #336, commanded #3).
	t.Run("ReaderAheadOfOutstandingGlobalPosition", func(t *testing.T) {
		t.Parallel()
		b := orderingSetup(t)

		// D takes its transaction id first, appends only after A.
		txD := b.begin(t)
		var xidD uint64
		require.NoError(t, txD.QueryRow(b.ctx, "SELECT pg_current_xact_id()").Scan(&xidD))

		txA := b.begin(t)
		a := orderedAppend{stream: "a-1", events: newEvents(2, "A")}
		var err error
		a.res, err = b.store.WithTx(txA).Append(b.ctx, a.stream, es.NoStream, a.events)
		require.NoError(t, err)
		require.Greater(t, a.res.LastPosition.TxKey(), xidD)

		d := orderedAppend{stream: "d-1", events: newEvents(1, "D")}
		d.res, err = b.store.WithTx(txD).Append(b.ctx, d.stream, es.NoStream, d.events)
		require.NoError(t, err)
		require.Equal(t, xidD, d.res.LastPosition.TxKey())
		require.Greater(t, d.res.FirstPosition.Global(), a.res.LastPosition.Global(),
			"D's global position must be past A's for this test to mean something")
		require.NoError(t, txD.Commit(b.ctx))

		// D is below the horizon (A is the oldest running transaction).
		got := b.waitReadAll(t, es.Position{}, 1)
		requireEventsMatch(t, got, d)
		p := got[0].Position

		bb := orderedAppend{stream: "b-1", events: newEvents(2, "B")}
		bb.res, err = b.store.Append(b.ctx, bb.stream, es.NoStream, bb.events)
		require.NoError(t, err)
		require.Empty(t, b.readAll(t, p), "ReadAll after %s while A is open", p)

		require.NoError(t, txA.Commit(b.ctx))
		got = b.waitReadAll(t, p, 4)
		requireEventsMatch(t, got, a, bb)
		// The whole log, from the start, in the same order.
		requireEventsMatch(t, b.readAll(t, es.Position{}), d, a, bb)
	})
}

func TestOrderingPerStreamOrderWhenTransactionWroteElsewhereFirst(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)

	// T1 writes elsewhere first, so its xid is the lower one.
	tx1 := b.begin(t)
	x := orderedAppend{stream: "x-1", events: newEvents(1, "X")}
	var err error
	x.res, err = b.store.WithTx(tx1).Append(b.ctx, x.stream, es.NoStream, x.events)
	require.NoError(t, err)
	var xid1 uint64
	var pid1 uint32
	require.NoError(t, tx1.QueryRow(b.ctx, "SELECT pg_current_xact_id(), pg_backend_pid()").Scan(&xid1, &pid1))
	require.Equal(t, xid1, x.res.LastPosition.TxKey())

	// T2, a later transaction, appends version 1 and holds the stream row.
	tx2 := b.begin(t)
	v1 := orderedAppend{stream: "s-1", events: newEvents(1, "V1")}
	v1.res, err = b.store.WithTx(tx2).Append(b.ctx, v1.stream, es.NoStream, v1.events)
	require.NoError(t, err)
	xid2 := v1.res.LastPosition.TxKey()
	require.Less(t, xid1, xid2, "T1's xid must be below T2's")

	// T1 appends to s-1 and waits for T2's row lock.
	v2 := orderedAppend{stream: "s-1", events: newEvents(1, "V2")}
	type result struct {
		res es.AppendResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := b.store.WithTx(tx1).Append(b.ctx, v2.stream, es.Any, v2.events)
		done <- result{res, err}
	}()
	waitForLockWait(t, b.ctx, b.pool, pid1, done)

	require.NoError(t, tx2.Commit(b.ctx))
	var r result
	select {
	case r = <-done:
	case <-b.ctx.Done():
		require.FailNow(t, "T1's append did not finish after T2 committed")
	}
	require.NoError(t, r.err)
	v2.res = r.res
	require.Equal(t, int64(2), v2.res.FirstVersion)
	require.Equal(t, int64(2), v2.res.StreamVersion)
	// k = greatest(own xid, stream's previous k) = T2's xid.
	require.Equal(t, xid2, v2.res.LastPosition.TxKey(), "T1's key on s-1 must be T2's xid, not its own (%d)", xid1)
	require.NoError(t, tx1.Commit(b.ctx))

	got := b.waitReadAll(t, es.Position{}, 3)
	requireEventsMatch(t, got, x, v1, v2)

	// The same in SQL: v2's transaction key is not below v1's, and the
	// stream row keeps the latest key.
	rows, err := b.pool.Query(b.ctx, fmt.Sprintf(
		"SELECT version, transaction_id FROM %s.events WHERE stream_id = 's-1' ORDER BY version", b.schema))
	require.NoError(t, err)
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]uint64, error) {
		var v, k uint64
		err := row.Scan(&v, &k)
		return [2]uint64{v, k}, err
	})
	require.NoError(t, err)
	require.Equal(t, [][2]uint64{{1, xid2}, {2, xid2}}, keys)
	require.GreaterOrEqual(t, keys[1][1], keys[0][1])
	var streamKey uint64
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		"SELECT transaction_id FROM %s.streams WHERE stream_id = 's-1'", b.schema)).Scan(&streamKey))
	require.Equal(t, xid2, streamKey)
}

// waitForLockWait polls, through pool, until backend pid waits on a lock.
// It fails if the goroutine reporting on done finishes first, or when ctx
// ends.
func waitForLockWait[T any](t *testing.T, ctx context.Context, pool *pgxpool.Pool, pid uint32, done <-chan T) {
	t.Helper()
	for {
		var waitType *string
		require.NoError(t, pool.QueryRow(ctx,
			"SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid).Scan(&waitType))
		if waitType != nil && *waitType == "Lock" {
			return
		}
		select {
		case r := <-done:
			require.FailNowf(t, "the call did not wait for a lock", "it returned %+v", r)
		case <-ctx.Done():
			require.FailNowf(t, "no lock wait", "backend %d never waited on a lock: %v", pid, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestOrderingFailedExpectedVersionBurnsNoPosition(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)

	first := newEvents(3, "E")
	res, err := b.store.Append(b.ctx, "s-1", es.NoStream, first)
	require.NoError(t, err)
	last := res.LastPosition.Global()

	failing := []struct {
		stream   string
		expected es.ExpectedVersion
	}{
		{"s-1", es.NoStream},
		{"s-1", es.Exactly(1)},
		{"s-1", es.Exactly(2)},
		{"s-1", es.Exactly(4)},
		{"s-1", es.Exactly(100)},
		{"new-1", es.StreamExists},
		{"new-1", es.Exactly(1)},
	}
	for _, f := range failing {
		_, err := b.store.Append(b.ctx, f.stream, f.expected, newEvents(5, "Lost"))
		require.ErrorIs(t, err, es.ErrWrongVersion, "%s expecting %s", f.stream, f.expected)
	}
	// The same in a caller's transaction, which then commits other work.
	tx := b.begin(t)
	_, err = b.store.WithTx(tx).Append(b.ctx, "s-1", es.Exactly(1), newEvents(2, "Lost"))
	require.ErrorIs(t, err, es.ErrWrongVersion)
	require.NoError(t, tx.Commit(b.ctx))

	next, err := b.store.Append(b.ctx, "s-1", es.Exactly(3), newEvents(2, "E"))
	require.NoError(t, err)
	require.Equal(t, last+1, next.FirstPosition.Global(), "the losers must not have burnt positions")
	require.Equal(t, last+2, next.LastPosition.Global())
	require.Equal(t, int64(4), next.FirstVersion)

	other, err := b.store.Append(b.ctx, "new-1", es.NoStream, newEvents(1, "E"))
	require.NoError(t, err)
	require.Equal(t, last+3, other.FirstPosition.Global())

	// No gaps at all in the schema's positions.
	var n, maxPos int64
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		"SELECT count(*), max(global_position) FROM %s.events", b.schema)).Scan(&n, &maxPos))
	require.Equal(t, int64(6), n)
	require.Equal(t, n, maxPos)

	// A duplicate id is refused and writes nothing. (It may consume a
	// position: the id is detected by the insert itself, so that the common
	// path runs no separate lookup; positions are ordered, not dense.)
	_, err = b.store.Append(b.ctx, "t-1", es.Any, []es.NewEvent{first[0]})
	require.ErrorIs(t, err, es.ErrDuplicateEvent)
	_, err = b.store.StreamInfo(b.ctx, "t-1")
	require.ErrorIs(t, err, es.ErrNotFound)
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		"SELECT count(*) FROM %s.events", b.schema)).Scan(&n))
	require.Equal(t, int64(6), n)
}

func TestOrderingAppendTx(t *testing.T) {
	t.Parallel()

	t.Run("ConflictLeavesTransactionUsable", func(t *testing.T) {
		t.Parallel()
		b := orderingSetup(t)
		e0 := orderedAppend{stream: "acct-1", events: newEvents(1, "Opened")}
		var err error
		e0.res, err = b.store.Append(b.ctx, e0.stream, es.NoStream, e0.events)
		require.NoError(t, err)

		tx := b.begin(t)
		_, err = tx.Exec(b.ctx, fmt.Sprintf("CREATE TABLE %s.side (note text)", b.schema))
		require.NoError(t, err)

		e1 := orderedAppend{stream: "acct-1", events: newEvents(2, "Deposited")}
		_, err = b.store.WithTx(tx).Append(b.ctx, e1.stream, es.NoStream, e1.events)
		var conflict *es.VersionConflictError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, es.NoStream, conflict.Expected)
		require.Equal(t, int64(1), conflict.Actual)

		_, err = b.store.WithTx(tx).Append(b.ctx, "other-1", es.Any, e0.events)
		require.ErrorIs(t, err, es.ErrDuplicateEvent)

		// The transaction is still usable: the right version, other writes.
		e1.res, err = b.store.WithTx(tx).Append(b.ctx, e1.stream, es.Exactly(conflict.Actual), e1.events)
		require.NoError(t, err)
		require.Equal(t, int64(2), e1.res.FirstVersion)
		require.Equal(t, int64(3), e1.res.StreamVersion)
		_, err = tx.Exec(b.ctx, fmt.Sprintf("INSERT INTO %s.side VALUES ('written with the events')", b.schema))
		require.NoError(t, err)
		e2 := orderedAppend{stream: "acct-2", events: newEvents(1, "Opened")}
		e2.res, err = b.store.WithTx(tx).Append(b.ctx, e2.stream, es.NoStream, e2.events)
		require.NoError(t, err)

		// Uncommitted: invisible to ReadAll, ReadStream and StreamInfo.
		got := b.waitReadAll(t, es.Position{}, 1)
		requireEventsMatch(t, got, e0)
		var inStream []es.Event
		for e, err := range b.store.ReadStream(b.ctx, "acct-1", nil) {
			require.NoError(t, err)
			inStream = append(inStream, e)
		}
		require.Len(t, inStream, 1)
		info, err := b.store.StreamInfo(b.ctx, "acct-1")
		require.NoError(t, err)
		require.Equal(t, int64(1), info.Version)
		_, err = b.store.StreamInfo(b.ctx, "acct-2")
		require.ErrorIs(t, err, es.ErrNotFound)

		require.NoError(t, tx.Commit(b.ctx))
		got = b.waitReadAll(t, es.Position{}, 4)
		requireEventsMatch(t, got, e0, e1, e2)
		var note string
		require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf("SELECT note FROM %s.side", b.schema)).Scan(&note))
		require.Equal(t, "written with the events", note)
	})

	t.Run("RollbackDiscards", func(t *testing.T) {
		t.Parallel()
		b := orderingSetup(t)
		discarded := newEvents(2, "Discarded")

		tx := b.begin(t)
		res, err := b.store.WithTx(tx).Append(b.ctx, "r-1", es.NoStream, discarded)
		require.NoError(t, err)
		require.Equal(t, int64(2), res.StreamVersion)
		require.NoError(t, tx.Rollback(b.ctx))

		_, err = b.store.StreamInfo(b.ctx, "r-1")
		require.ErrorIs(t, err, es.ErrNotFound)
		for e, err := range b.store.ReadStream(b.ctx, "r-1", nil) {
			require.NoError(t, err)
			require.Failf(t, "rolled-back event read", "%s v%d", e.StreamID, e.Version)
		}
		marker := orderedAppend{stream: "m-1", events: newEvents(1, "Marker")}
		marker.res, err = b.store.Append(b.ctx, marker.stream, es.NoStream, marker.events)
		require.NoError(t, err)
		requireEventsMatch(t, b.waitReadAll(t, es.Position{}, 1), marker)

		// Nothing of the rolled-back append remains: its ids and the stream
		// are free again.
		again, err := b.store.Append(b.ctx, "r-1", es.NoStream, discarded)
		require.NoError(t, err)
		require.Equal(t, int64(1), again.FirstVersion)
		require.Equal(t, int64(2), again.StreamVersion)
	})
}

func TestOrderingSQLStateMapping(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)
	stored := newEvents(2, "E")
	_, err := b.store.Append(b.ctx, "s-1", es.NoStream, stored)
	require.NoError(t, err)

	t.Run("WrongVersion", func(t *testing.T) {
		for _, tc := range []struct {
			stream   string
			expected es.ExpectedVersion
			actual   int64
		}{
			{"s-1", es.Exactly(5), 2},
			{"s-1", es.Exactly(1), 2},
			{"s-1", es.NoStream, 2},
			{"missing-1", es.StreamExists, 0},
			{"missing-1", es.Exactly(3), 0},
		} {
			appendTx := func(ctx context.Context, stream string, expected es.ExpectedVersion, events []es.NewEvent) (es.AppendResult, error) {
				tx, err := b.pool.Begin(ctx)
				require.NoError(t, err)
				defer func() { require.NoError(t, tx.Rollback(ctx)) }()
				return b.store.WithTx(tx).Append(ctx, stream, expected, events)
			}
			for name, appendFn := range map[string]func(context.Context, string, es.ExpectedVersion, []es.NewEvent) (es.AppendResult, error){
				"Append": b.store.Append, "AppendTx": appendTx,
			} {
				_, err := appendFn(b.ctx, tc.stream, tc.expected, newEvents(1, "E"))
				require.ErrorIs(t, err, es.ErrWrongVersion, "%s to %s expecting %s", name, tc.stream, tc.expected)
				require.NotErrorIs(t, err, es.ErrDuplicateEvent)
				var conflict *es.VersionConflictError
				require.ErrorAs(t, err, &conflict)
				require.Equal(t, es.VersionConflictError{StreamID: tc.stream, Expected: tc.expected, Actual: tc.actual}, *conflict,
					"%s to %s", name, tc.stream)
			}
		}
	})

	t.Run("DuplicateEvent", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			stream string
			events []es.NewEvent
		}{
			{"stored in another stream", "t-1", stored[:1]},
			{"some new, some stored", "s-1", append(newEvents(1, "E"), stored[1])},
			{"not in the stored order", "s-1", []es.NewEvent{stored[1], stored[0]}},
		} {
			_, err := b.store.Append(b.ctx, tc.stream, es.Any, tc.events)
			require.ErrorIs(t, err, es.ErrDuplicateEvent, tc.name)
			require.NotErrorIs(t, err, es.ErrWrongVersion, tc.name)
			require.Equal(t, "PE002", pgCode(err), tc.name)
		}
		// An exact retry is no error: the original result.
		res, err := b.store.Append(b.ctx, "s-1", es.NoStream, stored)
		require.NoError(t, err)
		require.Equal(t, int64(2), res.StreamVersion)
	})

	t.Run("InvalidArgumentFromRows", func(t *testing.T) {
		// The raise happens while rows are read, not in Query (pgx #811):
		// this is the path pgstore must translate.
		rows, err := b.pool.Query(b.ctx, fmt.Sprintf("SELECT * FROM %s.read_stream($1, $2, $3)", b.schema), "s-1", 1, -1)
		require.NoError(t, err, "the raise should not surface from Query")
		for rows.Next() {
			require.Fail(t, "a row from read_stream with max_count -1")
		}
		require.Equal(t, "PE003", pgCode(rows.Err()))
		rows.Close()

		for _, opts := range []*es.ReadStreamOpts{
			{MaxCount: -1},
			{MaxCount: -1, Backwards: true},
			{MaxCount: -1, From: 2, Backwards: true},
		} {
			var errs []error
			for e, err := range b.store.ReadStream(b.ctx, "s-1", opts) {
				if err != nil {
					errs = append(errs, err)
				} else {
					require.Failf(t, "an event from ReadStream with MaxCount -1", "%+v", e)
				}
			}
			require.Len(t, errs, 1, "%+v", opts)
			require.ErrorIs(t, errs[0], es.ErrInvalidArgument, "%+v", opts)
		}
	})

	t.Run("RaisedWhileRowsStream", func(t *testing.T) {
		// A read function that raises PE003 on its second row, after the
		// first has been sent: the iterator yields that event, then exactly
		// one error, translated from rows.Err.
		pool, schema := pgtest.NewSchema(t)
		store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
		require.NoError(t, err)
		_, err = store.Append(b.ctx, "s-1", es.NoStream, newEvents(3, "E"))
		require.NoError(t, err)
		_, err = pool.Exec(b.ctx, fmt.Sprintf(`
			CREATE OR REPLACE FUNCTION %[1]s.read_stream(p_stream_id text, p_from_version bigint DEFAULT 1, p_max_count int DEFAULT NULL)
			RETURNS TABLE (global_position bigint, transaction_id xid8, stream_id text, version bigint, event_id uuid,
			               event_type text, data bytea, metadata bytea, recorded_at timestamptz, schema_version int)
			LANGUAGE sql STABLE AS $$
			    SELECT e.global_position, e.transaction_id, e.stream_id, e.version, e.event_id,
			           e.event_type, e.data, e.metadata, e.recorded_at, e.schema_version
			      FROM %[1]s.events AS e
			     WHERE e.stream_id = p_stream_id AND e.version >= p_from_version
			       AND CASE WHEN e.version >= 2
			                THEN %[1]s.invalid_argument('read_stream', 'test', 'raised mid-stream', e.version) IS NULL
			                ELSE true END
			     ORDER BY e.version
			     LIMIT p_max_count
			$$`, schema))
		require.NoError(t, err)

		var got []int64
		var errs []error
		for e, err := range store.ReadStream(b.ctx, "s-1", nil) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			got = append(got, e.Version)
		}
		require.Equal(t, []int64{1}, got)
		require.Len(t, errs, 1)
		require.ErrorIs(t, errs[0], es.ErrInvalidArgument)
		require.Equal(t, "PE003", pgCode(errs[0]), "raised by the SQL function")
	})
}

// pgCode returns the SQLSTATE of the *pgconn.PgError inside err, or "".
func pgCode(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// A follower calls ReadAll again and again on the same connections, and
// pgx prepares each statement once per connection: from the sixth execution
// on, PostgreSQL may plan it generically. Reads must keep working then.
func TestOrderingFollowerReadsRepeatedlyOnOneConnection(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)
	config, err := pgxpool.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	config.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(b.ctx, config)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: b.schema})
	require.NoError(t, err)

	var last es.Position
	for i := range 12 {
		res, err := store.Append(b.ctx, "f-1", es.Exactly(int64(i)), newEvents(1, "E"))
		require.NoError(t, err, "append %d", i)
		for last.Before(res.LastPosition) {
			for e, err := range store.ReadAll(b.ctx, &es.ReadAllOpts{After: last}) {
				require.NoError(t, err, "read %d", i)
				last = e.Position
			}
			for _, err := range store.ReadStream(b.ctx, "f-1", &es.ReadStreamOpts{MaxCount: 100}) {
				require.NoError(t, err, "read stream %d", i)
			}
			for _, err := range store.ReadStream(b.ctx, "f-1", &es.ReadStreamOpts{MaxCount: 1, Backwards: true}) {
				require.NoError(t, err, "read stream backwards %d", i)
			}
			if last.Before(res.LastPosition) {
				select { // polling: another test holds the horizon back
				case <-b.ctx.Done():
					require.FailNowf(t, "ReadAll did not catch up", "ReadAll never reached %s: %v", res.LastPosition, b.ctx.Err())
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		require.Equal(t, res.LastPosition, last)
	}
}
