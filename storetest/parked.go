package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// parkedTests check parking ([es.ParkOnFailure]): poison events set aside
// with the later events of their streams, then retried or skipped.
var parkedTests = []test{
	{"ParkRetryAndSkip", func(t *testing.T, s es.Store) { testParking(t, s, false) }},
	{"ParkRetryAndSkipTx", func(t *testing.T, s es.Store) { testParking(t, s, true) }},
	{"ParkInvalid", testParkInvalid},
}

// poisonHandler handles events, failing on those marked poison; it records
// what it handled, and how often each event's effect is applied (the
// transactional form undoes a rolled-back batch's).
type poisonHandler struct {
	mu      sync.Mutex
	poison  map[uuid.UUID]bool
	handled []es.Event
	applied map[uuid.UUID]int
	changed chan struct{}
}

func newPoisonHandler() *poisonHandler {
	return &poisonHandler{poison: map[uuid.UUID]bool{}, applied: map[uuid.UUID]int{}, changed: make(chan struct{})}
}

var errPoison = errors.New("poison: cannot handle")

func (h *poisonHandler) handle(e es.Event) (undo func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() {
		close(h.changed)
		h.changed = make(chan struct{})
	}()
	if h.poison[e.ID] {
		return nil, errPoison
	}
	h.handled = append(h.handled, e)
	h.applied[e.ID]++
	n := len(h.handled)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.applied[e.ID]--
		h.handled = append(h.handled[:n-1:n-1], h.handled[n:]...)
	}, nil
}

func (h *poisonHandler) setPoison(id uuid.UUID, poison bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.poison[id] = poison
}

// await waits until cond holds of the events handled.
func (h *poisonHandler) await(t *testing.T, what string, cond func([]es.Event) bool) []es.Event {
	t.Helper()
	deadline := time.NewTimer(subscribeTimeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		handled, changed := append([]es.Event(nil), h.handled...), h.changed
		h.mu.Unlock()
		if cond(handled) {
			return handled
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%s: handled %d events", what, len(handled))
		}
	}
}

// awaitParked polls the parked events of name until cond holds.
func awaitParked(t *testing.T, sub es.Subscriber, name, what string, cond func([]es.ParkedEvent) bool) []es.ParkedEvent {
	t.Helper()
	return poll(t, what, func() []es.ParkedEvent {
		parked, err := sub.ParkedEvents(t.Context(), name)
		require.NoError(t, err)
		return parked
	}, cond)
}

func handledIDs(events []es.Event) map[uuid.UUID]bool {
	ids := map[uuid.UUID]bool{}
	for _, e := range events {
		ids[e.ID] = true
	}
	return ids
}

