package storetest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/snapshot"
)

// lifecycleTests check soft deletion, tombstones, truncation and retention
// ([es.StreamLifecycle]), and that none of them breaks the global log, a
// subscription or a repository.
var lifecycleTests = []test{
	{"SoftDeleteHidesAndRestores", testSoftDelete},
	{"SoftDeleteChecks", testSoftDeleteChecks},
	{"TombstoneRemovesForGood", testTombstone},
	{"TombstoneUnusedID", testTombstoneUnused},
	{"TruncateThenRemove", testTruncate},
	{"RetentionByCount", testRetentionByCount},
	{"RetentionByAge", testRetentionByAge},
	{"RetentionInvalid", testRetentionInvalid},
	{"RepositoryAfterDeleteAndTruncate", testRepositoryLifecycle},
	{"SubscriptionPastRemovedEvents", testSubscriptionPastRemoved},
	{"ArchiveChangesNoRead", testArchive},
	{"ParkedEventsOfRemovedStream", testParkedOfRemoved},
}

// lifecycle returns s as an es.StreamLifecycle, failing the test when the
// store does not implement it.
func lifecycle(t *testing.T, s es.Store) es.StreamLifecycle {
	t.Helper()
	l, ok := s.(es.StreamLifecycle)
	require.True(t, ok, "%T does not implement es.StreamLifecycle", s)
	return l
}

// requireDeleted checks that err is a *es.StreamDeletedError for id.
func requireDeleted(t *testing.T, err error, id string, tombstoned bool) {
	t.Helper()
	require.ErrorIs(t, err, es.ErrStreamDeleted)
	var d *es.StreamDeletedError
	require.True(t, errors.As(err, &d), "%v is not a *es.StreamDeletedError", err)
	require.Equal(t, id, d.StreamID)
	require.Equal(t, tombstoned, d.Tombstoned)
}

// requireHidden checks that the stream reads as one that does not exist.
func requireHidden(t *testing.T, s es.Store, id string) {
	t.Helper()
	require.Empty(t, readStream(t, s, id, nil), "read forwards")
	require.Empty(t, readStream(t, s, id, &es.ReadStreamOpts{Backwards: true}), "read backwards")
	_, err := s.StreamInfo(t.Context(), id)
	require.ErrorIs(t, err, es.ErrNotFound)
	_, events := load(t, snapshotStore(t, s), id, 1)
	require.Empty(t, events, "load")
}

// requireInfoVersion checks a (truncated) stream's version through
// StreamInfo.
func requireInfoVersion(t *testing.T, s es.Store, id string, want int64) {
	t.Helper()
	info, err := s.StreamInfo(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, want, info.Version, "version of %q", id)
}

// appendVisible appends as mustAppend does, and waits until the events are
// visible in the global log (a PostgreSQL store shows an event there only
// once every transaction that could precede it has ended).
func appendVisible(t *testing.T, s es.Store, id string, expected es.ExpectedVersion, events []es.NewEvent) es.AppendResult {
	t.Helper()
	res := mustAppend(t, s, id, expected, events)
	awaitVisible(t, s, res.LastPosition)
	return res
}

// logOf returns the events of ReadAll that belong to the streams in ids
// (appended with appendVisible).
func logOf(t *testing.T, s es.Store, ids ...string) []es.Event {
	t.Helper()
	var out []es.Event
	for _, e := range readAll(t, s, nil) {
		for _, id := range ids {
			if e.StreamID == id {
				out = append(out, e)
			}
		}
	}
	return out
}

