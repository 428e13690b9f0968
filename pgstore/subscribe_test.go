package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/storekit"
)

// deliveryTimeout bounds every wait for a delivery (or for a subscription
// to stop, a checkpoint to be saved, goroutines to end). It is generous: on
// a busy machine a delivery can take many times as long as on a quiet one,
// and another test may hold the read_all horizon back for a long while. A
// wait ends as soon as its condition holds; the bound only stops a test
// that hangs.
const deliveryTimeout = 5 * time.Minute

// quietWindow is how long a test watches a subscription to conclude that
// it delivers nothing: with the fast options below it reads the log about
// fifteen times meanwhile.
const quietWindow = 300 * time.Millisecond

// fastOpts returns o with a short retry backoff.
func fastOpts(o es.SubscribeOpts) *es.SubscribeOpts {
	o.RetryBackoff = cmpOr(o.RetryBackoff, time.Millisecond)
	return &o
}

// fastConfig returns the config of a store on schema whose subscriptions
// poll, re-read, wait for the lease and reconnect quickly; the fields set in
// over (at most one) replace those.
func fastConfig(schema string, over ...pgstore.SubscriptionConfig) *pgstore.Config {
	c := pgstore.SubscriptionConfig{
		PollInterval:        20 * time.Millisecond,
		RepollDelay:         5 * time.Millisecond,
		LeasePollInterval:   20 * time.Millisecond,
		ReconnectBackoff:    10 * time.Millisecond,
		ReconnectBackoffMax: 100 * time.Millisecond,
	}
	for _, o := range over {
		c.PollInterval = cmpOr(o.PollInterval, c.PollInterval)
		c.RepollDelay = cmpOr(o.RepollDelay, c.RepollDelay)
		c.LeasePollInterval = cmpOr(o.LeasePollInterval, c.LeasePollInterval)
		c.ReconnectBackoff = cmpOr(o.ReconnectBackoff, c.ReconnectBackoff)
		c.ReconnectBackoffMax = cmpOr(o.ReconnectBackoffMax, c.ReconnectBackoffMax)
		c.TxMaxDuration = cmpOr(o.TxMaxDuration, c.TxMaxDuration)
		c.LeaseTTL = cmpOr(o.LeaseTTL, c.LeaseTTL)
	}
	return &pgstore.Config{Schema: schema, Subscriptions: c}
}

// fastStore returns a store on a schema of its own with fastConfig.
func fastStore(t *testing.T, over ...pgstore.SubscriptionConfig) *pgstore.Store {
	t.Helper()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema, over...))
	require.NoError(t, err)
	return store
}

func cmpOr(d, def time.Duration) time.Duration {
	if d != 0 {
		return d
	}
	return def
}

// collector records deliveries, safe for concurrent use.
type collector struct {
	mu      sync.Mutex
	events  []es.Event
	count   map[uuid.UUID]int
	changed chan struct{}
}

func newCollector() *collector {
	return &collector{count: map[uuid.UUID]int{}, changed: make(chan struct{})}
}

func (c *collector) add(e es.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	c.count[e.ID]++
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *collector) handle(_ context.Context, e es.Event) error {
	c.add(e)
	return nil
}

func (c *collector) snapshot() ([]es.Event, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]es.Event(nil), c.events...), c.changed
}

// waitUntil waits until done(events) holds.
func (c *collector) waitUntil(t *testing.T, what string, done func([]es.Event) bool) []es.Event {
	t.Helper()
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()
	for {
		events, changed := c.snapshot()
		if done(events) {
			return events
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("after %v: %s: %d events delivered", deliveryTimeout, what, len(events))
		}
	}
}

// distinct returns the number of distinct events delivered.
func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.count)
}

// running is a subscription running in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func run(t *testing.T, f func(ctx context.Context) error) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(deliveryTimeout):
		t.Fatal("the subscription did not stop")
		return nil
	}
}

// listenerPIDs selects the backends of the subscription name's listener
// connections (the active one and any waiting for the lock).
const listenerPIDs = "SELECT pid FROM pg_stat_activity WHERE application_name = 'es subscription ' || $1"

