package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// subscriptionTests check the subscriptions of stores that implement them.
// Every store of the suite must implement [es.Subscriber].
var subscriptionTests = []test{
	{"CatchUpInOrder", testSubscribeCatchUp},
	{"LiveAppends", testSubscribeLive},
	{"Filters", testSubscribeFilters},
	{"ResumesFromCheckpoint", testSubscribeResumes},
	{"StartFromEnd", testSubscribeStartFromEnd},
	{"CheckpointEvery", testSubscribeCheckpointEvery},
	{"CheckpointInterval", testSubscribeCheckpointInterval},
	{"HandlerErrorStops", testSubscribeHandlerErrorStops},
	{"HandlerRetries", testSubscribeHandlerRetries},
	{"OneActiveInstance", testSubscribeOneActive},
	{"DeleteCheckpoint", testSubscribeDeleteCheckpoint},
	{"InvalidArguments", testSubscribeInvalid},
}

// subscribeTimeout bounds every wait for a delivery (or for Subscribe to
// return, or a checkpoint to be saved). It is generous: on a busy machine
// a delivery can take many times as long as on a quiet one. A wait ends as
// soon as its condition holds; the bound only stops a test that hangs.
const subscribeTimeout = 5 * time.Minute

// subscriber returns s as an es.Subscriber, failing the test when the
// store does not implement it.
func subscriber(t *testing.T, s es.Store) es.Subscriber {
	t.Helper()
	sub, ok := s.(es.Subscriber)
	require.True(t, ok, "%T does not implement es.Subscriber", s)
	return sub
}

// fastOpts returns subscription options with a short retry backoff. (How
// quickly a store notices appends and hands over between instances is its
// own configuration: the factory given to Run sets it.)
func fastOpts(o es.SubscribeOpts) *es.SubscribeOpts {
	o.RetryBackoff = time.Millisecond
	return &o
}

// recorder is a handler that records what it is given.
type recorder struct {
	mu      sync.Mutex
	events  []es.Event
	changed chan struct{} // closed and replaced at each call
	// fail, when set, is asked before recording: a non-nil error is
	// returned instead (and the event is not recorded). calls counts the
	// calls with this event id, this one included.
	fail  func(e es.Event, calls int) error
	calls map[uuid.UUID]int
}

func newRecorder() *recorder {
	return &recorder{changed: make(chan struct{}), calls: map[uuid.UUID]int{}}
}

func (r *recorder) handle(_ context.Context, e es.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[e.ID]++
	defer func() {
		close(r.changed)
		r.changed = make(chan struct{})
	}()
	if r.fail != nil {
		if err := r.fail(e, r.calls[e.ID]); err != nil {
			return err
		}
	}
	r.events = append(r.events, e)
	return nil
}

// snapshot returns the events recorded so far and the channel closed at
// the next call.
func (r *recorder) snapshot() ([]es.Event, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]es.Event(nil), r.events...), r.changed
}

// count returns how many events were recorded.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor waits until at least n events are recorded and returns them all.
func (r *recorder) waitFor(t *testing.T, n int) []es.Event {
	t.Helper()
	deadline := time.NewTimer(subscribeTimeout)
	defer deadline.Stop()
	for {
		events, changed := r.snapshot()
		if len(events) >= n {
			return events
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("subscription delivered %d events in %v, want %d", len(events), subscribeTimeout, n)
		}
	}
}

// running is a subscription running in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// start runs s.Subscribe in a goroutine; it is stopped at the end of the
// test if the test does not stop it.
func start(t *testing.T, s es.Subscriber, name string, h es.Handler, o *es.SubscribeOpts) *running {
	t.Helper()
	return runInBackground(t, func(ctx context.Context) error { return s.Subscribe(ctx, name, h, o) })
}

// runInBackground runs subscribe in a goroutine until its context is
// cancelled; it is stopped at the end of the test if the test does not
// stop it.
func runInBackground(t *testing.T, subscribe func(ctx context.Context) error) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = subscribe(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// stop cancels the subscription and returns what Subscribe returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// wait waits for Subscribe to return by itself.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(subscribeTimeout):
		t.Fatalf("Subscribe did not return within %v", subscribeTimeout)
		return nil
	}
}

// awaitCheckpoint waits until the checkpoint of name is at want.
func awaitCheckpoint(t *testing.T, s es.Subscriber, name string, want es.Position) {
	t.Helper()
	type checkpoint struct {
		pos es.Position
		ok  bool
	}
	poll(t, fmt.Sprintf("checkpoint of %q at %s", name, want), func() checkpoint {
		pos, ok, err := s.Checkpoint(t.Context(), name)
		require.NoError(t, err)
		return checkpoint{pos, ok}
	}, func(c checkpoint) bool { return c.ok && c.pos == want })
}

