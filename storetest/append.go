package storetest

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var appendTests = []test{
	{"ExpectedVersionMatrix", testExpectedVersionMatrix},
	{"InvalidExpectedVersion", testInvalidExpectedVersion},
	{"VersionsAndPositions", testVersionsAndPositions},
	{"StreamsAreIndependent", testStreamsAreIndependent},
	{"FailedBatchWritesNothing", testFailedBatchWritesNothing},
	{"WrongVersionBurnsNoPosition", testWrongVersionBurnsNoPosition},
	{"ZeroIDsAreFilled", testZeroIDsAreFilled},
	{"NilDataReadsEmpty", testNilDataReadsEmpty},
	{"MetadataRoundTrips", testMetadataRoundTrips},
	{"PayloadsAreCopied", testPayloadsAreCopied},
}

// testExpectedVersionMatrix appends with each kind of expected version to an
// absent stream and to a stream at version 2.
func testExpectedVersionMatrix(t *testing.T, s es.Store) {
	cases := []struct {
		initial  int64
		expected es.ExpectedVersion
		ok       bool
	}{
		{0, es.Any, true},
		{0, es.NoStream, true},
		{0, es.StreamExists, false},
		{0, es.Exactly(1), false},
		{0, es.Exactly(2), false},
		{0, es.Exactly(5), false},
		{2, es.Any, true},
		{2, es.NoStream, false},
		{2, es.StreamExists, true},
		{2, es.Exactly(1), false},
		{2, es.Exactly(2), true},
		{2, es.Exactly(5), false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("version=%d,expected=%s", c.initial, c.expected), func(t *testing.T) {
			id := streamID("matrix")
			var seed []es.NewEvent
			if c.initial > 0 {
				seed = eventsWithIDs(int(c.initial))
				mustAppend(t, s, id, es.NoStream, seed)
			}
			batch := eventsWithIDs(2)
			res, err := s.Append(t.Context(), id, c.expected, batch)
			if c.ok {
				require.NoError(t, err)
				require.Equal(t, id, res.StreamID)
				require.Equal(t, c.initial+1, res.FirstVersion)
				require.Equal(t, c.initial+2, res.StreamVersion)
				requireStreamIDs(t, s, id, newIDsOf(concat(seed, batch)))
				return
			}
			requireConflict(t, err, id, c.expected, c.initial)
			require.Equal(t, es.AppendResult{}, res, "result of a failed append")
			requireStreamIDs(t, s, id, newIDsOf(seed))
			// The batch's ids were not stored: the same batch appends as
			// new events, not as a retry.
			res = mustAppend(t, s, id, es.Any, batch)
			require.Equal(t, c.initial+1, res.FirstVersion)
			requireStreamIDs(t, s, id, newIDsOf(concat(seed, batch)))
		})
	}
}

// testInvalidExpectedVersion appends with Exactly(-3).
func testInvalidExpectedVersion(t *testing.T, s es.Store) {
	absent, existing := streamID("invalid"), streamID("invalid")
	mustAppend(t, s, existing, es.NoStream, Events(1))
	for _, id := range []string{absent, existing} {
		_, err := s.Append(t.Context(), id, es.Exactly(-3), Events(1))
		requireInvalid(t, err)
	}
	requireVersion(t, s, absent, 0)
	requireVersion(t, s, existing, 1)
}