func testSoftDelete(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id, other := streamID("softdel"), streamID("softdel")
	mustAppend(t, s, id, es.NoStream, Events(3))
	appendVisible(t, s, other, es.NoStream, Events(1))
	before := logOf(t, s, id, other)

	v, err := l.DeleteStream(ctx, id, es.Any)
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
	requireHidden(t, s, id)
	requireVersion(t, s, other, 1)
	requireSameEvents(t, before, logOf(t, s, id, other)) // the global log keeps them

	for _, expected := range []es.ExpectedVersion{es.Any, es.NoStream, es.Exactly(3), es.StreamExists} {
		_, err = s.Append(ctx, id, expected, Events(1))
		requireDeleted(t, err, id, false)
	}
	_, err = l.TruncateStream(ctx, id, 2)
	requireDeleted(t, err, id, false)
	v, err = l.DeleteStream(ctx, id, es.Any) // again: nothing changes
	require.NoError(t, err)
	require.Equal(t, int64(3), v)

	v, err = l.RestoreStream(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
	require.Equal(t, span(1, 3), versionsOf(readStream(t, s, id, nil)))
	res := mustAppend(t, s, id, es.Exactly(3), Events(1))
	require.Equal(t, int64(4), res.StreamVersion)
	v, err = l.RestoreStream(ctx, id) // not deleted: nothing changes
	require.NoError(t, err)
	require.Equal(t, int64(4), v)
}

func testSoftDeleteChecks(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id := streamID("softdel")
	_, err := l.DeleteStream(ctx, id, es.Any)
	require.ErrorIs(t, err, es.ErrNotFound)
	_, err = l.RestoreStream(ctx, id)
	require.ErrorIs(t, err, es.ErrNotFound)
	mustAppend(t, s, id, es.NoStream, Events(2))
	_, err = l.DeleteStream(ctx, id, es.Exactly(1))
	requireConflict(t, err, id, es.Exactly(1), 2)
	_, err = l.DeleteStream(ctx, id, es.NoStream)
	requireConflict(t, err, id, es.NoStream, 2)
	_, err = l.DeleteStream(ctx, "", es.Any)
	requireInvalid(t, err)
	_, err = l.DeleteStream(ctx, id, es.Exactly(-2))
	requireInvalid(t, err)
	requireVersion(t, s, id, 2) // nothing above changed it
	_, err = l.DeleteStream(ctx, id, es.Exactly(2))
	require.NoError(t, err)
	// Deleted, it counts as not existing for the expected version.
	_, err = l.DeleteStream(ctx, id, es.StreamExists)
	requireConflict(t, err, id, es.StreamExists, 0)
	_, err = l.DeleteStream(ctx, id, es.NoStream)
	require.NoError(t, err)
}

func testTombstone(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id, other := streamID("tomb"), streamID("tomb")
	for range 3 { // interleaved in the global log
		mustAppend(t, s, id, es.Any, Events(1))
		appendVisible(t, s, other, es.Any, Events(1))
	}
	mustSaveSnapshot(t, snapshotStore(t, s), id, 2, 1, state("tomb", 2))
	keep := logOf(t, s, other)

	_, err := l.TombstoneStream(ctx, id, es.Exactly(2))
	requireConflict(t, err, id, es.Exactly(2), 3)
	n, err := l.TombstoneStream(ctx, id, es.Exactly(3))
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	requireHidden(t, s, id)
	requireNoSnapshot(t, snapshotStore(t, s), id)
	require.Empty(t, logOf(t, s, id), "the tombstoned stream's events are gone from the global log")
	requireSameEvents(t, keep, logOf(t, s, other))
	requirePositionsIncrease(t, readAll(t, s, nil))

	for _, expected := range []es.ExpectedVersion{es.Any, es.NoStream} {
		_, err = s.Append(ctx, id, expected, Events(1))
		requireDeleted(t, err, id, true)
	}
	_, err = l.RestoreStream(ctx, id)
	requireDeleted(t, err, id, true)
	_, err = l.DeleteStream(ctx, id, es.Any)
	requireDeleted(t, err, id, true)
	_, err = l.TruncateStream(ctx, id, 1)
	requireDeleted(t, err, id, true)
	_, err = snapshotStore(t, s).SaveSnapshot(ctx, es.Snapshot{StreamID: id, Version: 1, SchemaVersion: 1, State: state("tomb", 1)})
	requireDeleted(t, err, id, true)
	requireNoSnapshot(t, snapshotStore(t, s), id)
	n, err = l.TombstoneStream(ctx, id, es.Any) // again: nothing to do
	require.NoError(t, err)
	require.Zero(t, n)

	// A soft-deleted stream can be tombstoned.
	soft := streamID("tomb")
	appendVisible(t, s, soft, es.NoStream, Events(2))
	_, err = l.DeleteStream(ctx, soft, es.Any)
	require.NoError(t, err)
	n, err = l.TombstoneStream(ctx, soft, es.NoStream)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	require.Empty(t, logOf(t, s, soft))
}

func testTombstoneUnused(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id := streamID("tomb")
	_, err := l.TombstoneStream(ctx, id, es.StreamExists)
	requireConflict(t, err, id, es.StreamExists, 0)
	n, err := l.TombstoneStream(ctx, id, es.NoStream)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = s.Append(ctx, id, es.NoStream, Events(1))
	requireDeleted(t, err, id, true)
	requireHidden(t, s, id)
}

func testTruncate(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id, other := streamID("trunc"), streamID("trunc")
	mustAppend(t, s, id, es.NoStream, Events(5))
	appendVisible(t, s, other, es.NoStream, Events(2))
	all := logOf(t, s, id)

	for _, before := range []int64{0, 7} {
		_, err := l.TruncateStream(ctx, id, before)
		requireInvalid(t, err)
	}
	_, err := l.TruncateStream(ctx, streamID("trunc"), 1)
	require.ErrorIs(t, err, es.ErrNotFound)
	point, err := l.TruncateStream(ctx, id, 3)
	require.NoError(t, err)
	require.Equal(t, int64(3), point)
	point, err = l.TruncateStream(ctx, id, 2) // never back
	require.NoError(t, err)
	require.Equal(t, int64(3), point)

	require.Equal(t, span(3, 5), versionsOf(readStream(t, s, id, nil)))
	require.Equal(t, span(3, 5), versionsOf(readStream(t, s, id, &es.ReadStreamOpts{From: 1})))
	require.Equal(t, []int64{5, 4, 3}, versionsOf(readStream(t, s, id, &es.ReadStreamOpts{Backwards: true})))
	require.Equal(t, []int64{4, 3}, versionsOf(readStream(t, s, id, &es.ReadStreamOpts{Backwards: true, From: 4})))
	requireInfoVersion(t, s, id, 5)
	snap, events := load(t, snapshotStore(t, s), id, 1)
	require.Nil(t, snap)
	require.Equal(t, span(3, 5), versionsOf(events))
	requireSameEvents(t, all, logOf(t, s, id)) // until retention runs

	res, err := l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), res.EventsRemoved)
	require.Zero(t, res.StreamsTruncated)
	requireSameEvents(t, all[2:], logOf(t, s, id))
	require.Equal(t, span(1, 2), versionsOf(readStream(t, s, other, nil)))
	res, err = l.ApplyRetention(ctx, nil) // nothing left to do
	require.NoError(t, err)
	require.Equal(t, es.RetentionResult{Steps: 1}, res)

	// The stream goes on at its version; everything can be truncated.
	mustAppend(t, s, id, es.Exactly(5), Events(1))
	point, err = l.TruncateStream(ctx, id, 7)
	require.NoError(t, err)
	require.Equal(t, int64(7), point)
	require.Empty(t, readStream(t, s, id, nil))
	requireInfoVersion(t, s, id, 6)
	res, err = l.ApplyRetention(ctx, &es.ApplyRetentionOpts{BatchSize: 1})
	require.NoError(t, err)
	require.Equal(t, int64(4), res.EventsRemoved)
	require.Empty(t, logOf(t, s, id))
	mustAppend(t, s, id, es.Exactly(6), Events(1))
	require.Equal(t, []int64{7}, versionsOf(readStream(t, s, id, nil)))
}