// poll reads get until cond holds of what it returns, and returns that;
// it fails the test, showing the last value, after subscribeTimeout.
func poll[T any](t *testing.T, what string, get func() T, cond func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(subscribeTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		v := get()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in %v; last %+v", what, subscribeTimeout, v)
		}
		time.Sleep(wait)
	}
}

// requireCheckpoint checks the checkpoint of name now.
func requireCheckpoint(t *testing.T, s es.Subscriber, name string, want es.Position) {
	t.Helper()
	pos, ok, err := s.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	require.True(t, ok, "subscription %q has no checkpoint", name)
	require.Equal(t, want, pos, "checkpoint of %q", name)
}

// requireSameEvents checks that got are want (by id, stream, version,
// position, type and data), in order.
func requireSameEvents(t *testing.T, want, got []es.Event) {
	t.Helper()
	require.Equal(t, idsOf(want), idsOf(got), "delivered events")
	for i := range want {
		require.Equal(t, want[i].StreamID, got[i].StreamID)
		require.Equal(t, want[i].Version, got[i].Version)
		require.Equal(t, want[i].Position, got[i].Position)
		require.Equal(t, want[i].Type, got[i].Type)
		require.Equal(t, want[i].SchemaVersion, got[i].SchemaVersion)
		require.Equal(t, want[i].Data, got[i].Data)
	}
	requirePositionsIncrease(t, got)
}

// subscriptionName returns a fresh subscription name.
func subscriptionName() string { return "sub-" + uniq()[:12] }

func testSubscribeCatchUp(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	log := seedLog(t, s)
	name := subscriptionName()

	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{BatchSize: 3}))
	got := r.waitFor(t, len(log.all))
	requireSameEvents(t, log.all, got)
	require.NoError(t, run.stop(t), "a cancelled subscription returns nil")
	requireCheckpoint(t, sub, name, log.all[len(log.all)-1].Position)
	require.Len(t, r.waitFor(t, 0), len(log.all), "nothing delivered twice")
}

func testSubscribeLive(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))

	var want []es.Event
	id := streamID("live")
	for i := range 5 {
		res := mustAppend(t, s, id, es.Exactly(int64(i)), Events(1))
		got := r.waitFor(t, i+1)
		require.Equal(t, res.LastPosition, got[i].Position, "event %d", i)
		want = append(want, got[i])
	}
	// A batch from another stream.
	mustAppend(t, s, streamID("live"), es.NoStream, Events(3))
	got := r.waitFor(t, 8)
	require.Equal(t, want, got[:5])
	requirePositionsIncrease(t, got)
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, got[7].Position)
	requireSameEvents(t, readAll(t, s, nil), got)
}

func testSubscribeFilters(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	log := seedLog(t, s)
	selected := func(cats, types []string) []es.Event {
		return filter(log.all, func(e es.Event) bool {
			return (len(cats) == 0 || slices.Contains(cats, log.category[e.StreamID])) &&
				(len(types) == 0 || slices.Contains(types, e.Type))
		})
	}
	for i, tc := range []struct{ cats, types []string }{
		{cats: []string{"order"}},
		{cats: []string{"order", "invoice"}},
		{types: []string{"OrderPaid", "InvoicePaid"}},
		{cats: []string{"order"}, types: []string{"OrderPlaced", "OrderShipped"}},
		{cats: []string{log.plain}},
	} {
		want := selected(tc.cats, tc.types)
		require.NotEmpty(t, want, "case %d selects nothing", i)
		r := newRecorder()
		name := fmt.Sprintf("filter-%d-%s", i, uniq()[:8])
		run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Categories: tc.cats, EventTypes: tc.types, BatchSize: 2}))
		got := r.waitFor(t, len(want))
		requireSameEvents(t, want, got)
		require.NoError(t, run.stop(t))
		requireCheckpoint(t, sub, name, want[len(want)-1].Position)
	}
}

func testSubscribeResumes(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("resume")
	mustAppend(t, s, id, es.NoStream, Events(3))

	r1 := newRecorder()
	run := start(t, sub, name, r1.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 1000, CheckpointInterval: time.Hour}))
	first := r1.waitFor(t, 3)
	require.NoError(t, run.stop(t))
	// Saved when stopping, though the policy's count and time were not
	// reached.
	requireCheckpoint(t, sub, name, first[2].Position)

	res := mustAppend(t, s, id, es.Exactly(3), Events(2))
	r2 := newRecorder()
	run = start(t, sub, name, r2.handle, fastOpts(es.SubscribeOpts{}))
	got := r2.waitFor(t, 2)
	require.Equal(t, []int64{4, 5}, versionsOf(got), "only the events after the checkpoint")
	require.Equal(t, res.LastPosition, got[1].Position)
	require.NoError(t, run.stop(t))
	require.Len(t, r2.waitFor(t, 0), 2)
	requireCheckpoint(t, sub, name, res.LastPosition)
}

