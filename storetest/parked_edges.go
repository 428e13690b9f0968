package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// The edges of waiting, status and parking: what a retry, a rollback, a
// rewind or a change of policy must not break.
var edgeTests = []test{
	{"WaitForAfterRetryInTx", testWaitForAfterRetryInTx},
	{"OnStatusMayCallBack", testOnStatusMayCallBack},
	{"FailingWhileRetrying", testFailingWhileRetrying},
	{"ParkTwiceInOneTx", testParkTwiceInOneTx},
	{"RetryRequestOnLaterEvent", testRetryRequestOnLaterEvent},
	{"RewindOverParked", testRewindOverParked},
	{"ParkedBlockWhateverThePolicy", testParkedBlockWhateverThePolicy},
}

var errEdge = errors.New("edge: cannot handle")

// waitCtx returns a context for one wait.
func waitCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), subscribeTimeout)
}

func testWaitForAfterRetryInTx(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	id := streamID("a")
	res := mustAppend(t, s, id, es.NoStream, Events(2))
	a2 := res.LastPosition
	var calls atomic.Int32
	var committed atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	// The second event fails once, then its retry waits: the first event
	// is committed alone, and WaitFor(a2) must wait for the retry.
	startTx(t, sub, name, func(_ context.Context, tx es.Tx, e es.Event) error {
		if e.Position == a2 {
			switch calls.Add(1) {
			case 1:
				return errEdge
			case 2:
				close(entered)
				<-release
			}
			tx.OnCommit(func() { committed.Store(true) })
		}
		return nil
	}, fastOpts(es.SubscribeOpts{Categories: []string{"a"}, HandlerRetries: 3}))
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := waitCtx()
		defer cancel()
		waited <- sub.WaitFor(ctx, name, a2)
	}()
	<-entered
	select {
	case err := <-waited:
		t.Fatalf("WaitFor returned (%v) while the event's retry is still running", err)
	case <-time.After(50 * time.Millisecond): // a premature return would come now
	}
	close(release)
	require.NoError(t, <-waited)
	require.True(t, committed.Load(), "WaitFor returned before the event's transaction committed")
}

func testOnStatusMayCallBack(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("callback"), es.NoStream, Events(1))
	var seen atomic.Int32
	run := start(t, sub, name, func(context.Context, es.Event) error { return nil }, fastOpts(es.SubscribeOpts{
		OnStatus: func(st es.SubscriptionStatus) {
			// Calling back into the store from OnStatus must not deadlock.
			_ = sub.SubscriptionStatus(st.Name)
			seen.Add(1)
		},
	}))
	ctx, cancel := waitCtx()
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	require.NoError(t, run.stop(t))
	require.Positive(t, seen.Load())
}

func testFailingWhileRetrying(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	mustAppend(t, s, streamID("failing"), es.NoStream, Events(1))
	var calls atomic.Int32
	run := start(t, sub, name, func(context.Context, es.Event) error {
		calls.Add(1)
		return errEdge
	}, fastOpts(es.SubscribeOpts{HandlerRetries: 1 << 20, RetryBackoff: 5 * time.Millisecond, ProgressInterval: time.Millisecond}))
	awaitHealth(t, sub, name, "failing", func(h es.SubscriptionHealth) bool { return h.Health == es.HealthFailing })
	// Every attempt fails: it stays failing across the retries.
	for first := calls.Load(); calls.Load() < first+5; {
		h := health(t, sub, name)
		require.Equal(t, es.HealthFailing, h.Health, "between attempts")
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, run.stop(t))
}

func testParkTwiceInOneTx(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	x1 := mustAppend(t, s, streamID("x"), es.NoStream, Events(1))
	mustAppend(t, s, streamID("y"), es.NoStream, Events(1))
	x2 := mustAppend(t, s, streamID("z"), es.NoStream, Events(1))
	awaitVisible(t, s, x2.LastPosition)
	startTx(t, sub, name, func(_ context.Context, _ es.Tx, e es.Event) error {
		if e.Position == x1.LastPosition || e.Position == x2.LastPosition {
			return errEdge
		}
		return nil
	}, fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure}))
	ctx, cancel := waitCtx()
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, x2.LastPosition))
	parked := awaitParked(t, sub, name, "x1 and x2", func(p []es.ParkedEvent) bool { return len(p) == 2 })
	for _, p := range parked {
		require.False(t, p.Behind, "%s is parked for its own failure, not behind another", p.Event.Position)
		require.Contains(t, p.Error, "edge: cannot handle")
		require.Equal(t, 1, p.Attempts)
	}
}

