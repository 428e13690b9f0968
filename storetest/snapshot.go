package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/codec"
	"github.com/pgevent/es/snapshot"
)

// snapshotTests check the snapshot operations ([es.SnapshotStore]) and the
// repository's use of them. A store that does not implement them fails
// these tests.
var snapshotTests = concat(storeSnapshotTests, repositorySnapshotTests)

// storeSnapshotTests check the snapshot operations of the store.
var storeSnapshotTests = []test{
	{"SaveAndRead", testSnapshotSaveAndRead},
	{"KeepsNewest", testSnapshotKeepsNewest},
	{"BeyondStreamRefused", testSnapshotBeyondStream},
	{"InvalidArguments", testSnapshotInvalid},
	{"NilStateIsEmpty", testSnapshotNilState},
	{"LoadSnapshotAndTail", testLoadSnapshotAndTail},
	{"LoadOtherSchemaVersionReplaysAll", testLoadOtherSchema},
	{"LoadWithoutSnapshot", testLoadWithoutSnapshot},
	{"LoadSnapshotAtStreamVersion", testLoadSnapshotAtStreamVersion},
	{"LoadStopsEarly", testLoadStopsEarly},
	{"AppendWithSnapshot", testAppendWithSnapshot},
	{"AppendWithSnapshotKeepsNewer", testAppendWithSnapshotKeepsNewer},
	{"AppendWithSnapshotFailsWritesNothing", testAppendWithSnapshotFails},
	{"AppendWithSnapshotRetry", testAppendWithSnapshotRetry},
	{"ConcurrentSavesNeverAhead", testSnapshotConcurrentNeverAhead},
}

// snapshotStore returns s as an es.SnapshotStore, failing the test when it
// is not one.
func snapshotStore(t *testing.T, s es.Store) es.SnapshotStore {
	t.Helper()
	ss, ok := s.(es.SnapshotStore)
	if !ok {
		t.Fatalf("storetest: store %T does not implement es.SnapshotStore", s)
	}
	return ss
}

// state returns a distinct snapshot state for a version and a label.
func state(label string, version int64) []byte {
	return []byte(fmt.Sprintf("%s@%d", label, version))
}

// mustSaveSnapshot saves a snapshot and returns whether it was stored.
func mustSaveSnapshot(t *testing.T, s es.SnapshotStore, id string, version int64, schema int, st []byte) bool {
	t.Helper()
	stored, err := s.SaveSnapshot(t.Context(), es.Snapshot{StreamID: id, Version: version, SchemaVersion: schema, State: st})
	require.NoError(t, err, "saving snapshot of %q at version %d, schema %d", id, version, schema)
	return stored
}

// requireSnapshot checks the stream's stored snapshot.
func requireSnapshot(t *testing.T, s es.SnapshotStore, id string, version int64, schema int, st []byte) {
	t.Helper()
	snap, err := s.ReadSnapshot(t.Context(), id)
	require.NoError(t, err, "reading the snapshot of %q", id)
	require.Equal(t, id, snap.StreamID)
	require.Equal(t, version, snap.Version, "snapshot version of %q", id)
	require.Equal(t, schema, snap.SchemaVersion, "snapshot schema version of %q", id)
	require.Equal(t, st, snap.State, "snapshot state of %q", id)
	require.False(t, snap.CreatedAt.IsZero(), "snapshot CreatedAt")
}

// requireNoSnapshot checks that the stream has no snapshot.
func requireNoSnapshot(t *testing.T, s es.SnapshotStore, id string) {
	t.Helper()
	_, err := s.ReadSnapshot(t.Context(), id)
	require.ErrorIs(t, err, es.ErrNotFound, "the snapshot of %q", id)
}

// load collects a Load: the snapshot (nil when none) and the events.
func load(t *testing.T, s es.SnapshotStore, id string, schema int) (*es.Snapshot, []es.Event) {
	t.Helper()
	var (
		snap   *es.Snapshot
		events []es.Event
	)
	first := true
	for item, err := range s.Load(t.Context(), id, schema) {
		require.NoError(t, err, "loading %q with schema version %d", id, schema)
		if item.Snapshot != nil {
			require.True(t, first, "a snapshot after the first item")
			snap = item.Snapshot
		} else {
			events = append(events, item.Event)
		}
		first = false
	}
	return snap, events
}

// collectLoad gathers the items of a Load until the first error.
func collectLoad(seq func(yield func(es.Loaded, error) bool)) ([]es.Loaded, error) {
	var items []es.Loaded
	for item, err := range seq {
		if err != nil {
			return items, err
		}
		items = append(items, item)
	}
	return items, nil
}