// leaseHolderPID returns the backend holding the subscription's lease.
func leaseHolderPID(t *testing.T, ctx context.Context, store *pgstore.Store, name string) int {
	t.Helper()
	var pid int
	require.NoError(t, store.Pool().QueryRow(ctx, "SELECT holder_pid FROM "+store.Schema()+
		".subscription_leases WHERE subscription_id = $1", name).Scan(&pid))
	return pid
}

// requireStreamOrder checks that each stream's events come in version
// order, starting at 1 and without gaps, and that positions increase.
func requireStreamOrder(t *testing.T, events []es.Event) {
	t.Helper()
	next := map[string]int64{}
	for i, e := range events {
		if i > 0 {
			require.True(t, events[i-1].Position.Before(e.Position), "positions %s then %s", events[i-1].Position, e.Position)
		}
		require.Equal(t, next[e.StreamID]+1, e.Version, "stream %s", e.StreamID)
		next[e.StreamID] = e.Version
	}
}

// TestSubscribeOutstandingTransaction: writer A appends and holds its
// commit, writer B commits later events; the subscription does not pass
// A; committing A delivers both in order; rolling A back lets it move on.
func TestSubscribeOutstandingTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := fastStore(t)
	c := newCollector()
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "outstanding", c.handle, fastOpts(es.SubscribeOpts{}))
	})

	txA, err := store.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = txA.Rollback(context.Background()) }()
	_, err = store.WithTx(txA).Append(ctx, "a-1", es.NoStream, newEvents(1, "A"))
	require.NoError(t, err)
	resB, err := store.Append(ctx, "b-1", es.NoStream, newEvents(2, "B"))
	require.NoError(t, err)

	// B committed, but A, older, is still running: nothing is delivered.
	deadline := time.After(quietWindow)
	for quiet := true; quiet; {
		events, changed := c.snapshot()
		require.Empty(t, events, "delivered past an outstanding transaction")
		select {
		case <-changed:
		case <-deadline:
			quiet = false
		}
	}
	require.NoError(t, txA.Commit(ctx))
	got := c.waitUntil(t, "A and B", func(events []es.Event) bool { return len(events) >= 3 })
	require.Equal(t, []string{"a-1", "b-1", "b-1"}, []string{got[0].StreamID, got[1].StreamID, got[2].StreamID})
	require.Equal(t, resB.LastPosition, got[2].Position)

	// Roll back: the subscription moves on past it.
	txA2, err := store.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = store.WithTx(txA2).Append(ctx, "a-2", es.NoStream, newEvents(1, "A"))
	require.NoError(t, err)
	resB2, err := store.Append(ctx, "b-2", es.NoStream, newEvents(1, "B"))
	require.NoError(t, err)
	require.NoError(t, txA2.Rollback(ctx))
	got = c.waitUntil(t, "B2", func(events []es.Event) bool { return len(events) >= 4 })
	require.Len(t, got, 4)
	require.Equal(t, "b-2", got[3].StreamID)
	require.Equal(t, resB2.LastPosition, got[3].Position)
	require.NoError(t, sub.stop(t))
}

