package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// groupTests check consumer groups ([es.SubscribeOpts.Partitions]): the
// partitions split the streams and keep each stream's order, members share
// them and take over from one that stops, a resize neither skips nor
// repeats, WaitFor and health work per partition.
var groupTests = []test{
	{"SplitsStreamsInOrder", testGroupSplitsStreams},
	{"TxExactlyOnceAsMembersComeAndGo", testGroupTxMembersComeAndGo},
	{"NewMemberTakesItsShare", testGroupNewMemberTakesShare},
	{"ReadYourWrites", testGroupReadYourWrites},
	{"Resize", testGroupResize},
	{"PartitionHealth", testGroupPartitionHealth},
	{"InvalidPartitions", testGroupInvalid},
}

// groupLog records what the members of a group handle, and checks as it
// goes that each stream's events come in version order, each once.
type groupLog struct {
	mu       sync.Mutex
	next     map[string]int64    // stream → the version it expects next
	by       map[uuid.UUID][]int // event → the members that applied it
	members  map[int]int         // member → events applied
	disorder []string
	changed  chan struct{}
}

func newGroupLog() *groupLog {
	return &groupLog{next: map[string]int64{}, by: map[uuid.UUID][]int{}, members: map[int]int{}, changed: make(chan struct{})}
}

// apply records that member applied the events (in this order).
func (g *groupLog) apply(member int, events ...es.Event) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range events {
		want := g.next[e.StreamID]
		if want == 0 {
			want = 1
		}
		if e.Version != want {
			g.disorder = append(g.disorder, fmt.Sprintf("%s: version %d applied when %d was due (member %d)", e.StreamID, e.Version, want, member))
		}
		g.next[e.StreamID] = e.Version + 1
		g.by[e.ID] = append(g.by[e.ID], member)
		g.members[member]++
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

// plain is an at-least-once handler for member: a redelivery after a
// handover is allowed, so it records the stream's order from the version
// it got (a repeat restarts the stream's expectation).
func (g *groupLog) plain(member int) es.Handler {
	return func(_ context.Context, e es.Event) error {
		g.mu.Lock()
		if e.Version < g.next[e.StreamID] {
			g.next[e.StreamID] = e.Version // delivered again: at least once
		}
		g.mu.Unlock()
		g.apply(member, e)
		return nil
	}
}

// tx is a transactional handler for member: it applies the events of a
// transaction when it commits.
func (g *groupLog) tx(member int) es.TxHandler {
	return func(_ context.Context, tx es.Tx, e es.Event) error {
		tx.OnCommit(func() { g.apply(member, e) })
		return nil
	}
}

// await waits until every event of ids has been applied at least once.
func (g *groupLog) await(t *testing.T, ids []uuid.UUID) {
	t.Helper()
	poll(t, fmt.Sprintf("%d events applied", len(ids)), func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		missing := 0
		for _, id := range ids {
			if len(g.by[id]) == 0 {
				missing++
			}
		}
		return missing
	}, func(missing int) bool { return missing == 0 })
}

// requireExactlyOnce checks that each event of ids was applied once, in
// its stream's order.
func (g *groupLog) requireExactlyOnce(t *testing.T, ids []uuid.UUID) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Empty(t, g.disorder, "each stream's events in order")
	for _, id := range ids {
		require.Len(t, g.by[id], 1, "event %s applied once", id)
	}
	require.Len(t, g.by, len(ids), "no other event applied")
}

// appendStreams appends k events to each of n new streams, interleaved,
// and returns the ids of all of them once ReadAll shows them.
func appendStreams(t *testing.T, s es.Store, n, k int) []uuid.UUID {
	t.Helper()
	streams := make([]string, n)
	for i := range streams {
		streams[i] = streamID("grp")
	}
	var ids []uuid.UUID
	var last es.AppendResult
	for v := range k {
		for _, id := range streams {
			events := eventsWithIDs(1)
			last = mustAppend(t, s, id, es.Exactly(int64(v)), events)
			ids = append(ids, events[0].ID)
		}
	}
	awaitVisible(t, s, last.LastPosition)
	return ids
}

func testGroupSplitsStreams(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	log := newGroupLog()
	opts := fastOpts(es.SubscribeOpts{Partitions: 4, CheckpointEvery: 1})
	for m := range 3 {
		start(t, sub, name, log.plain(m), opts)
	}
	ids := appendStreams(t, s, 12, 5)
	log.await(t, ids)
	log.mu.Lock()
	require.Empty(t, log.disorder, "each stream's events in order")
	log.mu.Unlock()

	// Each partition's checkpoint ends at the last event of its streams.
	events := readAll(t, s, nil)
	last := map[int]es.Position{}
	for _, e := range events {
		last[es.StreamPartition(e.StreamID, 4)] = e.Position
	}
	for p, pos := range last {
		awaitCheckpoint(t, sub, es.PartitionName(name, p, 4), pos)
	}
	// The group's own name is no subscription of its own.
	_, ok, err := sub.Checkpoint(t.Context(), name)
	require.NoError(t, err)
	require.False(t, ok, "the group's name has no checkpoint: its partitions have")
}

