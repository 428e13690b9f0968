package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// readModelTests check what read models are built with: waiting for a
// write (WaitFor), the subscription's status, and the transactional
// handler form. Every store of the suite must implement [es.TxSubscriber].
var readModelTests = []test{
	{"ReadYourWrites", testReadYourWrites},
	{"ReadYourWritesTx", testReadYourWritesTx},
	{"WaitForSkippedEvent", testWaitForSkippedEvent},
	{"WaitForWithoutInstance", testWaitForWithoutInstance},
	{"Status", testSubscriptionStatus},
	{"StatusRetrying", testSubscriptionStatusRetrying},
	{"TxRollsBackWithHandler", testTxRollsBackWithHandler},
	{"TxInvalidArguments", testTxInvalid},
	{"TxBeforeCommit", testTxBeforeCommit},
}

// txSubscriber returns s as an es.TxSubscriber, failing the test when the
// store does not implement it.
func txSubscriber(t *testing.T, s es.Store) es.TxSubscriber {
	t.Helper()
	sub, ok := s.(es.TxSubscriber)
	require.True(t, ok, "%T does not implement es.TxSubscriber", s)
	return sub
}

// startTx runs s.SubscribeTx in a goroutine, stopped at the end of the
// test if the test does not stop it.
func startTx(t *testing.T, s es.TxSubscriber, name string, h es.TxHandler, o *es.SubscribeOpts) *running {
	t.Helper()
	return runInBackground(t, func(ctx context.Context) error { return s.SubscribeTx(ctx, name, h, o) })
}

// totals is a read model: the total of each counter, by stream id.
type totals struct {
	mu      sync.Mutex
	total   map[string]int64
	applied map[uuid.UUID]int // how often each event's effect is in the model
}

func newTotals() *totals {
	return &totals{total: map[string]int64{}, applied: map[uuid.UUID]int{}}
}

// add applies a counter event; it returns the function that undoes it.
func (m *totals) add(registry *es.Registry, e es.Event) (undo func(), err error) {
	v, err := registry.Decode(e)
	if err != nil {
		return nil, err
	}
	added, ok := v.(counterAdded)
	if !ok {
		return func() {}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total[e.StreamID] += added.N
	m.applied[e.ID]++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.total[e.StreamID] -= added.N
		m.applied[e.ID]--
	}, nil
}

// txHandler is a transactional handler that applies the counter events to
// m, undone when the transaction rolls back.
func (m *totals) txHandler(registry *es.Registry) es.TxHandler {
	return func(_ context.Context, tx es.Tx, e es.Event) error {
		if e.Category() != "counter" {
			return nil
		}
		undo, err := m.add(registry, e)
		if err != nil {
			return err
		}
		tx.OnRollback(undo)
		return nil
	}
}

func (m *totals) get(streamID string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total[streamID]
}

// readYourWrites saves and updates counters 200 times, each time waiting
// for the subscription name to handle the save and then checking that the
// read model shows it.
func readYourWrites(t *testing.T, sub es.Subscriber, b *counterBundle, name string, model *totals) {
	t.Helper()
	want := map[string]int64{}
	for i := range 200 {
		id := fmt.Sprintf("c%d", i%7)
		n := int64(i + 1)
		var res es.AppendResult
		if i < 7 {
			c := b.plain.New(id)
			require.NoError(t, es.Record(c, counterAdded{N: n, Name: "a"}))
			var err error
			res, err = b.plain.Save(t.Context(), c)
			require.NoError(t, err)
		} else {
			var err error
			_, res, err = b.plain.Update(t.Context(), id, func(c *plainCounter) error {
				return es.Record(c, counterAdded{N: n, Name: "a"})
			})
			require.NoError(t, err)
		}
		require.False(t, res.LastPosition.IsZero(), "Save returns the append's position")
		want[b.plain.StreamID(id)] += n
		ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
		err := sub.WaitFor(ctx, name, res.LastPosition)
		cancel()
		require.NoError(t, err, "save %d", i)
		require.Equal(t, want[b.plain.StreamID(id)], model.get(b.plain.StreamID(id)), "save %d: the read model shows the write once WaitFor returns", i)
		// Another category's event in between: the subscription skips it.
		if i%10 == 0 {
			mustAppend(t, b.store, streamID("other"), es.NoStream, Events(1))
		}
	}
}