// TestSubscribeStress runs writers (some appending inside longer
// transactions that wrote elsewhere first) against two subscriptions, one
// plain and one transactional: every committed event is delivered exactly
// once to each, per-stream versions in order, totals equal.
func TestSubscribeStress(t *testing.T) {
	t.Parallel()
	const (
		writers = 4
		batches = 60
	)
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "CREATE TABLE "+schema+".elsewhere (n int); CREATE TABLE "+schema+".projection (event_id uuid PRIMARY KEY, stream_id text, version bigint)")
	require.NoError(t, err)

	plain := newCollector()
	subPlain := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "stress-plain", plain.handle, fastOpts(es.SubscribeOpts{BatchSize: 50, CheckpointEvery: 20}))
	})
	txc := newCollector()
	subTx := run(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, "stress-tx", func(ctx context.Context, etx es.Tx, e es.Event) error {
			tx := pgstore.PgxTx(etx)
			if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".projection VALUES ($1, $2, $3)", e.ID, e.StreamID, e.Version); err != nil {
				return err
			}
			txc.add(e)
			return nil
		}, fastOpts(es.SubscribeOpts{BatchSize: 37}))
	})

	var total atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				stream := fmt.Sprintf("stress-%d", (w*7+b)%10) // streams shared by writers
				events := newEvents(1+b%5, "Stressed")
				if b%3 == 0 {
					// A longer transaction that wrote elsewhere first (it
					// has an older xid than appends it waits for).
					tx, err := pool.Begin(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					_, err = tx.Exec(ctx, "INSERT INTO "+schema+".elsewhere VALUES (1)")
					if err == nil {
						_, err = store.WithTx(tx).Append(ctx, stream, es.Any, events)
					}
					if err == nil && b%6 == 0 {
						if err := tx.Rollback(ctx); err != nil { // rolled back: never delivered
							t.Error(err)
							return
						}
						continue
					}
					if err == nil {
						err = tx.Commit(ctx)
					}
					if err != nil {
						_ = tx.Rollback(ctx)
						t.Error(err)
						return
					}
				} else if _, err := store.Append(ctx, stream, es.Any, events); err != nil {
					t.Error(err)
					return
				}
				total.Add(int64(len(events)))
			}
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())
	n := int(total.Load())

	all := readAllVisible(t, store, n)
	requireStreamOrder(t, all)

	for _, c := range []*collector{plain, txc} {
		got := c.waitUntil(t, "all events", func(events []es.Event) bool { return len(events) >= n })
		require.Len(t, got, n)
		requireStreamOrder(t, got)
		for i := range all {
			require.Equal(t, all[i].ID, got[i].ID, "event %d", i)
		}
	}
	// The transactional form's last batch commits after its handler calls.
	pgtestAwaitCheckpoint(t, store, "stress-tx", all[n-1].Position)
	require.NoError(t, subPlain.stop(t))
	require.NoError(t, subTx.stop(t))
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".projection").Scan(&rows))
	require.Equal(t, n, rows)
	for _, name := range []string{"stress-plain", "stress-tx"} {
		pos, ok, err := store.Checkpoint(ctx, name)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, all[n-1].Position, pos, name)
	}
}