func testParking(t *testing.T, s es.Store, transactional bool) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	a, b, c := streamID("a"), streamID("b"), streamID("c")
	// Stream a: a1, a2 (poison), a3; stream b: b1, b2; in between.
	ev := eventsWithIDs(5)
	mustAppend(t, s, a, es.NoStream, ev[0:1])
	mustAppend(t, s, b, es.NoStream, ev[1:2])
	mustAppend(t, s, a, es.Exactly(1), ev[2:3])
	mustAppend(t, s, b, es.Exactly(1), ev[3:4])
	last := mustAppend(t, s, a, es.Exactly(2), ev[4:5])
	a1, b1, a2, b2, a3 := ev[0].ID, ev[1].ID, ev[2].ID, ev[3].ID, ev[4].ID

	h := newPoisonHandler()
	h.setPoison(a2, true)
	opts := fastOpts(es.SubscribeOpts{HandlerRetries: 1, OnFailure: es.ParkOnFailure, BatchSize: 2})
	if transactional {
		startTx(t, sub, name, func(_ context.Context, tx es.Tx, e es.Event) error {
			undo, err := h.handle(e)
			if err == nil {
				tx.OnRollback(undo)
			}
			return err
		}, opts)
	} else {
		start(t, sub, name, func(_ context.Context, e es.Event) error {
			_, err := h.handle(e)
			return err
		}, opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, last.LastPosition))

	// a2 is parked with its error, a3 behind it; the others are handled,
	// and the checkpoint is past them all.
	got := handledIDs(h.await(t, "a1, b1, b2", func(es []es.Event) bool { return len(es) == 3 }))
	require.Equal(t, map[uuid.UUID]bool{a1: true, b1: true, b2: true}, got)
	parked := awaitParked(t, sub, name, "a2 and a3", func(p []es.ParkedEvent) bool { return len(p) == 2 })
	require.Equal(t, a2, parked[0].Event.ID)
	require.False(t, parked[0].Behind)
	require.Equal(t, 2, parked[0].Attempts, "the first try and one retry")
	require.Contains(t, parked[0].Error, "poison: cannot handle")
	require.Equal(t, a, parked[0].Event.StreamID)
	require.Equal(t, name, parked[0].Subscription)
	require.False(t, parked[0].ParkedAt.IsZero())
	require.Equal(t, a3, parked[1].Event.ID)
	require.True(t, parked[1].Behind)
	require.Zero(t, parked[1].Attempts, "parked behind a2 without calling the handler")
	requireCheckpointEventually(t, sub, name, last.LastPosition)
	health := awaitHealth(t, sub, name, "live", func(h es.SubscriptionHealth) bool { return h.Health == es.HealthLive })
	require.Zero(t, health.EventsBehind)
	require.Equal(t, int64(2), health.ParkedEvents)

	// A retry that fails again: a2 stays parked, one attempt more, and a3
	// stays behind it.
	found, err := sub.RetryParked(t.Context(), name, parked[0].Event.Position)
	require.NoError(t, err)
	require.True(t, found)
	awaitParked(t, sub, name, "a2 retried and failed", func(p []es.ParkedEvent) bool {
		return len(p) == 2 && p[0].Attempts == 3 && !p[0].RetryRequested
	})

	// Fixed: the retry hands a2, then a3, to the handler, in order.
	h.setPoison(a2, false)
	found, err = sub.RetryParked(t.Context(), name, parked[0].Event.Position)
	require.NoError(t, err)
	require.True(t, found)
	awaitParked(t, sub, name, "none parked", func(p []es.ParkedEvent) bool { return len(p) == 0 })
	handled := h.await(t, "a2 and a3", func(es []es.Event) bool { return len(es) == 5 })
	require.Equal(t, []uuid.UUID{a2, a3}, []uuid.UUID{handled[3].ID, handled[4].ID})

	// The stream is no longer blocked: a4 is handled as it comes.
	a4 := mustAppend(t, s, a, es.Exactly(3), Events(1))
	ctx2, cancel2 := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel2()
	require.NoError(t, sub.WaitFor(ctx2, name, a4.LastPosition))
	handled = h.await(t, "a4", func(es []es.Event) bool { return len(es) == 6 })
	require.Equal(t, a4.LastPosition, handled[5].Position)

	// Skip: c1 is poison, c2 behind it; skipping c1 leaves c2 parked until
	// it is retried.
	cev := eventsWithIDs(2)
	h.setPoison(cev[0].ID, true)
	cres := mustAppend(t, s, c, es.NoStream, cev)
	ctx3, cancel3 := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel3()
	require.NoError(t, sub.WaitFor(ctx3, name, cres.LastPosition))
	parked = awaitParked(t, sub, name, "c1 and c2", func(p []es.ParkedEvent) bool { return len(p) == 2 })
	found, err = sub.SkipParked(t.Context(), name, parked[0].Event.Position)
	require.NoError(t, err)
	require.True(t, found)
	found, err = sub.SkipParked(t.Context(), name, parked[0].Event.Position)
	require.NoError(t, err)
	require.False(t, found, "already resolved")
	rest := awaitParked(t, sub, name, "c2", func(p []es.ParkedEvent) bool { return len(p) == 1 })
	require.Equal(t, cev[1].ID, rest[0].Event.ID)
	_, err = sub.RetryParked(t.Context(), name, rest[0].Event.Position)
	require.NoError(t, err)
	awaitParked(t, sub, name, "none parked", func(p []es.ParkedEvent) bool { return len(p) == 0 })
	handled = h.await(t, "c2", func(es []es.Event) bool { return len(es) == 7 })
	require.Equal(t, cev[1].ID, handled[6].ID, "c1 was skipped, never handled")

	// Each effect once (the transactional form undid the rolled-back
	// batches' writes).
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.applied {
		require.Equal(t, 1, n, "event %s applied %d times", id, n)
	}
}

// requireCheckpointEventually waits until the checkpoint of name is want
// (the plain form saves it on its own schedule).
func requireCheckpointEventually(t *testing.T, sub es.Subscriber, name string, want es.Position) {
	t.Helper()
	awaitCheckpoint(t, sub, name, want)
}

func testParkInvalid(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	h := func(context.Context, es.Event) error { return nil }
	require.ErrorIs(t, sub.Subscribe(t.Context(), subscriptionName(), h, &es.SubscribeOpts{OnFailure: 7}), es.ErrInvalidArgument)
	found, err := sub.RetryParked(t.Context(), subscriptionName(), es.NewPosition(1, 1))
	require.NoError(t, err)
	require.False(t, found)
	found, err = sub.SkipParked(t.Context(), subscriptionName(), es.NewPosition(1, 1))
	require.NoError(t, err)
	require.False(t, found)
	_, err = sub.RetryParked(t.Context(), "", es.NewPosition(1, 1))
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = sub.ParkedEvents(t.Context(), "")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	parked, err := sub.ParkedEvents(t.Context(), subscriptionName())
	require.NoError(t, err)
	require.Empty(t, parked)
}
