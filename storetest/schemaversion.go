package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// schemaVersionTests check that each event's schema version is stored as
// appended (1 when not given) and comes back on every read path, and that
// a registry upcasts what the store returns.
var schemaVersionTests = []test{
	{"EveryReadReturnsIt", testSchemaVersionsEveryRead},
	{"OutOfRangeWritesNothing", testSchemaVersionsOutOfRange},
	{"RetryIgnoresThem", testSchemaVersionsRetry},
	{"UpcastOnLoad", testSchemaVersionsUpcastOnLoad},
	{"ParkedEventsKeepIt", testSchemaVersionsParked},
}

// versionedEvents returns events at the schema versions given (0: not
// given, stored as 1), with explicit ids.
func versionedEvents(versions ...int) []es.NewEvent {
	events := eventsWithIDs(len(versions))
	for i, v := range versions {
		events[i].SchemaVersion = v
	}
	return events
}

// schemaVersionsOf returns the events' schema versions.
func schemaVersionsOf(events []es.Event) []int {
	out := make([]int, len(events))
	for i, e := range events {
		out[i] = e.SchemaVersion
	}
	return out
}

// testSchemaVersionsEveryRead appends batches and single events at several
// versions, with and without a snapshot, and reads them back forwards,
// backwards, from the global log, with Load, and through a subscription
// and a consumer group.
func testSchemaVersionsEveryRead(t *testing.T, s es.Store) {
	id, other := streamID("versioned"), streamID("versioned")
	batch := versionedEvents(0, 1, 2, 7, es.MaxSchemaVersion)
	first := mustAppend(t, s, id, es.NoStream, batch)
	mustAppend(t, s, id, es.Exactly(5), versionedEvents(3))
	mustAppend(t, s, id, es.Exactly(6), versionedEvents(0)) // a single event without a version
	want := []int{1, 1, 2, 7, es.MaxSchemaVersion, 3, 1}

	ss := snapshotStore(t, s)
	_, err := ss.AppendWithSnapshot(t.Context(), other, es.NoStream, versionedEvents(4, 0),
		es.NewSnapshot{SchemaVersion: 1, State: []byte("state")})
	require.NoError(t, err)
	last := mustAppend(t, s, other, es.Exactly(2), Events(1)) // Events: no versions at all

	requireStored(t, batch, readStream(t, s, id, &es.ReadStreamOpts{MaxCount: 5}), id, first.FirstVersion)
	require.Equal(t, want, schemaVersionsOf(readStream(t, s, id, nil)), "ReadStream")
	backwards := readStream(t, s, id, &es.ReadStreamOpts{Backwards: true})
	require.Equal(t, []int{1, 3, es.MaxSchemaVersion, 7, 2, 1, 1}, schemaVersionsOf(backwards), "ReadStream backwards")

	awaitVisible(t, s, last.LastPosition)
	byStream := map[string][]int{}
	for _, e := range readAll(t, s, &es.ReadAllOpts{Categories: []string{"versioned"}}) {
		byStream[e.StreamID] = append(byStream[e.StreamID], e.SchemaVersion)
	}
	require.Equal(t, map[string][]int{id: want, other: {4, 1, 1}}, byStream, "ReadAll")

	snap, loaded := load(t, ss, other, 1)
	require.NotNil(t, snap)
	require.Equal(t, []int{1}, schemaVersionsOf(loaded), "Load after the snapshot")
	_, loaded = load(t, ss, other, 2) // no snapshot of that schema: every event
	require.Equal(t, []int{4, 1, 1}, schemaVersionsOf(loaded), "Load without a snapshot")

	sub := subscriber(t, s)
	for name, opts := range map[string]es.SubscribeOpts{
		"plain": {Categories: []string{"versioned"}},
		"group": {Categories: []string{"versioned"}, Partitions: 2},
	} {
		rec := newRecorder()
		start(t, sub, "versions-"+name+"-"+uniq(), rec.handle, fastOpts(opts))
		got := map[string][]int{}
		for _, e := range rec.waitFor(t, len(want)+3) {
			got[e.StreamID] = append(got[e.StreamID], e.SchemaVersion)
		}
		require.Equal(t, map[string][]int{id: want, other: {4, 1, 1}}, got, "subscription %s", name)
	}
}

// testSchemaVersionsParked parks an event at version 4: the parked event
// carries it.
func testSchemaVersionsParked(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("parkedversion"), es.NoStream, versionedEvents(4))
	r := start(t, sub, name, func(context.Context, es.Event) error { return errEdge }, fastOpts(es.SubscribeOpts{OnFailure: es.ParkOnFailure}))
	ctx, cancel := waitCtx()
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	require.NoError(t, r.stop(t))
	parked, err := sub.ParkedEvents(t.Context(), name)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, 4, parked[0].Event.SchemaVersion)
}

// testSchemaVersionsOutOfRange appends events at a negative version and
// above MaxSchemaVersion: invalid, nothing written.
func testSchemaVersionsOutOfRange(t *testing.T, s es.Store) {
	for _, v := range []int{-1, es.MaxSchemaVersion + 1} {
		id := streamID("badversion")
		_, err := s.Append(t.Context(), id, es.Any, versionedEvents(1, v))
		requireInvalid(t, err)
		require.ErrorContains(t, err, "schema version", "version %d", v)
		require.Empty(t, readStream(t, s, id, nil), "version %d: nothing written", v)
	}
}