func testGroupTxMembersComeAndGo(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	log := newGroupLog()
	opts := fastOpts(es.SubscribeOpts{Partitions: 6, BatchSize: 3})
	a := startTx(t, sub, name, log.tx(0), opts)
	ids := appendStreams(t, s, 10, 3)
	b := startTx(t, sub, name, log.tx(1), opts)
	c := startTx(t, sub, name, log.tx(2), opts)
	ids = append(ids, appendStreams(t, s, 10, 3)...)
	log.await(t, ids)
	require.NoError(t, b.stop(t), "a member that stops returns nil")
	ids = append(ids, appendStreams(t, s, 10, 3)...)
	require.NoError(t, a.stop(t))
	ids = append(ids, appendStreams(t, s, 10, 3)...)
	log.await(t, ids) // c alone now holds every partition
	require.NoError(t, c.stop(t))
	log.requireExactlyOnce(t, ids)
}

func testGroupNewMemberTakesShare(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	log := newGroupLog()
	opts := fastOpts(es.SubscribeOpts{Partitions: 4, CheckpointEvery: 1})
	start(t, sub, name, log.plain(0), opts)
	log.await(t, appendStreams(t, s, 4, 1))
	start(t, sub, name, log.plain(1), opts)
	// New streams land in every partition; once the second member holds
	// its share (two partitions), it handles some of them.
	poll(t, "the second member handles events", func() int {
		log.await(t, appendStreams(t, s, 4, 1))
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.members[1]
	}, func(n int) bool { return n > 0 })
}

func testGroupReadYourWrites(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	b := newCounterBundle(t, s)
	model := newTotals()
	name := subscriptionName()
	h := model.txHandler(b.registry)
	opts := fastOpts(es.SubscribeOpts{Partitions: 3})
	startTx(t, sub, name, h, opts)
	startTx(t, sub, name, h, opts)
	readYourWrites(t, sub, b, name, model)
}

func testGroupResize(t *testing.T, s es.Store) {
	sub := txSubscriber(t, s)
	name := subscriptionName()
	log := newGroupLog()
	two := fastOpts(es.SubscribeOpts{Partitions: 2, BatchSize: 2})
	three := fastOpts(es.SubscribeOpts{Partitions: 3, BatchSize: 2})

	a := startTx(t, sub, name, log.tx(0), two)
	ids := appendStreams(t, s, 9, 2)
	log.await(t, ids)
	// A member with another count waits while the old one runs.
	b := startTx(t, sub, name, log.tx(1), three)
	more := appendStreams(t, s, 9, 2)
	ids = append(ids, more...)
	log.await(t, ids)
	log.mu.Lock()
	require.Zero(t, log.members[1], "the new count waits for the old members to stop")
	log.mu.Unlock()
	// Stop the old member part-way through a backlog: some old partitions
	// are further than others.
	require.NoError(t, a.stop(t))
	ids = append(ids, appendStreams(t, s, 9, 3)...)
	log.await(t, ids)
	require.NoError(t, b.stop(t))
	log.requireExactlyOnce(t, ids)
	log.mu.Lock()
	require.Positive(t, log.members[1], "the new count took over")
	log.mu.Unlock()
	for p := range 3 {
		_, ok, err := sub.Checkpoint(t.Context(), es.PartitionName(name, p, 3))
		require.NoError(t, err)
		require.True(t, ok, "partition %d of 3 has a checkpoint", p)
	}
}

func testGroupPartitionHealth(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	log := newGroupLog()
	r := start(t, sub, name, log.plain(0), fastOpts(es.SubscribeOpts{Partitions: 2, CheckpointEvery: 1}))
	log.await(t, appendStreams(t, s, 4, 1))
	for p := range 2 {
		awaitHealth(t, sub, es.PartitionName(name, p, 2), "partition live", func(h es.SubscriptionHealth) bool {
			return h.Health == es.HealthLive
		})
	}
	require.NoError(t, r.stop(t))
	// With the group stopped, each partition is behind by its own
	// streams' events only.
	ids := appendStreams(t, s, 6, 2)
	events := readAll(t, s, nil)
	want := map[int]int64{}
	for _, e := range events[len(events)-len(ids):] {
		want[es.StreamPartition(e.StreamID, 2)]++
	}
	for p := range 2 {
		h := health(t, sub, es.PartitionName(name, p, 2))
		require.Equal(t, want[p], h.EventsBehind, "partition %d counts its own streams' events", p)
		require.Equal(t, es.HealthIdle, h.Health)
	}
}

func testGroupInvalid(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	for _, n := range []int{-1, es.MaxPartitions + 1} {
		err := sub.Subscribe(t.Context(), subscriptionName(), func(context.Context, es.Event) error { return nil },
			&es.SubscribeOpts{Partitions: n})
		require.True(t, errors.Is(err, es.ErrInvalidArgument), "Partitions %d: %v", n, err)
	}
	require.Panics(t, func() { es.StreamPartition("order-1", 0) })
}