// testVersionsAndPositions checks versions, positions and results across
// batches.
func testVersionsAndPositions(t *testing.T, s es.Store) {
	id := streamID("batch")
	b1, b2, b3 := eventsWithIDs(3), eventsWithIDs(1), eventsWithIDs(4)
	r1 := mustAppend(t, s, id, es.NoStream, b1)
	r2 := mustAppend(t, s, id, es.Exactly(3), b2)
	r3 := mustAppend(t, s, id, es.StreamExists, b3)
	require.Equal(t, [2]int64{1, 3}, [2]int64{r1.FirstVersion, r1.StreamVersion})
	require.Equal(t, [2]int64{4, 4}, [2]int64{r2.FirstVersion, r2.StreamVersion})
	require.Equal(t, [2]int64{5, 8}, [2]int64{r3.FirstVersion, r3.StreamVersion})

	got := readStream(t, s, id, nil)
	requireStored(t, concat(b1, b2, b3), got, id, 1)
	requirePositionsIncrease(t, got)
	for _, r := range []es.AppendResult{r1, r2, r3} {
		require.Equal(t, got[r.FirstVersion-1].Position, r.FirstPosition, "first position of %+v", r)
		require.Equal(t, got[r.StreamVersion-1].Position, r.LastPosition, "last position of %+v", r)
	}
	require.Equal(t, r2.FirstPosition, r2.LastPosition, "one event: first and last position")
	require.True(t, r1.LastPosition.Before(r2.FirstPosition))
	require.True(t, r2.LastPosition.Before(r3.FirstPosition))
}

// testStreamsAreIndependent checks that each stream counts its own versions.
func testStreamsAreIndependent(t *testing.T, s es.Store) {
	a, b := streamID("indep"), streamID("indep")
	require.Equal(t, int64(1), mustAppend(t, s, a, es.NoStream, Events(2)).FirstVersion)
	require.Equal(t, int64(1), mustAppend(t, s, b, es.NoStream, Events(1)).FirstVersion)
	require.Equal(t, int64(3), mustAppend(t, s, a, es.Exactly(2), Events(1)).FirstVersion)
	require.Equal(t, int64(2), mustAppend(t, s, b, es.Exactly(1), Events(3)).FirstVersion)
	requireVersion(t, s, a, 3)
	requireVersion(t, s, b, 4)
	for _, e := range readStream(t, s, a, nil) {
		require.Equal(t, a, e.StreamID)
	}
}

// testFailedBatchWritesNothing checks that a multi-event batch that fails
// stores none of its events.
func testFailedBatchWritesNothing(t *testing.T, s es.Store) {
	id := streamID("atomic")
	seed := eventsWithIDs(2)
	mustAppend(t, s, id, es.NoStream, seed)

	wrong := eventsWithIDs(3)
	_, err := s.Append(t.Context(), id, es.Exactly(1), wrong)
	requireConflict(t, err, id, es.Exactly(1), 2)
	requireStreamIDs(t, s, id, newIDsOf(seed))

	// A batch whose last event is invalid.
	bad := eventsWithIDs(3)
	bad[2].Type = ""
	_, err = s.Append(t.Context(), id, es.Exactly(2), bad)
	requireInvalid(t, err)
	requireStreamIDs(t, s, id, newIDsOf(seed))

	// A batch with an id twice.
	twice := eventsWithIDs(3)
	twice[2].ID = twice[0].ID
	_, err = s.Append(t.Context(), id, es.Exactly(2), twice)
	requireInvalid(t, err)
	requireStreamIDs(t, s, id, newIDsOf(seed))

	// None of those ids was stored: they append as new events.
	res := mustAppend(t, s, id, es.Exactly(2), wrong)
	require.Equal(t, int64(3), res.FirstVersion)
	res = mustAppend(t, s, id, es.Exactly(5), twice[:2])
	require.Equal(t, int64(6), res.FirstVersion)
	requireStreamIDs(t, s, id, newIDsOf(concat(seed, wrong, twice[:2])))
}

// testWrongVersionBurnsNoPosition checks that the expected-version check
// happens before a global position is taken. It relies on the store being
// used by this test alone.
func testWrongVersionBurnsNoPosition(t *testing.T, s es.Store) {
	x, y := streamID("burn"), streamID("burn")
	r1 := mustAppend(t, s, x, es.NoStream, Events(1))
	for _, c := range []struct {
		id       string
		expected es.ExpectedVersion
	}{
		{x, es.NoStream},
		{x, es.Exactly(5)},
		{y, es.StreamExists},
		{y, es.Exactly(1)},
	} {
		_, err := s.Append(t.Context(), c.id, c.expected, Events(3))
		require.ErrorIs(t, err, es.ErrWrongVersion)
	}
	r2 := mustAppend(t, s, y, es.Any, Events(1))
	require.Equal(t, r1.LastPosition.Global()+1, r2.FirstPosition.Global(),
		"global position after failed appends: first append at %s, next at %s", r1.LastPosition, r2.FirstPosition)
}