func testSubscribeStartFromEnd(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("end")
	old := mustAppend(t, s, id, es.NoStream, Events(3))
	awaitVisible(t, s, old.LastPosition)

	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Start: es.StartFromEnd}))
	// The end is saved at once.
	awaitCheckpoint(t, sub, name, old.LastPosition)
	res := mustAppend(t, s, id, es.Exactly(3), Events(1))
	got := r.waitFor(t, 1)
	require.Equal(t, int64(4), got[0].Version, "the first event after the end")
	require.NoError(t, run.stop(t))
	require.Len(t, r.waitFor(t, 0), 1)
	requireCheckpoint(t, sub, name, res.LastPosition)

	// With a checkpoint, StartFromEnd resumes from it: events appended
	// while no instance ran are delivered.
	res = mustAppend(t, s, id, es.Exactly(4), Events(2))
	r = newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Start: es.StartFromEnd}))
	got = r.waitFor(t, 2)
	require.Equal(t, []int64{5, 6}, versionsOf(got))
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, res.LastPosition)

	// StartFromBeginning (the default) on a fresh name delivers all.
	r = newRecorder()
	run = start(t, sub, subscriptionName(), r.handle, fastOpts(es.SubscribeOpts{}))
	require.Equal(t, span(1, 6), versionsOf(r.waitFor(t, 6)))
	require.NoError(t, run.stop(t))
}

func testSubscribeCheckpointEvery(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	_, ok, err := sub.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	require.False(t, ok, "a new subscription has no checkpoint")

	res := mustAppend(t, s, streamID("every"), es.NoStream, Events(7))
	awaitVisible(t, s, res.LastPosition)
	// The handler of the 7th event checks the checkpoint: saved after the
	// 3rd and 6th events, and not since.
	r := newRecorder()
	seen := make(chan es.Position, 1)
	r.fail = func(e es.Event, _ int) error {
		if e.Version == 7 {
			pos, _, err := sub.Checkpoint(context.Background(), name)
			if err != nil {
				return err
			}
			seen <- pos
		}
		return nil
	}
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 3, CheckpointInterval: time.Hour}))
	got := r.waitFor(t, 7)
	require.Equal(t, got[5].Position, <-seen, "checkpoint while handling the 7th event")
	requireCheckpoint(t, sub, name, got[5].Position)
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, got[6].Position)
}

func testSubscribeCheckpointInterval(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 1000, CheckpointInterval: 20 * time.Millisecond}))
	res := mustAppend(t, s, streamID("interval"), es.NoStream, Events(2))
	r.waitFor(t, 2)
	// Saved by time while the subscription runs and waits.
	awaitCheckpoint(t, sub, name, res.LastPosition)
	require.NoError(t, run.stop(t))
}

// errHandler is the error the failing handlers return.
var errHandler = errors.New("storetest: handler failed")

func testSubscribeHandlerErrorStops(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("fail")
	res := mustAppend(t, s, id, es.NoStream, Events(5))
	awaitVisible(t, s, res.LastPosition)

	r := newRecorder()
	r.fail = func(e es.Event, _ int) error {
		if e.Version == 3 {
			return errHandler
		}
		return nil
	}
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 1000}))
	err := run.wait(t)
	require.ErrorIs(t, err, errHandler, "Subscribe returns the handler's error")
	var herr *es.HandlerError
	require.True(t, errors.As(err, &herr), "%v (%T) is not a *es.HandlerError", err, err)
	require.Equal(t, name, herr.Subscription)
	require.Equal(t, int64(3), herr.Event.Version)
	require.Equal(t, id, herr.Event.StreamID)
	require.Equal(t, 1, herr.Attempts, "no retries by default")
	got := r.waitFor(t, 2)
	require.Equal(t, []int64{1, 2}, versionsOf(got), "nothing after the failed event")
	// The checkpoint stays before the failed event: it is not skipped.
	requireCheckpoint(t, sub, name, got[1].Position)

	r = newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	require.Equal(t, []int64{3, 4, 5}, versionsOf(r.waitFor(t, 3)))
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, res.LastPosition)
}