// testSchemaVersionsRetry retries an append: the original result, whatever
// versions the retry carries (like its data, they are not compared).
func testSchemaVersionsRetry(t *testing.T, s es.Store) {
	id := streamID("versionretry")
	batch := versionedEvents(2, 3)
	res := mustAppend(t, s, id, es.NoStream, batch)
	retry := append([]es.NewEvent(nil), batch...)
	retry[0].SchemaVersion = 5
	again, err := s.Append(t.Context(), id, es.NoStream, retry)
	require.NoError(t, err)
	require.Equal(t, res, again)
	require.Equal(t, []int{2, 3}, schemaVersionsOf(readStream(t, s, id, nil)), "the stored versions stay")
}

// Three shapes of one event type under one name, as the code of each time
// wrote it: v1 {"email"}, v2 {"contact_email"}, v3 adds "verified".
type (
	userRegisteredV1 struct {
		Email string `msgpack:"email"`
	}
	userRegisteredV2 struct {
		ContactEmail string `msgpack:"contact_email"`
	}
	userRegistered struct {
		ContactEmail string `msgpack:"contact_email"`
		Verified     bool   `msgpack:"verified"`
	}
	userVerified struct{}
)

// user is an aggregate that reads UserRegistered at version 3.
type user struct {
	es.AggregateBase
	emails   []string
	verified bool
}

func (u *user) Apply(event any) error {
	switch e := event.(type) {
	case userRegistered:
		u.emails = append(u.emails, e.ContactEmail)
		u.verified = e.Verified
	case userVerified:
		u.verified = true
	default:
		return fmt.Errorf("user: unknown event %T", event)
	}
	return nil
}

// testSchemaVersionsUpcastOnLoad stores UserRegistered at versions 1, 2 and
// 3 under one name, as three generations of code would, and loads the
// aggregate with the newest registry: each old event is upcast on read,
// what is stored is not changed, and new events are stored at version 3.
func testSchemaVersionsUpcastOnLoad(t *testing.T, s es.Store) {
	const name = "UserRegistered"
	id := uniq()
	stream := "user-" + id
	for i, ev := range []any{userRegisteredV1{Email: "a@example.com"}, userRegisteredV2{ContactEmail: "b@example.com"},
		userRegistered{ContactEmail: "c@example.com"}} {
		r := es.NewRegistry()
		var err error
		switch ev.(type) {
		case userRegisteredV1:
			err = es.Register[userRegisteredV1](r, name)
		case userRegisteredV2:
			err = es.RegisterWith[userRegisteredV2](r, name, &es.RegisterOpts{SchemaVersion: 2})
		default:
			err = es.RegisterWith[userRegistered](r, name, &es.RegisterOpts{SchemaVersion: 3})
		}
		require.NoError(t, err)
		ne, err := r.NewEvent(ev, nil)
		require.NoError(t, err)
		require.Equal(t, i+1, ne.SchemaVersion)
		mustAppend(t, s, stream, es.Any, []es.NewEvent{ne})
	}

	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[userRegistered](r, name, &es.RegisterOpts{SchemaVersion: 3}))
	require.NoError(t, es.Register[userVerified](r, "UserVerified"))
	require.NoError(t, r.RegisterUpcaster(name, func(m map[string]any) (string, map[string]any, error) {
		m["contact_email"] = m["email"]
		delete(m, "email")
		return name, m, nil
	}))
	require.NoError(t, r.RegisterUpcasterWith(name, func(m map[string]any) (string, map[string]any, error) {
		m["verified"] = false
		return name, m, nil
	}, &es.UpcasterOpts{FromVersion: 2}))

	repo, err := es.NewRepository(s, r, func() *user { return &user{} }, nil)
	require.NoError(t, err)
	u, err := repo.Load(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, []string{"a@example.com", "b@example.com", "c@example.com"}, u.emails)
	require.NoError(t, es.Record(u, userRegistered{ContactEmail: "d@example.com", Verified: true}))
	_, err = repo.Save(t.Context(), u)
	require.NoError(t, err)

	stored := readStream(t, s, stream, nil)
	require.Equal(t, []int{1, 2, 3, 3}, schemaVersionsOf(stored), "old events keep their versions; new ones are at 3")
	old, err := es.NewRegistry().DecodeWith(stored[0], &es.DecodeOpts{AllowUnknown: true})
	require.NoError(t, err)
	require.Equal(t, stored[0], old.(es.RawEvent).Event)
	v1 := es.NewRegistry()
	require.NoError(t, es.Register[userRegisteredV1](v1, name))
	got, err := v1.Decode(stored[0])
	require.NoError(t, err)
	require.Equal(t, userRegisteredV1{Email: "a@example.com"}, got, "the stored bytes are the v1 bytes")
	_, err = v1.Decode(stored[3])
	require.ErrorIs(t, err, es.ErrSchemaVersionAhead, "code that knows only v1 refuses v3")
}