func testRetentionByCount(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	cat := "ret" + uniq()[:12]
	a, b, own := cat+"-a", cat+"-b", cat+"-own"
	mustAppend(t, s, a, es.NoStream, Events(5))
	mustAppend(t, s, b, es.NoStream, Events(2))
	appendVisible(t, s, own, es.NoStream, Events(6))
	require.NoError(t, l.SetRetention(ctx, es.RetentionPolicy{Category: cat, MaxCount: 3}))
	require.NoError(t, l.SetRetention(ctx, es.RetentionPolicy{StreamID: own, MaxCount: 1}))

	res, err := l.ApplyRetention(ctx, &es.ApplyRetentionOpts{BatchSize: 2, MaxStreams: 1})
	require.NoError(t, err)
	require.Equal(t, int64(2), res.StreamsTruncated) // a and own; b has fewer than 3
	require.Equal(t, int64(2+5), res.EventsRemoved)
	require.Equal(t, span(3, 5), versionsOf(readStream(t, s, a, nil)))
	require.Equal(t, span(1, 2), versionsOf(readStream(t, s, b, nil)))
	require.Equal(t, []int64{6}, versionsOf(readStream(t, s, own, nil)))
	require.Equal(t, span(3, 5), versionsOf(logOf(t, s, a)))

	// Removing the stream's own policy puts it under its category's.
	require.NoError(t, l.SetRetention(ctx, es.RetentionPolicy{StreamID: own}))
	mustAppend(t, s, own, es.Exactly(6), Events(4))
	res, err = l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(1), res.StreamsTruncated)
	require.Equal(t, int64(2), res.EventsRemoved)
	require.Equal(t, span(8, 10), versionsOf(readStream(t, s, own, nil)))

	// Deleted streams are left alone.
	appendVisible(t, s, b, es.Exactly(2), Events(3))
	_, err = l.DeleteStream(ctx, b, es.Any)
	require.NoError(t, err)
	res, err = l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, es.RetentionResult{Steps: 1}, res)
	require.Len(t, logOf(t, s, b), 5)
}