// testSnapshotSaveAndRead saves a snapshot and reads it back.
func testSnapshotSaveAndRead(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(5))
	requireNoSnapshot(t, ss, id)
	require.True(t, mustSaveSnapshot(t, ss, id, 3, 1, state("a", 3)))
	requireSnapshot(t, ss, id, 3, 1, state("a", 3))
	// Negative and large schema versions are schema versions like any.
	require.True(t, mustSaveSnapshot(t, ss, id, 5, math.MinInt32, state("b", 5)))
	requireSnapshot(t, ss, id, 5, math.MinInt32, state("b", 5))
	require.True(t, mustSaveSnapshot(t, ss, id, 5, math.MaxInt32, state("c", 5)))
	requireSnapshot(t, ss, id, 5, math.MaxInt32, state("c", 5))
	// Other streams are not touched.
	requireNoSnapshot(t, ss, streamID("snap"))
}

// testSnapshotKeepsNewest saves snapshots in every order: only a newer
// version, or the same version with a higher schema version, replaces the
// stored one.
func testSnapshotKeepsNewest(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(10))
	require.True(t, mustSaveSnapshot(t, ss, id, 6, 2, state("a", 6)))
	require.False(t, mustSaveSnapshot(t, ss, id, 5, 2, state("b", 5)), "an older version")
	require.False(t, mustSaveSnapshot(t, ss, id, 5, 9, state("b", 5)), "an older version with a higher schema")
	require.False(t, mustSaveSnapshot(t, ss, id, 6, 2, state("c", 6)), "the same version and schema")
	require.False(t, mustSaveSnapshot(t, ss, id, 6, 1, state("c", 6)), "the same version, a lower schema")
	requireSnapshot(t, ss, id, 6, 2, state("a", 6))
	require.True(t, mustSaveSnapshot(t, ss, id, 6, 3, state("d", 6)), "the same version, a higher schema")
	requireSnapshot(t, ss, id, 6, 3, state("d", 6))
	require.True(t, mustSaveSnapshot(t, ss, id, 7, 1, state("e", 7)), "a newer version, a lower schema")
	requireSnapshot(t, ss, id, 7, 1, state("e", 7))
}

// testSnapshotBeyondStream saves snapshots beyond the stream's version.
func testSnapshotBeyondStream(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id, absent := streamID("snap"), streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(3))
	for _, c := range []struct {
		id      string
		version int64
	}{{id, 4}, {id, 1000}, {absent, 1}} {
		stored, err := ss.SaveSnapshot(t.Context(), es.Snapshot{StreamID: c.id, Version: c.version, SchemaVersion: 1, State: []byte("x")})
		require.ErrorIs(t, err, es.ErrSnapshotBeyondStream, "version %d of %q", c.version, c.id)
		require.ErrorIs(t, err, es.ErrInvalidArgument)
		require.False(t, stored)
		requireNoSnapshot(t, ss, c.id)
	}
	// At the stream's version exactly: fine.
	require.True(t, mustSaveSnapshot(t, ss, id, 3, 1, state("a", 3)))
	_, err := ss.SaveSnapshot(t.Context(), es.Snapshot{StreamID: id, Version: 4, SchemaVersion: 1, State: []byte("y")})
	require.ErrorIs(t, err, es.ErrSnapshotBeyondStream)
	requireSnapshot(t, ss, id, 3, 1, state("a", 3))
}

// testSnapshotInvalid saves, appends with and loads invalid snapshots.
func testSnapshotInvalid(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(3))
	for _, snap := range []es.Snapshot{
		{StreamID: "", Version: 1, SchemaVersion: 1, State: []byte("x")},
		{StreamID: string(make([]byte, es.MaxStreamIDLength+1)), Version: 1, SchemaVersion: 1},
		{StreamID: id, Version: 0, SchemaVersion: 1, State: []byte("x")},
		{StreamID: id, Version: -1, SchemaVersion: 1, State: []byte("x")},
		{StreamID: id, Version: 1, SchemaVersion: math.MaxInt32 + 1, State: []byte("x")},
		{StreamID: id, Version: 1, SchemaVersion: math.MinInt32 - 1, State: []byte("x")},
	} {
		stored, err := ss.SaveSnapshot(ctx, snap)
		require.ErrorIs(t, err, es.ErrInvalidArgument, "%+v", snap)
		require.NotErrorIs(t, err, es.ErrSnapshotBeyondStream, "%+v", snap)
		require.False(t, stored)
	}
	requireNoSnapshot(t, ss, id)

	_, err := ss.AppendWithSnapshot(ctx, id, es.Exactly(3), Events(1), es.NewSnapshot{SchemaVersion: math.MaxInt32 + 1, State: []byte("x")})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = ss.AppendWithSnapshot(ctx, "", es.Any, Events(1), es.NewSnapshot{SchemaVersion: 1})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = ss.AppendWithSnapshot(ctx, id, es.Any, nil, es.NewSnapshot{SchemaVersion: 1})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	requireVersion(t, s, id, 3)
	requireNoSnapshot(t, ss, id)

	_, err = collectLoad(ss.Load(ctx, "", 1))
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