// TestSubscribeListenerKilled terminates the listener's backend again and
// again while events are appended: the subscription reconnects, LISTENs
// again, catches up and misses nothing. With es.notify=off for the
// writers, polling alone delivers everything.
func TestSubscribeListenerKilled(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{true, false} {
		t.Run(fmt.Sprintf("Notify=%v", notify), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pool, schema := pgtest.NewSchema(t)
			writerPool := pool
			if !notify {
				config, err := pgxpool.ParseConfig(pgtest.ConnString(t))
				require.NoError(t, err)
				config.ConnConfig.RuntimeParams["es.notify"] = "off"
				writerPool, err = pgxpool.NewWithConfig(ctx, config)
				require.NoError(t, err)
				t.Cleanup(writerPool.Close)
			}
			store, err := pgstore.New(pool, fastConfig(schema))
			require.NoError(t, err)
			writer, err := pgstore.New(writerPool, fastConfig(schema))
			require.NoError(t, err)

			name := "killed-" + schema
			var reconnects atomic.Int64
			c := newCollector()
			sub := run(t, func(ctx context.Context) error {
				return store.Subscribe(ctx, name, c.handle, fastOpts(es.SubscribeOpts{
					CheckpointEvery: 3,
					OnError:         func(error) { reconnects.Add(1) },
				}))
			})
			const rounds, per = 5, 10
			n := 0
			for round := range rounds {
				for i := range per {
					_, err := writer.Append(ctx, fmt.Sprintf("k-%d", i), es.Any, newEvents(1+i%2, "K"))
					require.NoError(t, err)
					n += 1 + i%2
				}
				c.waitUntil(t, "before the kill", func([]es.Event) bool { return c.distinct() >= n-per/2 })
				// Kill mid-stream: the listener (and its lock) goes away.
				// It may still be reconnecting after the previous kill: poll.
				killed := pgtest.Terminate(t, ctx, listenerPIDs, name)
				for deadline := time.After(deliveryTimeout); killed == 0; killed = pgtest.Terminate(t, ctx, listenerPIDs, name) {
					select {
					case <-deadline:
						require.FailNowf(t, "no listener", "round %d: no listener to kill after %v", round, deliveryTimeout)
					case <-time.After(5 * time.Millisecond):
					}
				}
				require.Equal(t, 1, killed, "round %d: the listener's backend", round)
			}
			got := c.waitUntil(t, "all events", func([]es.Event) bool { return c.distinct() >= n })
			all := readAllVisible(t, store, n)
			// The events may all have come before the last kill: wait
			// until the subscription has noticed it (OnError) and is back
			// at the end of the log (its checkpoint there), so that
			// stopping it does not race its reconnect.
			require.Eventually(t, func() bool { return reconnects.Load() >= rounds }, deliveryTimeout, 5*time.Millisecond,
				"reconnects reported to OnError")
			pgtestAwaitCheckpoint(t, store, name, all[n-1].Position)
			require.NoError(t, sub.stop(t))
			require.GreaterOrEqual(t, reconnects.Load(), int64(rounds), "reconnects reported to OnError")

			// Nothing missed, in order; redeliveries only of events after
			// a saved checkpoint (at least once).
			c.mu.Lock()
			for _, e := range all {
				require.GreaterOrEqual(t, c.count[e.ID], 1, "event %s missed", e.Position)
			}
			c.mu.Unlock()
			requirePositionsNondecreasingPerRun(t, got)
			pos, _, err := store.Checkpoint(ctx, name)
			require.NoError(t, err)
			require.Equal(t, all[n-1].Position, pos)
		})
	}
}

// requirePositionsNondecreasingPerRun checks that deliveries go forwards,
// except for jumps back to a saved checkpoint after a reconnect, from
// which they go forwards again.
func requirePositionsNondecreasingPerRun(t *testing.T, events []es.Event) {
	t.Helper()
	seen := map[uuid.UUID]bool{}
	for i, e := range events {
		if i > 0 && !events[i-1].Position.Before(e.Position) {
			require.True(t, seen[e.ID], "a jump back to an event not delivered before: %s after %s", e.Position, events[i-1].Position)
		}
		seen[e.ID] = true
	}
}

// TestSubscribeRaceBetweenListenAndCatchUp appends right after LISTEN
// (before the first read) and right after the first catch-up (before the
// first wait), with a fallback poll of an hour, far longer than the test
// waits: both are delivered through the read and the notification, not by
// the fallback poll.
func TestSubscribeRaceBetweenListenAndCatchUp(t *testing.T) {
	t.Parallel()
	const fallbackPoll = time.Hour
	require.Less(t, deliveryTimeout, fallbackPoll)
	store := fastStore(t, pgstore.SubscriptionConfig{PollInterval: fallbackPoll})
	name := "race-" + store.Schema()
	appended := make(chan es.AppendResult, 2)
	pgstore.SetObserver(store, func(sub string, st storekit.Stage) {
		stage := map[storekit.Stage]string{storekit.StageOpened: "listening", storekit.StageCaughtUp: "caught-up"}[st]
		if sub != name || stage == "" {
			return
		}
		res, err := store.Append(context.Background(), "race-"+stage, es.NoStream, newEvents(1, "Raced"))
		if err != nil {
			t.Error(err)
			return
		}
		appended <- res
	})
	c := newCollector()
	start := time.Now()
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, name, c.handle, fastOpts(es.SubscribeOpts{}))
	})
	got := c.waitUntil(t, "both raced events", func(events []es.Event) bool { return len(events) >= 2 })
	require.Less(t, time.Since(start), fallbackPoll, "delivered by the fallback poll, not at once")
	require.Equal(t, "race-listening", got[0].StreamID)
	require.Equal(t, "race-caught-up", got[1].StreamID)
	require.Equal(t, (<-appended).LastPosition, got[0].Position)
	require.Equal(t, (<-appended).LastPosition, got[1].Position)
	require.NoError(t, sub.stop(t))
}