func testReadYourWrites(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	b := newCounterBundle(t, s)
	model := newTotals()
	name := subscriptionName()
	start(t, sub, name, func(_ context.Context, e es.Event) error {
		_, err := model.add(b.registry, e)
		return err
	}, fastOpts(es.SubscribeOpts{Categories: []string{"counter"}, CheckpointEvery: 1000, CheckpointInterval: time.Hour}))
	readYourWrites(t, sub, b, name, model)
}

func testReadYourWritesTx(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	b := newCounterBundle(t, s)
	model := newTotals()
	name := subscriptionName()
	startTx(t, sub, name, model.txHandler(b.registry), fastOpts(es.SubscribeOpts{}))
	readYourWrites(t, sub, b, name, model)
	// The transactional form saves its checkpoint with every batch.
	pos, ok, err := sub.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, pos.IsZero())
}

func testWaitForSkippedEvent(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	r := newRecorder()
	kept := mustAppend(t, s, streamID("kept"), es.NoStream, Events(1))
	start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Categories: []string{"kept"}}))
	r.waitFor(t, 1)

	// The events of other categories are never handed to the handler, yet
	// the subscription has handled their positions once it has read past
	// them.
	for i := range 3 {
		skipped := mustAppend(t, s, streamID("skipped"), es.NoStream, Events(2))
		ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
		err := sub.WaitFor(ctx, name, skipped.LastPosition)
		cancel()
		require.NoError(t, err, "round %d", i)
		st := sub.SubscriptionStatus(name)
		require.False(t, st.Handled.Before(skipped.LastPosition), "round %d: handled %s, want at least %s", i, st.Handled, skipped.LastPosition)
	}
	events, _ := r.snapshot()
	require.Len(t, events, 1, "only the kept category is delivered")
	require.Equal(t, kept.LastPosition, events[0].Position)
}

func testWaitForWithoutInstance(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("wait"), es.NoStream, Events(2))

	require.NoError(t, sub.WaitFor(t.Context(), name, es.Position{}), "the zero position is handled by every subscription")
	require.ErrorIs(t, sub.WaitFor(t.Context(), "", res.LastPosition), es.ErrInvalidArgument)

	// Nothing runs and there is no checkpoint: WaitFor waits until its
	// context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := sub.WaitFor(ctx, name, res.LastPosition)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// A waiter that is already waiting when an instance starts returns
	// once it has handled the position.
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
		defer cancel()
		waited <- sub.WaitFor(ctx, name, res.LastPosition)
	}()
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	require.NoError(t, <-waited)
	require.GreaterOrEqual(t, r.count(), 2, "WaitFor returned before the handler ran")
	require.NoError(t, run.stop(t))
	require.Equal(t, es.SubscriptionStopped, sub.SubscriptionStatus(name).State)

	// No instance runs: the saved checkpoint answers.
	require.NoError(t, sub.WaitFor(t.Context(), name, res.LastPosition))
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	err = sub.WaitFor(ctx, name, es.NewPosition(res.LastPosition.TxKey()+1_000_000, 0))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a position no instance has reached")
}

// statusLog records the statuses a subscription reports (OnStatus).
type statusLog struct {
	mu       sync.Mutex
	statuses []es.SubscriptionStatus
}

func (l *statusLog) record(st es.SubscriptionStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses = append(l.statuses, st)
}

func (l *statusLog) states() []es.SubscriptionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []es.SubscriptionState
	for _, st := range l.statuses {
		out = append(out, st.State)
	}
	return out
}