// testSnapshotNilState stores a nil state as an empty one.
func testSnapshotNilState(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(2))
	require.True(t, mustSaveSnapshot(t, ss, id, 1, 1, nil))
	requireSnapshot(t, ss, id, 1, 1, []byte{})
	_, err := ss.AppendWithSnapshot(t.Context(), id, es.Exactly(2), Events(1), es.NewSnapshot{SchemaVersion: 1})
	require.NoError(t, err)
	requireSnapshot(t, ss, id, 3, 1, []byte{})
}

// testLoadSnapshotAndTail loads a stream with a snapshot: the snapshot
// first, then exactly the events after it.
func testLoadSnapshotAndTail(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(10))
	all := readStream(t, s, id, nil)
	require.True(t, mustSaveSnapshot(t, ss, id, 6, 4, state("a", 6)))

	snap, events := load(t, ss, id, 4)
	require.NotNil(t, snap, "the snapshot")
	require.Equal(t, id, snap.StreamID)
	require.Equal(t, int64(6), snap.Version)
	require.Equal(t, 4, snap.SchemaVersion)
	require.Equal(t, state("a", 6), snap.State)
	require.False(t, snap.CreatedAt.IsZero())
	require.Equal(t, all[6:], events, "the events after the snapshot, as ReadStream returns them")

	// A newer snapshot moves the tail.
	mustAppend(t, s, id, es.Exactly(10), Events(3))
	require.True(t, mustSaveSnapshot(t, ss, id, 11, 4, state("b", 11)))
	snap, events = load(t, ss, id, 4)
	require.NotNil(t, snap)
	require.Equal(t, int64(11), snap.Version)
	require.Equal(t, []int64{12, 13}, versionsOf(events))
}

// testLoadOtherSchema loads with another schema version than the stored
// snapshot's: no snapshot, every event.
func testLoadOtherSchema(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(7))
	all := readStream(t, s, id, nil)
	require.True(t, mustSaveSnapshot(t, ss, id, 5, 1, state("a", 5)))
	for _, schema := range []int{0, 2, -1, math.MaxInt32, math.MaxInt32 + 1} {
		snap, events := load(t, ss, id, schema)
		require.Nil(t, snap, "schema version %d", schema)
		require.Equal(t, all, events, "schema version %d: every event", schema)
	}
}

// testLoadWithoutSnapshot loads a stream without a snapshot, and a stream
// that does not exist.
func testLoadWithoutSnapshot(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(4))
	snap, events := load(t, ss, id, 1)
	require.Nil(t, snap)
	require.Equal(t, readStream(t, s, id, nil), events)

	snap, events = load(t, ss, streamID("snap"), 1)
	require.Nil(t, snap)
	require.Empty(t, events)
}

// testLoadSnapshotAtStreamVersion loads a stream whose snapshot is at its
// last version: the snapshot alone.
func testLoadSnapshotAtStreamVersion(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(3))
	require.True(t, mustSaveSnapshot(t, ss, id, 3, 1, state("a", 3)))
	snap, events := load(t, ss, id, 1)
	require.NotNil(t, snap)
	require.Equal(t, int64(3), snap.Version)
	require.Empty(t, events)
}

// testLoadStopsEarly stops iterating a Load after the snapshot and after
// one event; the store stays usable.
func testLoadStopsEarly(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(9))
	require.True(t, mustSaveSnapshot(t, ss, id, 2, 1, state("a", 2)))
	n := 0
	for item, err := range ss.Load(t.Context(), id, 1) {
		require.NoError(t, err)
		require.NotNil(t, item.Snapshot)
		n++
		break
	}
	require.Equal(t, 1, n)
	n = 0
	for item, err := range ss.Load(t.Context(), id, 2) {
		require.NoError(t, err)
		require.Nil(t, item.Snapshot)
		require.Equal(t, int64(1), item.Event.Version)
		n++
		break
	}
	require.Equal(t, 1, n)
	mustAppend(t, s, id, es.Exactly(9), Events(1))
}

// testAppendWithSnapshot appends with a snapshot: stored at the stream's
// new version, in the same call.
func testAppendWithSnapshot(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	res, err := ss.AppendWithSnapshot(ctx, id, es.NoStream, eventsWithIDs(3), es.NewSnapshot{SchemaVersion: 1, State: state("a", 3)})
	require.NoError(t, err)
	require.Equal(t, int64(1), res.FirstVersion)
	require.Equal(t, int64(3), res.StreamVersion)
	requireSnapshot(t, ss, id, 3, 1, state("a", 3))
	requireVersion(t, s, id, 3)

	res, err = ss.AppendWithSnapshot(ctx, id, es.Exactly(3), Events(2), es.NewSnapshot{SchemaVersion: 1, State: state("b", 5)})
	require.NoError(t, err)
	require.Equal(t, int64(5), res.StreamVersion)
	requireSnapshot(t, ss, id, 5, 1, state("b", 5))

	// Any expected version: the snapshot has the version the append reached.
	_, err = ss.AppendWithSnapshot(ctx, id, es.Any, Events(1), es.NewSnapshot{SchemaVersion: 2, State: state("c", 6)})
	require.NoError(t, err)
	requireSnapshot(t, ss, id, 6, 2, state("c", 6))

	snap, events := load(t, ss, id, 2)
	require.NotNil(t, snap)
	require.Equal(t, int64(6), snap.Version)
	require.Empty(t, events)
}