// TestSubscribeTakeOverWhenActiveDies: two instances; the active one's
// connection dies (its lease is then free, without waiting for it to
// expire); the other takes over and nothing is missed; the first, back,
// waits behind it.
func TestSubscribeTakeOverWhenActiveDies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := fastStore(t, pgstore.SubscriptionConfig{ReconnectBackoff: 500 * time.Millisecond, ReconnectBackoffMax: time.Second})
	name := "takeover"

	a, b := newCollector(), newCollector()
	opts := fastOpts(es.SubscribeOpts{CheckpointEvery: 1})
	// A's OnError, which runs before A reconnects, holds A back until B
	// has taken over: A's backoff alone races B's lock polls, a race a
	// busy machine can make B lose. (OnError must not block in real use;
	// here blocking it orders the two instances.)
	tookOver := make(chan struct{})
	release := sync.OnceFunc(func() { close(tookOver) })
	optsA := *opts
	optsA.OnError = func(error) { <-tookOver }
	subA := run(t, func(ctx context.Context) error { return store.Subscribe(ctx, name, a.handle, &optsA) })
	t.Cleanup(release) // before run's cleanup stops A: cleanups run last first
	_, err := store.Append(ctx, "t-1", es.NoStream, newEvents(2, "T"))
	require.NoError(t, err)
	a.waitUntil(t, "A active", func(events []es.Event) bool { return len(events) >= 2 })
	subB := run(t, func(ctx context.Context) error { return store.Subscribe(ctx, name, b.handle, opts) })
	listeners := func(want int) {
		t.Helper()
		require.Eventually(t, func() bool {
			var n int
			_ = store.Pool().QueryRow(ctx, "SELECT count(*) FROM ("+listenerPIDs+") q", name).Scan(&n)
			return n == want
		}, deliveryTimeout, 5*time.Millisecond, "%d listener connections", want)
	}
	// B is waiting for the lock once two listener connections exist.
	listeners(2)

	// Kill A's connection; B, polling for the lease every 20 ms, takes
	// over at once: the lease's backend is gone.
	require.Equal(t, 1, pgtest.Terminate(t, ctx, "SELECT $1::int", leaseHolderPID(t, ctx, store, name)))
	_, err = store.Append(ctx, "t-1", es.Exactly(2), newEvents(3, "T"))
	require.NoError(t, err)
	got := b.waitUntil(t, "B took over", func(events []es.Event) bool { return len(events) >= 3 })
	require.Equal(t, []int64{3, 4, 5}, []int64{got[0].Version, got[1].Version, got[2].Version})
	events, _ := a.snapshot()
	require.Len(t, events, 2, "A received nothing after losing its lock")

	// A reconnects and waits for the lock B holds: B keeps delivering, A
	// still receives nothing.
	release()
	listeners(2)
	_, err = store.Append(ctx, "t-1", es.Exactly(5), newEvents(1, "T"))
	require.NoError(t, err)
	got = b.waitUntil(t, "B still active", func(events []es.Event) bool { return len(events) >= 4 })
	require.Equal(t, int64(6), got[3].Version)
	events, _ = a.snapshot()
	require.Len(t, events, 2, "A received nothing while B held the lock")
	require.NoError(t, subA.stop(t))
	require.NoError(t, subB.stop(t))
}