func testSubscribeHandlerRetries(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("retry"), es.NoStream, Events(4))
	awaitVisible(t, s, res.LastPosition)

	// Version 2 fails twice, then succeeds: with two retries nothing stops.
	r := newRecorder()
	r.fail = func(e es.Event, calls int) error {
		if e.Version == 2 && calls <= 2 {
			return errHandler
		}
		return nil
	}
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{HandlerRetries: 2}))
	got := r.waitFor(t, 4)
	require.Equal(t, span(1, 4), versionsOf(got), "each event recorded once, in order")
	r.mu.Lock()
	require.Equal(t, 3, r.calls[got[1].ID], "calls with the failing event")
	require.Equal(t, 1, r.calls[got[2].ID])
	r.mu.Unlock()
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, res.LastPosition)

	// One retry too few: the subscription stops on the event.
	name = subscriptionName()
	r = newRecorder()
	r.fail = func(e es.Event, calls int) error {
		if e.Version == 2 {
			return fmt.Errorf("attempt %d: %w", calls, errHandler)
		}
		return nil
	}
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{HandlerRetries: 2}))
	err := run.wait(t)
	var herr *es.HandlerError
	require.True(t, errors.As(err, &herr), "%v", err)
	require.Equal(t, 3, herr.Attempts)
	require.ErrorIs(t, err, errHandler)
	require.Equal(t, int64(2), herr.Event.Version)
	requireCheckpoint(t, sub, name, got[0].Position)
}

func testSubscribeOneActive(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	id := streamID("single")
	mustAppend(t, s, id, es.NoStream, Events(2))

	a := newRecorder()
	runA := start(t, sub, name, a.handle, fastOpts(es.SubscribeOpts{}))
	a.waitFor(t, 2)
	b := newRecorder()
	runB := start(t, sub, name, b.handle, fastOpts(es.SubscribeOpts{}))

	mustAppend(t, s, id, es.Exactly(2), Events(3))
	require.Equal(t, span(1, 5), versionsOf(a.waitFor(t, 5)))
	require.Zero(t, b.count(), "the second instance received events while the first was active")

	// Stopping the first hands over to the second, from the checkpoint.
	require.NoError(t, runA.stop(t))
	mustAppend(t, s, id, es.Exactly(5), Events(2))
	require.Equal(t, []int64{6, 7}, versionsOf(b.waitFor(t, 2)))
	require.Len(t, a.waitFor(t, 0), 5, "the stopped instance received nothing more")
	require.NoError(t, runB.stop(t))
	require.Len(t, b.waitFor(t, 0), 2)
}

func testSubscribeDeleteCheckpoint(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("delete"), es.NoStream, Events(2))

	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	r.waitFor(t, 2)
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, res.LastPosition)

	deleted, err := sub.DeleteCheckpoint(t.Context(), name)
	require.NoError(t, err)
	require.True(t, deleted)
	_, ok, err := sub.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	require.False(t, ok)
	deleted, err = sub.DeleteCheckpoint(t.Context(), name)
	require.NoError(t, err)
	require.False(t, deleted, "nothing left to delete")

	// The next run starts over.
	r = newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	require.Equal(t, []int64{1, 2}, versionsOf(r.waitFor(t, 2)))
	require.NoError(t, run.stop(t))
}

func testSubscribeInvalid(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	ctx := t.Context()
	nop := func(context.Context, es.Event) error { return nil }
	requireInvalid(t, sub.Subscribe(ctx, "", nop, nil))
	requireInvalid(t, sub.Subscribe(ctx, "bad\x00name", nop, nil))
	requireInvalid(t, sub.Subscribe(ctx, string(make([]byte, es.MaxSubscriptionNameLength+1)), nop, nil))
	requireInvalid(t, sub.Subscribe(ctx, "nil-handler", nil, nil))
	for _, o := range []es.SubscribeOpts{
		{BatchSize: -1},
		{CheckpointEvery: -1},
		{HandlerRetries: -1},
		{CheckpointInterval: -time.Second},
		{Start: es.StartPosition(7)},
		{Categories: []string{""}},
		{EventTypes: []string{""}},
	} {
		requireInvalid(t, sub.Subscribe(ctx, "bad-opts", nop, &o))
	}
	_, _, err := sub.Checkpoint(ctx, "")
	requireInvalid(t, err)
	_, err = sub.DeleteCheckpoint(ctx, "")
	requireInvalid(t, err)
	_, ok, err := sub.Checkpoint(ctx, "bad-opts")
	require.NoError(t, err)
	require.False(t, ok, "a refused subscription saves no checkpoint")
}