// testAppendWithSnapshotKeepsNewer appends with a snapshot to a stream whose
// stored snapshot is newer than this one: the append succeeds, the stored
// snapshot stays.
func testAppendWithSnapshotKeepsNewer(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(4))
	// Same version, higher schema: kept over the append's.
	_, err := ss.AppendWithSnapshot(ctx, id, es.Exactly(4), Events(1), es.NewSnapshot{SchemaVersion: 1, State: state("a", 5)})
	require.NoError(t, err)
	require.True(t, mustSaveSnapshot(t, ss, id, 5, 7, state("b", 5)))
	_, err = ss.AppendWithSnapshot(ctx, id, es.Exactly(5), Events(1), es.NewSnapshot{SchemaVersion: 1, State: state("c", 6)})
	require.NoError(t, err, "a newer version replaces whatever the schema")
	requireSnapshot(t, ss, id, 6, 1, state("c", 6))
	requireVersion(t, s, id, 6)
}

// testAppendWithSnapshotFails appends with a snapshot and a wrong expected
// version: neither events nor snapshot are stored.
func testAppendWithSnapshotFails(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	seed := eventsWithIDs(2)
	mustAppend(t, s, id, es.NoStream, seed)
	_, err := ss.AppendWithSnapshot(ctx, id, es.Exactly(1), Events(1), es.NewSnapshot{SchemaVersion: 1, State: state("a", 2)})
	requireConflict(t, err, id, es.Exactly(1), 2)
	_, err = ss.AppendWithSnapshot(ctx, id, es.Any, []es.NewEvent{seed[0], {ID: newID(), Type: EventType}}, es.NewSnapshot{SchemaVersion: 1, State: state("b", 3)})
	requireDuplicate(t, err)
	requireStreamIDs(t, s, id, newIDsOf(seed))
	requireNoSnapshot(t, ss, id)
}

// testAppendWithSnapshotRetry retries an append with a snapshot: the
// original result, no new events, the snapshot at the retried run's last
// version.
func testAppendWithSnapshotRetry(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(2))
	batch := eventsWithIDs(2)
	first := mustAppend(t, s, id, es.Exactly(2), batch)
	mustAppend(t, s, id, es.Exactly(4), Events(1))

	res, err := ss.AppendWithSnapshot(ctx, id, es.Exactly(2), batch, es.NewSnapshot{SchemaVersion: 1, State: state("a", 4)})
	require.NoError(t, err)
	require.Equal(t, first, res)
	requireVersion(t, s, id, 5)
	requireSnapshot(t, ss, id, 4, 1, state("a", 4))
}