// TestSubscribeTxRollsBackFailedBatch: a transactional handler that fails
// after writing rolls its batch back; retried, every event is applied
// exactly once.
func TestSubscribeTxRollsBackFailedBatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "CREATE TABLE "+schema+".applied (event_id uuid PRIMARY KEY, version bigint)")
	require.NoError(t, err)
	res, err := store.Append(ctx, "tx-1", es.NoStream, newEvents(10, "T"))
	require.NoError(t, err)

	var calls sync.Map
	errBoom := errors.New("boom")
	done := make(chan struct{})
	sub := run(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, "tx-retry", func(ctx context.Context, etx es.Tx, e es.Event) error {
			tx := pgstore.PgxTx(etx)
			if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".applied VALUES ($1, $2)", e.ID, e.Version); err != nil {
				return err // a duplicate would fail here
			}
			n, _ := calls.LoadOrStore(e.Version, new(atomic.Int64))
			if c := n.(*atomic.Int64).Add(1); e.Version == 7 && c <= 2 {
				return errBoom // after writing: the write must roll back
			}
			if e.Version == 10 {
				close(done)
			}
			return nil
		}, fastOpts(es.SubscribeOpts{BatchSize: 4, HandlerRetries: 2}))
	})
	select {
	case <-done:
	case <-time.After(deliveryTimeout):
		t.Fatal("not all events applied")
	}
	pgtestAwaitCheckpoint(t, store, "tx-retry", res.LastPosition)
	require.NoError(t, sub.stop(t))
	var n, maxVersion int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*), max(version) FROM "+schema+".applied").Scan(&n, &maxVersion))
	require.Equal(t, int64(10), n)
	require.Equal(t, int64(10), maxVersion)

	// Retries used up: the subscription stops; its batch is not committed.
	_, err = store.Append(ctx, "tx-2", es.NoStream, newEvents(3, "T"))
	require.NoError(t, err)
	err = store.SubscribeTx(ctx, "tx-retry", func(ctx context.Context, etx es.Tx, e es.Event) error {
		tx := pgstore.PgxTx(etx)
		if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".applied VALUES ($1, $2)", e.ID, e.Version); err != nil {
			return err
		}
		if e.Version == 2 {
			return errBoom
		}
		return nil
	}, fastOpts(es.SubscribeOpts{}))
	require.ErrorIs(t, err, errBoom)
	var herr *es.HandlerError
	require.ErrorAs(t, err, &herr)
	require.Equal(t, "tx-2", herr.Event.StreamID)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".applied").Scan(&n))
	require.Equal(t, int64(10), n, "the failed batch rolled back")
	pgtestAwaitCheckpoint(t, store, "tx-retry", res.LastPosition)
}

func pgtestAwaitCheckpoint(t *testing.T, store *pgstore.Store, name string, want es.Position) {
	t.Helper()
	require.Eventually(t, func() bool {
		pos, ok, err := store.Checkpoint(t.Context(), name)
		return err == nil && ok && pos == want
	}, deliveryTimeout, 5*time.Millisecond, "checkpoint of %s at %s", name, want)
}

// TestSubscribeStaleInstanceCannotMoveCheckpointBack: the checkpoint
// functions are a compare-and-set that only goes forwards.
func TestSubscribeStaleInstanceCannotMoveCheckpointBack(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := fastStore(t)
	res, err := store.Append(ctx, "s-1", es.NoStream, newEvents(3, "S"))
	require.NoError(t, err)
	c := newCollector()
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "stale", c.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 1}))
	})
	c.waitUntil(t, "3 events", func(events []es.Event) bool { return len(events) >= 3 })
	require.NoError(t, sub.stop(t))
	pgtestAwaitCheckpoint(t, store, "stale", res.LastPosition)

	// A stale instance expected the checkpoint at the first event.
	first, _ := c.snapshot()
	_, err = store.Pool().Exec(ctx, "SELECT * FROM "+store.Schema()+".advance_checkpoint('stale', $1, $2, $3, $4)",
		first[0].Position.TxKey(), first[0].Position.Global(), first[1].Position.TxKey(), first[1].Position.Global())
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "PE007", pgErr.Code, "checkpoint conflict")
	pgtestAwaitCheckpoint(t, store, "stale", res.LastPosition)
}