// testZeroIDsAreFilled checks that zero event ids become distinct UUIDv7s,
// and that the caller's slice is not modified.
func testZeroIDsAreFilled(t *testing.T, s es.Store) {
	id := streamID("ids")
	events := Events(3)
	explicit := newID()
	events[1].ID = explicit
	mustAppend(t, s, id, es.NoStream, events)
	require.Equal(t, uuid.Nil, events[0].ID, "the caller's events must not be modified")
	require.Equal(t, uuid.Nil, events[2].ID, "the caller's events must not be modified")

	got := readStream(t, s, id, nil)
	require.Len(t, got, 3)
	require.Equal(t, explicit, got[1].ID, "an explicit id is kept")
	seen := map[uuid.UUID]bool{}
	for _, e := range got {
		require.NotEqual(t, uuid.Nil, e.ID)
		require.False(t, seen[e.ID], "id %s twice", e.ID)
		seen[e.ID] = true
	}
	for _, i := range []int{0, 2} {
		require.Equal(t, uuid.Version(7), got[i].ID.Version(), "filled id %s", got[i].ID)
		require.Equal(t, uuid.RFC4122, got[i].ID.Variant(), "filled id %s", got[i].ID)
	}
}

// testNilDataReadsEmpty checks that nil data is stored as an empty body.
func testNilDataReadsEmpty(t *testing.T, s es.Store) {
	id := streamID("nildata")
	res := mustAppend(t, s, id, es.NoStream, []es.NewEvent{{Type: EventType}, {Type: EventType, Data: []byte{}}})
	for _, e := range readStream(t, s, id, nil) {
		require.Empty(t, e.Data)
	}
	awaitVisible(t, s, res.LastPosition)
	for _, e := range readAll(t, s, nil) {
		require.Empty(t, e.Data)
	}
}

// testMetadataRoundTrips checks that nil metadata reads back empty and other
// metadata byte for byte.
func testMetadataRoundTrips(t *testing.T, s es.Store) {
	id := streamID("meta")
	events := eventsWithIDs(3)
	events[1].Metadata = msgpackMap("correlation", 42)
	events[2].Metadata = msgpackMap("m", 7)
	res := mustAppend(t, s, id, es.NoStream, events)
	requireStored(t, events, readStream(t, s, id, nil), id, 1)
	awaitVisible(t, s, res.LastPosition)
	requireStored(t, events, readAll(t, s, nil), id, 1)
}

// testPayloadsAreCopied checks that neither the appended slices nor the read
// ones alias what the store keeps.
func testPayloadsAreCopied(t *testing.T, s es.Store) {
	id := streamID("copy")
	events := eventsWithIDs(1)
	events[0].Metadata = msgpackMap("m", 1)
	want := []es.NewEvent{{
		ID:       events[0].ID,
		Type:     events[0].Type,
		Data:     append([]byte(nil), events[0].Data...),
		Metadata: append([]byte(nil), events[0].Metadata...),
	}}
	res := mustAppend(t, s, id, es.NoStream, events)
	events[0].Data[len(events[0].Data)-1]++
	events[0].Metadata[len(events[0].Metadata)-1]++

	got := readStream(t, s, id, nil)
	requireStored(t, want, got, id, 1)
	got[0].Data[len(got[0].Data)-1]++
	got[0].Metadata[len(got[0].Metadata)-1]++
	requireStored(t, want, readStream(t, s, id, nil), id, 1)

	awaitVisible(t, s, res.LastPosition)
	got = readAll(t, s, nil)
	got[0].Data[0]++
	got[0].Metadata[0]++
	requireStored(t, want, readAll(t, s, nil), id, 1)
}