func testRetentionByAge(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	id := streamID("age")
	appendVisible(t, s, id, es.NoStream, Events(3))
	require.NoError(t, l.SetRetention(ctx, es.RetentionPolicy{StreamID: id, MaxAge: time.Hour}))
	res, err := l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, es.RetentionResult{Steps: 1}, res, "every event is younger than an hour")

	require.NoError(t, l.SetRetention(ctx, es.RetentionPolicy{StreamID: id, MaxAge: time.Millisecond}))
	// The events age past a millisecond; then one pass removes them all.
	poll(t, "the events to be removed by age", func() int64 {
		res, err := l.ApplyRetention(ctx, nil)
		require.NoError(t, err)
		return res.EventsRemoved
	}, func(n int64) bool { return n > 0 })
	require.Empty(t, readStream(t, s, id, nil))
	require.Empty(t, logOf(t, s, id))
	requireInfoVersion(t, s, id, 3)
}

func testRetentionInvalid(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	for _, p := range []es.RetentionPolicy{
		{MaxCount: 1},
		{StreamID: "a-1", Category: "a", MaxCount: 1},
		{StreamID: "a-1", MaxCount: -1},
		{Category: "a", MaxAge: -time.Second},
		{Category: "a-b", MaxCount: 1},
	} {
		requireInvalid(t, l.SetRetention(ctx, p))
	}
	for _, o := range []*es.ApplyRetentionOpts{{BatchSize: -1}, {MaxStreams: -1}} {
		_, err := l.ApplyRetention(ctx, o)
		requireInvalid(t, err)
	}
}

func testRepositoryLifecycle(t *testing.T, s es.Store) {
	l, ctx := lifecycle(t, s), t.Context()
	b := newCounterBundle(t, s)
	repo := b.repo(t, 1, snapshot.Never(), false)
	id := "lc" + uniq()
	c := repo.New(id)
	for i := range 5 {
		require.NoError(t, es.Record(c, counterAdded{N: int64(i + 1)}))
	}
	require.NoError(t, saved(repo.Save(ctx, c)))
	stream := repo.StreamID(id)

	_, err := l.DeleteStream(ctx, stream, es.Any)
	require.NoError(t, err)
	_, err = repo.Load(ctx, id)
	require.ErrorIs(t, err, es.ErrNotFound)
	_, err = l.RestoreStream(ctx, stream)
	require.NoError(t, err)
	want := b.requireReplayEqual(t, repo, id)

	// Truncated with a snapshot at the point - 1: the load still works.
	snapAt3 := b.repo(t, 1, snapshot.Every(3), false)
	c3, _, err := snapAt3.Update(ctx, id, func(c *snapCounter) error { return es.Record(c, counterAdded{N: 100}) })
	require.NoError(t, err)
	snap, err := b.store.ReadSnapshot(ctx, stream)
	require.NoError(t, err)
	require.Equal(t, int64(6), snap.Version)
	_, err = l.TruncateStream(ctx, stream, 7) // everything: the snapshot at 6 stands in
	require.NoError(t, err)
	_, err = l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	got, err := snapAt3.Load(ctx, id)
	require.NoError(t, err)
	require.Equal(t, c3.counterState, got.counterState)
	require.Equal(t, int64(6), got.StoredVersion())
	require.Equal(t, want.Total+100, got.Total)

	// Without a snapshot at or after the point, loading says so.
	_, err = repo.Load(ctx, "lcplain"+uniq()) // (a stream that never existed)
	require.ErrorIs(t, err, es.ErrNotFound)
	id2 := "lc2" + uniq()
	c2 := repo.New(id2)
	for range 4 {
		require.NoError(t, es.Record(c2, counterAdded{N: 1}))
	}
	require.NoError(t, saved(repo.Save(ctx, c2)))
	_, err = l.TruncateStream(ctx, repo.StreamID(id2), 3)
	require.NoError(t, err)
	_, err = repo.Load(ctx, id2)
	require.ErrorIs(t, err, es.ErrStreamTruncated)
	_, err = b.plain.Load(ctx, id2)
	require.ErrorIs(t, err, es.ErrStreamTruncated)
	// Every event removed, no snapshot: truncated too, not "not found".
	_, err = l.TruncateStream(ctx, repo.StreamID(id2), 5)
	require.NoError(t, err)
	_, err = l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	_, err = repo.Load(ctx, id2)
	require.ErrorIs(t, err, es.ErrStreamTruncated)
	_, err = b.plain.Load(ctx, id2)
	require.ErrorIs(t, err, es.ErrStreamTruncated)
}