// testSnapshotConcurrentNeverAhead races appenders that store a snapshot
// with every append, and savers of snapshots at versions they have seen:
// the stored snapshot is never ahead of the stream, and it is the one
// stored with the events of its version.
func testSnapshotConcurrentNeverAhead(t *testing.T, s es.Store) {
	ss := snapshotStore(t, s)
	ctx := t.Context()
	id := streamID("snap")
	mustAppend(t, s, id, es.NoStream, Events(1))
	const rounds = 15
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range appenders {
		wg.Go(func() {
			for range rounds {
				info, err := s.StreamInfo(ctx, id)
				if err != nil {
					fail(err)
					return
				}
				v := info.Version
				if w%2 == 0 {
					// A saver: a snapshot at a version it saw.
					if _, err := ss.SaveSnapshot(ctx, es.Snapshot{StreamID: id, Version: v, SchemaVersion: 1, State: state("s", v)}); err != nil {
						fail(err)
					}
					continue
				}
				_, err = ss.AppendWithSnapshot(ctx, id, es.Exactly(v), Events(1),
					es.NewSnapshot{SchemaVersion: 1, State: state("s", v+1)})
				if err != nil && !errors.Is(err, es.ErrWrongVersion) {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	info, err := s.StreamInfo(ctx, id)
	require.NoError(t, err)
	snap, err := ss.ReadSnapshot(ctx, id)
	require.NoError(t, err)
	require.LessOrEqual(t, snap.Version, info.Version, "snapshot ahead of the stream")
	require.Greater(t, info.Version, int64(1), "some append won")
	require.Equal(t, state("s", snap.Version), snap.State, "the snapshot's state is the one stored for its version")
	loaded, events := load(t, ss, id, 1)
	require.NotNil(t, loaded)
	require.Equal(t, span(snap.Version+1, info.Version)[:info.Version-snap.Version], versionsOf(events))
}

// The repository on a snapshot store: loads from a snapshot equal full
// replays, whatever the snapshots hold.
var repositorySnapshotTests = []test{
	{"RepositorySnapshotPlusTailEqualsReplay", testRepoSnapshotEqualsReplay},
	{"RepositoryEveryCountsCrossing", testRepoEveryCrossing},
	{"RepositoryPolicyCandidate", testRepoPolicyCandidate},
	{"RepositoryOldSchemaIgnored", testRepoOldSchemaIgnored},
	{"RepositoryCorruptSnapshotReplays", testRepoCorruptSnapshot},
	{"RepositoryMarshalFailureKeepsEvents", testRepoMarshalFailure},
	{"RepositoryConcurrentUpdatesNeverAhead", testRepoConcurrentUpdates},
}

// Events of the counter aggregate the repository tests use.
type (
	counterAdded struct {
		N    int64
		Name string
		ID   uuid.UUID
		At   time.Time
	}
	counterTagged struct{ Tag string }
)

// counterState is the counter's state: exported fields of the kinds an
// aggregate holds (numbers, maps, slices, UUIDs, times).
type counterState struct {
	Total  int64
	Count  int
	ByName map[string]int64
	Tags   []string
	LastID uuid.UUID
	At     time.Time
}

func (s *counterState) apply(event any) error {
	switch e := event.(type) {
	case counterAdded:
		s.Total += e.N
		s.Count++
		if s.ByName == nil {
			s.ByName = map[string]int64{}
		}
		s.ByName[e.Name] += e.N
		s.LastID, s.At = e.ID, e.At
	case counterTagged:
		s.Tags = append(s.Tags, e.Tag)
	default:
		return fmt.Errorf("counter: unknown event %T", event)
	}
	return nil
}

// snapCounter is the counter with snapshots: schema is its
// SnapshotSchemaVersion (set by its factory), failMarshal makes
// MarshalSnapshot fail.
type snapCounter struct {
	es.AggregateBase
	counterState
	schema      int
	failMarshal bool
}

func (c *snapCounter) Apply(event any) error      { return c.counterState.apply(event) }
func (c *snapCounter) SnapshotSchemaVersion() int { return c.schema }
func (c *snapCounter) MarshalSnapshot() ([]byte, error) {
	if c.failMarshal {
		return nil, errors.New("counter: cannot marshal")
	}
	return snapshot.Marshal(&c.counterState)
}
func (c *snapCounter) UnmarshalSnapshot(state []byte) error {
	return snapshot.Unmarshal(state, &c.counterState)
}

// plainCounter is the same counter without snapshots: always a full replay.
type plainCounter struct {
	es.AggregateBase
	counterState
}

func (c *plainCounter) Apply(event any) error { return c.counterState.apply(event) }

// counterBundle is a snapshot store with counter repositories on it.
type counterBundle struct {
	store    es.SnapshotStore
	registry *es.Registry
	plain    *es.Repository[*plainCounter]
	errs     chan *es.SnapshotError
}

func newCounterBundle(t *testing.T, s es.Store) *counterBundle {
	t.Helper()
	b := &counterBundle{store: snapshotStore(t, s), registry: es.NewRegistry(), errs: make(chan *es.SnapshotError, 100)}
	require.NoError(t, es.Register[counterAdded](b.registry, "counter.Added"))
	require.NoError(t, es.Register[counterTagged](b.registry, "counter.Tagged"))
	var err error
	b.plain, err = es.NewRepository(s, b.registry, func() *plainCounter { return &plainCounter{} },
		&es.RepositoryConfig{Category: "counter"})
	require.NoError(t, err)
	return b
}

// repo returns a repository of counters of schema version schema with the
// policy; snapshot errors go to b.errs.
func (b *counterBundle) repo(t *testing.T, schema int, policy es.SnapshotPolicy, failMarshal bool) *es.Repository[*snapCounter] {
	t.Helper()
	r, err := es.NewRepository(b.store, b.registry,
		func() *snapCounter { return &snapCounter{schema: schema, failMarshal: failMarshal} },
		&es.RepositoryConfig{Category: "counter", SnapshotPolicy: policy, MaxRetries: 1000,
			OnSnapshotError: func(err *es.SnapshotError) { b.errs <- err }})
	require.NoError(t, err)
	return r
}

// requireReplayEqual loads id through repo and through a full replay and
// checks that they agree, and returns the loaded counter.
func (b *counterBundle) requireReplayEqual(t *testing.T, repo *es.Repository[*snapCounter], id string) *snapCounter {
	t.Helper()
	got, err := repo.Load(t.Context(), id)
	require.NoError(t, err)
	want, err := b.plain.Load(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, want.counterState, got.counterState, "state of %q from snapshot + tail vs full replay", id)
	require.Equal(t, want.StoredVersion(), got.StoredVersion())
	require.Equal(t, id, got.ID())
	require.Empty(t, got.Pending())
	return got
}

// noSnapshotErrors checks that no snapshot error was reported.
func (b *counterBundle) noSnapshotErrors(t *testing.T) {
	t.Helper()
	select {
	case err := <-b.errs:
		t.Fatalf("unexpected snapshot error: %v", err)
	default:
	}
}

// randomCommand records 1..maxEvents random events on c.
func randomCommand(rng *rand.Rand, c *snapCounter, maxEvents int) error {
	for range 1 + rng.IntN(maxEvents) {
		var event any
		if rng.IntN(4) == 0 {
			event = counterTagged{Tag: fmt.Sprintf("t%d", rng.IntN(5))}
		} else {
			event = counterAdded{
				N:    rng.Int64N(2001) - 1000,
				Name: fmt.Sprintf("n%d", rng.IntN(6)),
				ID:   uuid.New(),
				At:   time.Unix(rng.Int64N(1<<31), rng.Int64N(1e9)).UTC(),
			}
		}
		if err := es.Record(c, event); err != nil {
			return err
		}
	}
	return nil
}

// testRepoSnapshotEqualsReplay is a property test: random command
// sequences saved with random policies, some through Update (loading from
// a snapshot), some on aggregates kept in memory; after every save, the
// aggregate loaded from the snapshot and its tail equals the full replay,
// and the stored snapshot is never ahead of the stream.
func testRepoSnapshotEqualsReplay(t *testing.T, s es.Store) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	b := newCounterBundle(t, s)
	ctx := t.Context()
	for k := range 4 {
		n := int64(1 + rng.IntN(8))
		repo := b.repo(t, 1, snapshot.Every(n), false)
		id := fmt.Sprintf("prop%d%s", k, uniq())
		c := repo.New(id)
		require.NoError(t, randomCommand(rng, c, 5))
		require.NoError(t, saved(repo.Save(ctx, c)))
		snapshots := 0
		for range 12 + rng.IntN(12) {
			if rng.IntN(3) == 0 { // keep going with the aggregate in memory
				require.NoError(t, randomCommand(rng, c, 2*int(n)))
				require.NoError(t, saved(repo.Save(ctx, c)))
			} else {
				var err error
				c, _, err = repo.Update(ctx, id, func(c *snapCounter) error { return randomCommand(rng, c, 2*int(n)) })
				require.NoError(t, err)
			}
			got := b.requireReplayEqual(t, repo, id)
			require.Equal(t, c.counterState, got.counterState, "the saved aggregate vs the loaded one")
			if snap, err := b.store.ReadSnapshot(ctx, repo.StreamID(id)); err == nil {
				snapshots++
				require.LessOrEqual(t, snap.Version, got.StoredVersion(), "snapshot ahead of the stream")
				require.Greater(t, snap.Version, got.StoredVersion()-2*n-1, "Every(%d): the last snapshot is too old", n)
			} else {
				require.ErrorIs(t, err, es.ErrNotFound)
			}
		}
		require.Positive(t, snapshots, "Every(%d) never stored a snapshot", n)
	}
	b.noSnapshotErrors(t)
}

// testRepoEveryCrossing saves 3 events at a time with snapshot.Every(5): a
// snapshot is stored by every save that crosses or lands on a multiple of 5.
func testRepoEveryCrossing(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	repo := b.repo(t, 1, snapshot.Every(5), false)
	ctx := t.Context()
	id := uniq()
	stream := repo.StreamID(id)
	c := repo.New(id)
	add := func() {
		for range 3 {
			require.NoError(t, es.Record(c, counterTagged{Tag: "x"}))
		}
		require.NoError(t, saved(repo.Save(ctx, c)))
	}
	// Saves reach 3, 6, 9, 12, 15, 18: snapshots at 6 (crossing 5), 12
	// (crossing 10), 15 (landing on 15).
	wantSnapshot := []int64{0, 6, 6, 12, 15, 15}
	for _, want := range wantSnapshot {
		add()
		snap, err := b.store.ReadSnapshot(ctx, stream)
		if want == 0 {
			require.ErrorIs(t, err, es.ErrNotFound, "at version %d", c.StoredVersion())
			continue
		}
		require.NoError(t, err)
		require.Equal(t, want, snap.Version, "snapshot after the save to version %d", c.StoredVersion())
		require.Equal(t, 1, snap.SchemaVersion)
	}
	b.requireReplayEqual(t, repo, id)
	b.noSnapshotErrors(t)
}

// testRepoPolicyCandidate checks what a policy is told, and that a custom
// predicate decides.
func testRepoPolicyCandidate(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	var (
		mu   sync.Mutex
		seen []es.SnapshotCandidate
	)
	policy := snapshot.When(func(c es.SnapshotCandidate) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
		return c.EventsSinceSnapshot >= 4
	})
	repo := b.repo(t, 1, policy, false)
	ctx := t.Context()
	id := uniq()
	c := repo.New(id)
	start := time.Now()
	for range 3 { // versions 2, 4, 6
		require.NoError(t, es.Record(c, counterTagged{Tag: "a"}))
		require.NoError(t, es.Record(c, counterTagged{Tag: "b"}))
		require.NoError(t, saved(repo.Save(ctx, c)))
	}
	end, elapsed := time.Now(), time.Since(start)
	mu.Lock()
	require.Len(t, seen, 3)
	first, second, third := seen[0], seen[1], seen[2]
	mu.Unlock()
	require.Equal(t, repo.StreamID(id), first.StreamID)
	require.Equal(t, int64(0), first.PreviousVersion)
	require.Equal(t, int64(2), first.Version)
	require.Equal(t, int64(0), first.LastSnapshotVersion)
	require.Equal(t, int64(2), first.EventsSinceSnapshot)
	require.True(t, first.LastSnapshotAt.IsZero())
	require.Equal(t, time.Duration(math.MaxInt64), first.SinceSnapshot)
	require.Equal(t, int64(4), second.Version, "due: a snapshot at 4")
	require.Equal(t, int64(4), third.LastSnapshotVersion, "the snapshot the previous save stored")
	require.Equal(t, int64(2), third.EventsSinceSnapshot)
	require.WithinRange(t, third.LastSnapshotAt, start, end, "the time of the second save")
	require.GreaterOrEqual(t, third.SinceSnapshot, time.Duration(0))
	require.LessOrEqual(t, third.SinceSnapshot, elapsed, "at most the time the saves took")

	snap, err := b.store.ReadSnapshot(ctx, repo.StreamID(id))
	require.NoError(t, err)
	require.Equal(t, int64(4), snap.Version)

	// A loaded aggregate knows the snapshot it came from.
	loaded, err := repo.Load(ctx, id)
	require.NoError(t, err)
	require.NoError(t, es.Record(loaded, counterTagged{Tag: "c"}))
	require.NoError(t, saved(repo.Save(ctx, loaded)))
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	require.Equal(t, int64(4), last.LastSnapshotVersion)
	require.Equal(t, int64(3), last.EventsSinceSnapshot)
	require.Equal(t, snap.CreatedAt, last.LastSnapshotAt)
	b.noSnapshotErrors(t)
}

// Sealed returns a snapshot state as es.Repository stores it: the
// aggregate's encoded state in the envelope {"crc32c": CRC-32C(version as
// 8 big-endian bytes, then state), "state": state}. Tests use it to store
// snapshots by hand.
func Sealed(version int64, state []byte) []byte {
	return codec.Seal(version, state)
}

// testRepoOldSchemaIgnored stores a snapshot whose (sealed, valid) state
// differs from the events', under schema version 1: a repository of schema
// version 1 trusts it, one of schema version 2 ignores it and replays.
func testRepoOldSchemaIgnored(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	ctx := t.Context()
	v1 := b.repo(t, 1, snapshot.Never(), false)
	id := uniq()
	c := v1.New(id)
	require.NoError(t, randomCommand(rand.New(rand.NewPCG(1, 2)), c, 6))
	require.NoError(t, saved(v1.Save(ctx, c)))
	version := c.StoredVersion()

	bogus, err := snapshot.Marshal(&counterState{Total: 424242, Tags: []string{"from the snapshot"}})
	require.NoError(t, err)
	stored, err := b.store.SaveSnapshot(ctx, es.Snapshot{StreamID: v1.StreamID(id), Version: version, SchemaVersion: 1, State: Sealed(version, bogus)})
	require.NoError(t, err)
	require.True(t, stored)

	got, err := v1.Load(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(424242), got.Total, "schema version 1 uses the snapshot")
	require.Equal(t, version, got.StoredVersion())

	v2 := b.repo(t, 2, snapshot.Every(1), false)
	got = b.requireReplayEqual(t, v2, id)
	require.NotEqual(t, int64(424242), got.Total)
	b.noSnapshotErrors(t)

	// The next save of schema version 2 replaces the old snapshot.
	require.NoError(t, es.Record(got, counterTagged{Tag: "v2"}))
	require.NoError(t, saved(v2.Save(ctx, got)))
	snap, err := b.store.ReadSnapshot(ctx, v2.StreamID(id))
	require.NoError(t, err)
	require.Equal(t, 2, snap.SchemaVersion)
	require.Equal(t, version+1, snap.Version)
	b.requireReplayEqual(t, v2, id)
}

// testRepoCorruptSnapshot stores damaged snapshots: every load replays the
// whole stream instead (never a wrong aggregate) and reports the snapshot.
func testRepoCorruptSnapshot(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	ctx := t.Context()
	repo := b.repo(t, 1, snapshot.Every(1), false)
	id := uniq()
	stream := repo.StreamID(id)
	c := repo.New(id)
	require.NoError(t, randomCommand(rand.New(rand.NewPCG(3, 4)), c, 6))
	require.NoError(t, saved(repo.Save(ctx, c)))
	good, err := b.store.ReadSnapshot(ctx, stream)
	require.NoError(t, err)
	b.requireReplayEqual(t, repo, id)

	state, err := snapshot.Marshal(&c.counterState)
	require.NoError(t, err)
	flipped := bytes.Clone(good.State)
	flipped[len(flipped)-3] ^= 0x01 // a bit inside the state
	cases := map[string][]byte{
		"garbage":                {0xde, 0xad, 0xbe, 0xef},
		"empty":                  {},
		"plain msgpack":          state,
		"msgpack nil":            {0xc0},
		"truncated":              good.State[:len(good.State)-2],
		"a flipped bit":          flipped,
		"another version's":      good.State, // sealed for good.Version, stored at a later one
		"sealed nil":             nil,        // sealed below, for its version
		"sealed truncated state": nil,        // sealed below, for its version
	}
	for name, bad := range cases {
		// Each case: one more event, then the bad snapshot at that version.
		require.NoError(t, es.Record(c, counterTagged{Tag: name}))
		repoNever := b.repo(t, 1, snapshot.Never(), false)
		require.NoError(t, saved(repoNever.Save(ctx, c)))
		v := c.StoredVersion()
		switch name {
		case "sealed nil":
			bad = Sealed(v, []byte{0xc0})
		case "sealed truncated state":
			bad = Sealed(v, state[:len(state)-1])
		}
		stored, err := b.store.SaveSnapshot(ctx, es.Snapshot{StreamID: stream, Version: v, SchemaVersion: 1, State: bad})
		require.NoError(t, err)
		require.True(t, stored, name)

		got := b.requireReplayEqual(t, repo, id)
		require.Equal(t, c.counterState, got.counterState, name)
		select {
		case serr := <-b.errs:
			require.Equal(t, stream, serr.StreamID, name)
			require.Equal(t, v, serr.Version, name)
			require.Equal(t, "restore", serr.Op, name)
			require.Error(t, serr.Err, name)
		default:
			t.Fatalf("%s: the corrupt snapshot was not reported", name)
		}
	}
	// A due save replaces the corrupt snapshot with a good one.
	require.NoError(t, es.Record(c, counterTagged{Tag: "fixed"}))
	require.NoError(t, saved(repo.Save(ctx, c)))
	b.requireReplayEqual(t, repo, id)
	b.noSnapshotErrors(t)
}

// testRepoMarshalFailure saves an aggregate whose state cannot be encoded:
// the events are stored, the snapshot is not, and the failure is reported.
func testRepoMarshalFailure(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	ctx := t.Context()
	repo := b.repo(t, 1, snapshot.Every(1), true)
	id := uniq()
	c := repo.New(id)
	require.NoError(t, es.Record(c, counterTagged{Tag: "a"}))
	require.NoError(t, saved(repo.Save(ctx, c)))
	require.Equal(t, int64(1), c.StoredVersion())
	requireVersion(t, s, repo.StreamID(id), 1)
	requireNoSnapshot(t, b.store, repo.StreamID(id))
	select {
	case serr := <-b.errs:
		require.Equal(t, "marshal", serr.Op)
		require.Equal(t, int64(1), serr.Version)
	default:
		t.Fatal("the marshal failure was not reported")
	}
	b.requireReplayEqual(t, repo, id)
}

// testRepoConcurrentUpdates runs concurrent Updates of one aggregate with a
// snapshot at every save: the snapshot is never ahead of the stream and
// loads equal the full replay.
func testRepoConcurrentUpdates(t *testing.T, s es.Store) {
	b := newCounterBundle(t, s)
	ctx := t.Context()
	repo := b.repo(t, 1, snapshot.Every(1), false)
	id := uniq()
	c := repo.New(id)
	require.NoError(t, es.Record(c, counterTagged{Tag: "start"}))
	require.NoError(t, saved(repo.Save(ctx, c)))
	const perWriter = 6
	var wg sync.WaitGroup
	errs := make([]error, appenders)
	for w := range appenders {
		wg.Go(func() {
			for i := range perWriter {
				_, _, err := repo.Update(ctx, id, func(c *snapCounter) error {
					return es.Record(c, counterAdded{N: int64(w*100 + i), Name: fmt.Sprintf("w%d", w), ID: uuid.New()})
				})
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	got := b.requireReplayEqual(t, repo, id)
	require.Equal(t, int64(1+appenders*perWriter), got.StoredVersion())
	require.Equal(t, appenders*perWriter, got.Count)
	snap, err := b.store.ReadSnapshot(ctx, repo.StreamID(id))
	require.NoError(t, err)
	require.Equal(t, got.StoredVersion(), snap.Version, "every save stores a snapshot: the last one is at the stream's version")
	b.noSnapshotErrors(t)
}

// saved returns the error of a Repository.Save, for require.NoError.
func saved(_ es.AppendResult, err error) error { return err }