// awaitState polls the status of name until it is in state want.
func awaitState(t *testing.T, sub es.Subscriber, name string, want es.SubscriptionState) es.SubscriptionStatus {
	t.Helper()
	return poll(t, fmt.Sprintf("subscription %q %s", name, want), func() es.SubscriptionStatus { return sub.SubscriptionStatus(name) },
		func(st es.SubscriptionStatus) bool { return st.State == want })
}

func testSubscriptionStatus(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	require.Equal(t, es.SubscriptionStatus{Name: name, State: es.SubscriptionStopped}, sub.SubscriptionStatus(name))

	res := mustAppend(t, s, streamID("status"), es.NoStream, Events(5))
	awaitVisible(t, s, res.LastPosition)
	log := &statusLog{}
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{BatchSize: 2, OnStatus: log.record}))
	r.waitFor(t, 5)
	st := awaitState(t, sub, name, es.SubscriptionLive)
	require.Equal(t, name, st.Name)
	require.Equal(t, res.LastPosition, st.Handled)
	require.False(t, st.Since.IsZero())
	require.NoError(t, st.LastError)
	// Starting, then catching up (batches of 2 on a backlog of 5), then
	// live: it caught up.
	states := log.states()
	require.GreaterOrEqual(t, len(states), 3, "states %v", states)
	require.Equal(t, []es.SubscriptionState{es.SubscriptionStarting, es.SubscriptionCatchingUp, es.SubscriptionLive}, states[:3])

	// Live appends keep it live and move Handled.
	res = mustAppend(t, s, streamID("status"), es.NoStream, Events(1))
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	cancel()
	require.Equal(t, res.LastPosition, sub.SubscriptionStatus(name).Handled)

	require.NoError(t, run.stop(t))
	require.Equal(t, es.SubscriptionStopped, sub.SubscriptionStatus(name).State)
	states = log.states()
	require.Equal(t, es.SubscriptionStopped, states[len(states)-1], "states %v", states)
}

func testSubscriptionStatusRetrying(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("retrying"), es.NoStream, Events(1))
	log := &statusLog{}
	boom := errors.New("boom")
	release := make(chan struct{})
	var once sync.Once
	r := newRecorder()
	r.fail = func(e es.Event, calls int) error {
		if calls == 1 {
			return boom
		}
		<-release // hold the retry until the test has seen Retrying
		return nil
	}
	o := fastOpts(es.SubscribeOpts{HandlerRetries: 3, OnStatus: log.record})
	run := start(t, sub, name, r.handle, o)
	st := awaitState(t, sub, name, es.SubscriptionRetrying)
	require.ErrorIs(t, st.LastError, boom)
	once.Do(func() { close(release) })
	r.waitFor(t, 1)
	st = awaitState(t, sub, name, es.SubscriptionLive)
	require.NoError(t, st.LastError)
	require.Equal(t, res.LastPosition, st.Handled)
	require.NoError(t, run.stop(t))
	require.Contains(t, log.states(), es.SubscriptionRetrying)
}