func testRetryRequestOnLaterEvent(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("s")
	res := mustAppend(t, s, id, es.NoStream, Events(2)) // e1 fails for good, e2 is parked behind it
	var e1Calls atomic.Int32
	start(t, sub, name, func(_ context.Context, e es.Event) error {
		if e.StreamID == id && e.Version == 1 {
			e1Calls.Add(1)
			return errEdge
		}
		return nil
	}, fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure}))
	ctx, cancel := waitCtx()
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	parked := awaitParked(t, sub, name, "e1 and e2", func(p []es.ParkedEvent) bool { return len(p) == 2 })

	// Asking to retry e2 retries the stream from e1, once: e1 fails again
	// and the request is done with.
	found, err := sub.RetryParked(t.Context(), name, parked[1].Event.Position)
	require.NoError(t, err)
	require.True(t, found)
	awaitParked(t, sub, name, "e1 retried once", func(p []es.ParkedEvent) bool {
		return len(p) == 2 && p[0].Attempts == 2 && !p[0].RetryRequested && !p[1].RetryRequested
	})
	calls := e1Calls.Load()
	for range 5 {
		r := mustAppend(t, s, streamID("other"), es.NoStream, Events(1))
		ctx, cancel := waitCtx()
		require.NoError(t, sub.WaitFor(ctx, name, r.LastPosition))
		cancel()
	}
	require.Equal(t, calls, e1Calls.Load(), "no retry was asked for again")
}

func testRewindOverParked(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("s")
	res := mustAppend(t, s, id, es.NoStream, Events(3)) // e1 handled, e2 fails, e3 behind it
	var mu sync.Mutex
	handled := map[int64]int{}
	h := func(_ context.Context, e es.Event) error {
		if e.Version == 2 {
			return errEdge
		}
		mu.Lock()
		defer mu.Unlock()
		handled[e.Version]++
		return nil
	}
	opts := fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure})
	for run := 1; run <= 2; run++ {
		r := start(t, sub, name, h, opts)
		ctx, cancel := waitCtx()
		require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
		cancel()
		require.NoError(t, r.stop(t))
		parked, err := sub.ParkedEvents(t.Context(), name)
		require.NoError(t, err)
		require.Len(t, parked, 2, "run %d", run)
		require.Equal(t, int64(2), parked[0].Event.Version)
		require.False(t, parked[0].Behind, "run %d: e2 keeps its own failure", run)
		require.Contains(t, parked[0].Error, "edge: cannot handle", "run %d", run)
		require.Equal(t, int64(3), parked[1].Event.Version)
		require.True(t, parked[1].Behind)
		// A rebuild: from the start again.
		require.NoError(t, sub.ResetCheckpoint(t.Context(), name, es.Position{}))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[int64]int{1: 2}, handled, "e1, before the parked e2, is handled in both runs; e3 in neither")
}

func testParkedBlockWhateverThePolicy(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("s")
	res := mustAppend(t, s, id, es.NoStream, Events(1))
	r := start(t, sub, name, func(context.Context, es.Event) error { return errEdge }, fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure}))
	ctx, cancel := waitCtx()
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	require.NoError(t, r.stop(t))

	// The policy changes to stop, with e1 still parked: e2 of the same
	// stream is parked behind it, not handled out of order.
	var got atomic.Int32
	r = start(t, sub, name, func(context.Context, es.Event) error { got.Add(1); return nil }, fastOpts(es.SubscribeOpts{}))
	res = mustAppend(t, s, id, es.Exactly(1), Events(1))
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	require.NoError(t, r.stop(t))
	require.Zero(t, got.Load(), "e2 was handled before the parked e1")
	parked, err := sub.ParkedEvents(t.Context(), name)
	require.NoError(t, err)
	require.Len(t, parked, 2)
	require.True(t, parked[1].Behind)
}