// TestSubscribeNoLeaks runs both forms through a reconnect and a stop and
// checks that no goroutine is left behind. It does not run in parallel:
// goleak must see no other test's goroutines.
func TestSubscribeNoLeaks(t *testing.T) {
	ctx := t.Context()
	store := fastStore(t)
	ignore := goleak.IgnoreCurrent()

	c := newCollector()
	name := "leaks-" + store.Schema()
	subPlain := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, name, c.handle, fastOpts(es.SubscribeOpts{}))
	})
	subTx := run(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, name+"-tx", func(context.Context, es.Tx, es.Event) error { return nil }, fastOpts(es.SubscribeOpts{}))
	})
	_, err := store.Append(ctx, "leak-1", es.NoStream, newEvents(2, "L"))
	require.NoError(t, err)
	c.waitUntil(t, "2 events", func(events []es.Event) bool { return len(events) >= 2 })
	require.Equal(t, 1, pgtest.Terminate(t, ctx, listenerPIDs, name))
	_, err = store.Append(ctx, "leak-1", es.Exactly(2), newEvents(1, "L"))
	require.NoError(t, err)
	c.waitUntil(t, "3 events", func(events []es.Event) bool { return len(events) >= 3 })
	require.NoError(t, subPlain.stop(t))
	require.NoError(t, subTx.stop(t))
	requireNoLeaks(t, ignore)
}

// requireNoLeaks fails t if goroutines other than those opts ignore are
// still running after deliveryTimeout. goleak.VerifyNone gives goroutines
// that are ending less than half a second, which a busy machine may not
// give them.
func requireNoLeaks(t *testing.T, opts ...goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines still running after %v: %v", deliveryTimeout, err)
		}
		time.Sleep(50 * time.Millisecond) // polling, with a deadline
	}
}

// TestSubscribeMissingSchemaIsFatal: an error reconnecting cannot cure (the
// schema is not installed) stops the subscription instead of retrying.
func TestSubscribeMissingSchemaIsFatal(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: "not_installed"})
	require.NoError(t, err)
	var recovered atomic.Int64
	err = store.Subscribe(t.Context(), "fatal", func(context.Context, es.Event) error { return nil },
		fastOpts(es.SubscribeOpts{OnError: func(error) { recovered.Add(1) }}))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Contains(t, []string{"3F000", "42883", "42P01"}, pgErr.Code, pgErr.Message)
	require.Zero(t, recovered.Load(), "not retried")
}

// TestSubscribeTxBoundsTransactionTime: the transactional form commits once
// its transaction has run TxMaxDuration, before BatchSize events, so that
// its xid does not hold back other readers of the log for long. With a
// bound that every event exceeds, each event gets a transaction of its
// own; with a long bound, a small batch shares one.
func TestSubscribeTxBoundsTransactionTime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	writer, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = writer.Append(ctx, "bound-1", es.NoStream, newEvents(6, "T"))
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		max     time.Duration
		wantTxs int
	}{{"tiny", time.Nanosecond, 6}, {"long", time.Hour, 1}} {
		var mu sync.Mutex
		txs := map[string]bool{}
		c := newCollector()
		store, err := pgstore.New(pool, fastConfig(schema, pgstore.SubscriptionConfig{TxMaxDuration: tc.max}))
		require.NoError(t, err)
		sub := run(t, func(ctx context.Context) error {
			return store.SubscribeTx(ctx, "bound-"+tc.name, func(ctx context.Context, etx es.Tx, e es.Event) error {
				tx := pgstore.PgxTx(etx)
				// Writing assigns the transaction its xid, as a
				// projection's writes do.
				var xid string
				if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&xid); err != nil {
					return err
				}
				mu.Lock()
				txs[xid] = true
				mu.Unlock()
				c.add(e)
				return nil
			}, fastOpts(es.SubscribeOpts{BatchSize: 100}))
		})
		c.waitUntil(t, "all six events", func(events []es.Event) bool { return len(events) >= 6 })
		require.NoError(t, sub.stop(t))
		events, _ := c.snapshot()
		require.Len(t, events, 6, tc.name)
		require.Len(t, txs, tc.wantTxs, tc.name)
	}
}