func testSubscriptionPastRemoved(t *testing.T, s es.Store) {
	l, sub, ctx := lifecycle(t, s), subscriber(t, s), t.Context()
	gone, kept := streamID("subgone"), streamID("subkept")
	mustAppend(t, s, kept, es.NoStream, Events(1))
	mustAppend(t, s, gone, es.NoStream, Events(2)) // the log's last events

	// One subscription handles every event, then they are removed.
	past := newRecorder()
	name := subscriptionName()
	r := start(t, sub, name, past.handle, fastOpts(es.SubscribeOpts{Categories: []string{"subgone", "subkept"}, CheckpointEvery: 1}))
	handled := past.waitFor(t, 3)
	require.NoError(t, r.stop(t))
	last := handled[len(handled)-1].Position
	requireCheckpoint(t, sub, name, last)
	_, err := l.TombstoneStream(ctx, gone, es.Any)
	require.NoError(t, err)

	// It resumes past them (its checkpoint is the position of a removed
	// event, beyond the log's last event now) and goes on.
	r = start(t, sub, name, past.handle, fastOpts(es.SubscribeOpts{Categories: []string{"subgone", "subkept"}, CheckpointEvery: 1}))
	res := mustAppend(t, s, kept, es.Any, Events(1))
	got := past.waitFor(t, 4)
	require.Equal(t, res.LastPosition, got[3].Position)
	awaitCheckpoint(t, sub, name, res.LastPosition)
	require.NoError(t, r.stop(t))

	// A new subscription never sees the removed events.
	fresh := newRecorder()
	r = start(t, sub, subscriptionName(), fresh.handle, fastOpts(es.SubscribeOpts{Categories: []string{"subgone", "subkept"}}))
	events := fresh.waitFor(t, 2)
	require.NoError(t, r.stop(t))
	require.Len(t, events, 2)
	for _, e := range events {
		require.Equal(t, kept, e.StreamID)
	}
}

// readsOf is everything the reads return for the streams in ids: the
// global log (their events), each stream forwards and backwards, its
// load, its version.
type readsOf struct {
	log      []es.Event
	forward  [][]es.Event
	backward [][]es.Event
	loaded   [][]es.Event
	versions []int64
}

func readEverything(t *testing.T, s es.Store, ids ...string) readsOf {
	t.Helper()
	r := readsOf{log: logOf(t, s, ids...)}
	for _, id := range ids {
		r.forward = append(r.forward, readStream(t, s, id, nil))
		r.backward = append(r.backward, readStream(t, s, id, &es.ReadStreamOpts{Backwards: true}))
		_, events := load(t, snapshotStore(t, s), id, 1)
		r.loaded = append(r.loaded, events)
		info, err := s.StreamInfo(t.Context(), id)
		require.NoError(t, err)
		r.versions = append(r.versions, info.Version)
	}
	return r
}