func testTxRollsBackWithHandler(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	b := newCounterBundle(t, s)
	var last es.Position
	for i := range 5 {
		c := b.plain.New(fmt.Sprintf("t%d", i))
		require.NoError(t, es.Record(c, counterAdded{N: 1}))
		require.NoError(t, es.Record(c, counterAdded{N: 10}))
		res, err := b.plain.Save(t.Context(), c)
		require.NoError(t, err)
		last = res.LastPosition
	}
	awaitVisible(t, s, last)

	model := newTotals()
	var mu sync.Mutex
	attempts := map[uuid.UUID]int{}
	commits, rollbacks := 0, 0
	name := subscriptionName()
	// The handler fails once on the seventh event: the six before it, in
	// the same transaction, are undone with it, then handled again.
	run := startTx(t, sub, name, func(_ context.Context, tx es.Tx, e es.Event) error {
		mu.Lock()
		attempts[e.ID]++
		n, seq := attempts[e.ID], len(attempts)
		mu.Unlock()
		undo, err := model.add(b.registry, e)
		if err != nil {
			return err
		}
		tx.OnRollback(undo)
		tx.OnCommit(func() { mu.Lock(); commits++; mu.Unlock() })
		tx.OnRollback(func() { mu.Lock(); rollbacks++; mu.Unlock() })
		if seq == 7 && n == 1 {
			return errors.New("boom")
		}
		return nil
	}, fastOpts(es.SubscribeOpts{HandlerRetries: 1, BatchSize: 100}))
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	require.NoError(t, sub.WaitFor(ctx, name, last))
	cancel()
	require.NoError(t, run.stop(t))

	model.mu.Lock()
	defer model.mu.Unlock()
	require.Len(t, model.applied, 10)
	for id, n := range model.applied {
		require.Equal(t, 1, n, "event %s applied %d times", id, n)
	}
	for i := range 5 {
		require.Equal(t, int64(11), model.total[b.plain.StreamID(fmt.Sprintf("t%d", i))])
	}
	mu.Lock()
	defer mu.Unlock()
	// Every event applied once (above) means the failed transaction's
	// OnRollback functions undid the events handled before the failure.
	require.GreaterOrEqual(t, rollbacks, 1, "the failed transaction ran its OnRollback functions")
	require.Equal(t, 10, commits, "each event's OnCommit ran once, when its transaction committed")
	requireCheckpoint(t, sub, name, last)
}

func testTxInvalid(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	h := func(context.Context, es.Tx, es.Event) error { return nil }
	require.ErrorIs(t, sub.SubscribeTx(t.Context(), "", h, nil), es.ErrInvalidArgument)
	require.ErrorIs(t, sub.SubscribeTx(t.Context(), subscriptionName(), nil, nil), es.ErrInvalidArgument)
	require.ErrorIs(t, sub.SubscribeTx(t.Context(), subscriptionName(), h, &es.SubscribeOpts{BatchSize: -1}), es.ErrInvalidArgument)
}

func testTxBeforeCommit(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	events := eventsWithIDs(5)
	res := mustAppend(t, s, streamID("before"), es.NoStream, events)
	awaitVisible(t, s, res.LastPosition)
	poison := events[2].ID

	// The handler gathers each transaction's events and writes them in
	// one go before the commit; the write fails on the poison event.
	var mu sync.Mutex
	gathered := map[es.Tx][]es.Event{}
	applied := map[uuid.UUID]int{}
	var flushes int
	run := startTx(t, sub, name, func(_ context.Context, tx es.Tx, e es.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := gathered[tx]; !ok {
			tx.BeforeCommit(func(context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				batch := gathered[tx]
				delete(gathered, tx)
				flushes++
				for _, g := range batch {
					if g.ID == poison {
						return errors.New("flush: cannot write the poison event")
					}
				}
				for _, g := range batch {
					applied[g.ID]++
				}
				return nil
			})
			tx.OnRollback(func() {
				mu.Lock()
				defer mu.Unlock()
				delete(gathered, tx)
			})
		}
		gathered[tx] = append(gathered[tx], e)
		return nil
	}, fastOpts(es.SubscribeOpts{BatchSize: 100}))

	// The failed flush is narrowed down to its event: the subscription
	// stops on the poison event, with the events before it committed.
	var herr *es.HandlerError
	require.ErrorAs(t, run.wait(t), &herr)
	require.Equal(t, poison, herr.Event.ID)
	require.ErrorContains(t, herr, "cannot write the poison event")
	requireCheckpoint(t, sub, name, readAll(t, s, nil)[1].Position)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[uuid.UUID]int{events[0].ID: 1, events[1].ID: 1}, applied, "the events before it, once each")
	require.GreaterOrEqual(t, flushes, 2)
}