func testArchive(t *testing.T, s es.Store) {
	l, sub, ctx := lifecycle(t, s), subscriber(t, s), t.Context()
	a, b := streamID("arch"), streamID("arch")
	var first es.AppendResult
	batches := map[string][]es.NewEvent{}
	for i := range 4 { // interleaved: each stream's events on both sides of the cut
		ea, eb := eventsWithIDs(2), eventsWithIDs(1)
		ea[1].SchemaVersion = 3 // archived as it is, schema version too
		res := mustAppend(t, s, a, es.Any, ea)
		if i == 0 {
			first = res
		}
		batches[a] = append(batches[a], ea...)
		batches[b] = append(batches[b], eb...)
		appendVisible(t, s, b, es.Any, eb)
	}
	before := readEverything(t, s, a, b)
	require.Len(t, before.log, 12)

	_, err := l.ArchiveEvents(ctx, es.Position{}, &es.ArchiveOpts{BatchSize: -1})
	requireInvalid(t, err)
	_, err = l.ArchiveEvents(ctx, es.Position{}, &es.ArchiveOpts{PartitionSize: -1})
	requireInvalid(t, err)
	// Partitions of 3 events (PostgreSQL's archive is partitioned; the
	// memory store has none): the archive spans several.
	cut := before.log[5].Position // 5 events before it
	n, err := l.ArchiveEvents(ctx, cut, &es.ArchiveOpts{BatchSize: 2, PartitionSize: 3})
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	n, err = l.ArchiveEvents(ctx, cut, nil) // again: nothing left before it
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, before, readEverything(t, s, a, b), "archiving changes nothing a reader sees")

	// Everything but the log's last event.
	n, err = l.ArchiveEvents(ctx, es.NewPosition(math.MaxUint64>>1, math.MaxInt64), &es.ArchiveOpts{PartitionSize: 3})
	require.NoError(t, err)
	require.Equal(t, int64(6), n)
	require.Equal(t, before, readEverything(t, s, a, b))

	// A subscription from the start reads the archived events in order.
	rec := newRecorder()
	r := start(t, sub, subscriptionName(), rec.handle, fastOpts(es.SubscribeOpts{Categories: []string{"arch"}}))
	got := rec.waitFor(t, 12)
	require.NoError(t, r.stop(t))
	requireSameEvents(t, before.log, got[:12])

	// Retrying an archived append replays it; reusing its ids elsewhere
	// is refused.
	res, err := s.Append(ctx, a, es.NoStream, batches[a][:2])
	require.NoError(t, err)
	require.Equal(t, first, res)
	_, err = s.Append(ctx, b, es.Any, batches[a][:1])
	requireDuplicate(t, err)
	require.Equal(t, before, readEverything(t, s, a, b))

	// The archive is removed from like the rest: a tombstone, retention.
	_, err = l.TombstoneStream(ctx, a, es.Any)
	require.NoError(t, err)
	require.Empty(t, logOf(t, s, a))
	_, err = l.TruncateStream(ctx, b, 3)
	require.NoError(t, err)
	res2, err := l.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), res2.EventsRemoved)
	require.Equal(t, span(3, 4), versionsOf(logOf(t, s, b)))
	appendVisible(t, s, b, es.Exactly(4), Events(1))
	require.Equal(t, span(3, 5), versionsOf(readStream(t, s, b, nil)))
	requirePositionsIncrease(t, readAll(t, s, nil))
}

// testParkedOfRemoved parks a stream's events, then tombstones the stream:
// its parked events are resolved (they can be neither retried nor read),
// and the subscription goes on with the other streams.
func testParkedOfRemoved(t *testing.T, s es.Store) {
	l, sub, ctx := lifecycle(t, s), subscriber(t, s), t.Context()
	name := subscriptionName()
	poisoned, other := streamID("parkgone"), streamID("parkkept")
	ev := eventsWithIDs(3)
	mustAppend(t, s, poisoned, es.NoStream, ev[:2])
	last := mustAppend(t, s, other, es.NoStream, ev[2:])
	h := newPoisonHandler()
	h.setPoison(ev[0].ID, true)
	r := start(t, sub, name, func(_ context.Context, e es.Event) error {
		_, err := h.handle(e)
		return err
	}, fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure}))
	wctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
	defer cancel()
	require.NoError(t, sub.WaitFor(wctx, name, last.LastPosition))
	awaitParked(t, sub, name, "the poisoned stream's two events", func(p []es.ParkedEvent) bool { return len(p) == 2 })

	_, err := l.TombstoneStream(ctx, poisoned, es.Any)
	require.NoError(t, err)
	parked, err := sub.ParkedEvents(ctx, name)
	require.NoError(t, err)
	require.Empty(t, parked, "a removed event's parking is resolved")
	require.NoError(t, r.stop(t))
	handled := h.await(t, "the other stream's event", func(es []es.Event) bool { return len(es) >= 1 })
	require.Equal(t, ev[2].ID, handled[0].ID)
}
