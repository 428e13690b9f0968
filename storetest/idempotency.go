package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var idempotencyTests = []test{
	{"RetryReturnsOriginalResult", testRetryReturnsOriginalResult},
	{"RetryWithInconsistentExpectedVersion", testRetryWithInconsistentExpectedVersion},
	{"RetryOfContiguousPart", testRetryOfContiguousPart},
	{"RetrySpanningAppends", testRetrySpanningAppends},
	{"PartialOverlap", testPartialOverlap},
	{"ReorderedRun", testReorderedRun},
	{"IDInAnotherStream", testIDInAnotherStream},
	{"IDTwiceInBatch", testIDTwiceInBatch},
}

// testRetryReturnsOriginalResult retries appends, after the stream moved on,
// with the original expected version and with Any.
func testRetryReturnsOriginalResult(t *testing.T, s es.Store) {
	cases := []struct {
		name     string
		initial  int64
		expected es.ExpectedVersion
	}{
		{"NoStream", 0, es.NoStream},
		{"Any", 0, es.Any},
		{"Exactly", 2, es.Exactly(2)},
		{"StreamExists", 2, es.StreamExists},
		{"AnyOnExisting", 2, es.Any},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := streamID("retry")
			seed := eventsWithIDs(int(c.initial))
			if c.initial > 0 {
				mustAppend(t, s, id, es.NoStream, seed)
			}
			batch := eventsWithIDs(3)
			original := mustAppend(t, s, id, c.expected, batch)
			require.Equal(t, c.initial+1, original.FirstVersion)
			require.Equal(t, c.initial+3, original.StreamVersion)
			later := eventsWithIDs(1)
			laterResult := mustAppend(t, s, id, es.Any, later)
			all := newIDsOf(concat(seed, batch, later))
			before, err := s.StreamInfo(t.Context(), id)
			require.NoError(t, err)

			retries := []es.ExpectedVersion{c.expected, es.Any}
			if c.initial > 0 { // the run starts after existing events
				retries = append(retries, es.StreamExists)
			}
			for _, expected := range retries {
				res, err := s.Append(t.Context(), id, expected, batch)
				require.NoError(t, err, "retry with expected version %s", expected)
				require.Equal(t, original, res, "retry with expected version %s", expected)
				requireStreamIDs(t, s, id, all)
				// A retry writes nothing: the stream is exactly as it was.
				after, err := s.StreamInfo(t.Context(), id)
				require.NoError(t, err)
				require.Equal(t, before, after, "stream info after a retry with expected version %s", expected)
			}
			res, err := s.Append(t.Context(), id, es.Exactly(c.initial+3), later)
			require.NoError(t, err)
			require.Equal(t, laterResult, res)
			requireStreamIDs(t, s, id, all)
			after, err := s.StreamInfo(t.Context(), id)
			require.NoError(t, err)
			require.Equal(t, before, after)

			// Retrying with zero ids is a new append, not a retry.
			res = mustAppend(t, s, id, es.Any, Events(1))
			require.Equal(t, c.initial+5, res.FirstVersion)
		})
	}
}

// testRetryWithInconsistentExpectedVersion retries with expected versions
// that the original append could not have had.
func testRetryWithInconsistentExpectedVersion(t *testing.T, s es.Store) {
	// A run stored at versions 1..3.
	first := streamID("inconsistent")
	batch := eventsWithIDs(3)
	mustAppend(t, s, first, es.NoStream, batch)
	for _, expected := range []es.ExpectedVersion{es.StreamExists, es.Exactly(1), es.Exactly(3)} {
		_, err := s.Append(t.Context(), first, expected, batch)
		requireDuplicate(t, err)
	}
	requireStreamIDs(t, s, first, newIDsOf(batch))

	// A run stored at versions 3..5.
	later := streamID("inconsistent")
	seed, run := eventsWithIDs(2), eventsWithIDs(3)
	mustAppend(t, s, later, es.NoStream, seed)
	original := mustAppend(t, s, later, es.Exactly(2), run)
	for _, expected := range []es.ExpectedVersion{es.NoStream, es.Exactly(1), es.Exactly(3), es.Exactly(5)} {
		_, err := s.Append(t.Context(), later, expected, run)
		requireDuplicate(t, err)
	}
	// The stream existed before the run: StreamExists is consistent.
	res, err := s.Append(t.Context(), later, es.StreamExists, run)
	require.NoError(t, err)
	require.Equal(t, original, res)
	requireStreamIDs(t, s, later, newIDsOf(concat(seed, run)))
}

// testRetryOfContiguousPart retries part of a stored batch: ids that are
// one contiguous run in the same order are a retry, with the result of that
// run.
func testRetryOfContiguousPart(t *testing.T, s es.Store) {
	id := streamID("part")
	batch := eventsWithIDs(4)
	mustAppend(t, s, id, es.NoStream, batch)
	stored := readStream(t, s, id, nil)

	want := es.AppendResult{
		StreamID:      id,
		FirstVersion:  2,
		StreamVersion: 3,
		FirstPosition: stored[1].Position,
		LastPosition:  stored[2].Position,
	}
	for _, expected := range []es.ExpectedVersion{es.Any, es.Exactly(1), es.StreamExists} {
		res, err := s.Append(t.Context(), id, expected, batch[1:3])
		require.NoError(t, err, "expected version %s", expected)
		require.Equal(t, want, res, "expected version %s", expected)
	}
	for _, expected := range []es.ExpectedVersion{es.NoStream, es.Exactly(2), es.Exactly(4)} {
		_, err := s.Append(t.Context(), id, expected, batch[1:3])
		requireDuplicate(t, err)
	}
	// Not contiguous.
	_, err := s.Append(t.Context(), id, es.Any, []es.NewEvent{batch[0], batch[2]})
	requireDuplicate(t, err)
	requireStreamIDs(t, s, id, newIDsOf(batch))
}

// testPartialOverlap appends batches in which some ids are stored and some
// are new.
func testPartialOverlap(t *testing.T, s es.Store) {
	id := streamID("overlap")
	stored := eventsWithIDs(2)
	mustAppend(t, s, id, es.NoStream, stored)
	fresh := eventsWithIDs(1)
	for _, c := range []struct {
		name     string
		expected es.ExpectedVersion
		batch    []es.NewEvent
	}{
		{"StoredThenNew", es.Any, []es.NewEvent{stored[1], fresh[0]}},
		{"NewThenStored", es.Any, []es.NewEvent{fresh[0], stored[0]}},
		{"AllStoredPlusNew", es.NoStream, concat(stored, fresh)},
		{"NewAtNextVersion", es.Exactly(2), []es.NewEvent{fresh[0], stored[1]}},
	} {
		_, err := s.Append(t.Context(), id, c.expected, c.batch)
		requireDuplicate(t, err)
		requireStreamIDs(t, s, id, newIDsOf(stored))
	}
	// The new id was not stored.
	res := mustAppend(t, s, id, es.Exactly(2), fresh)
	require.Equal(t, int64(3), res.FirstVersion)
}

// testReorderedRun retries a stored batch in another order.
func testReorderedRun(t *testing.T, s es.Store) {
	id := streamID("reorder")
	batch := eventsWithIDs(3)
	original := mustAppend(t, s, id, es.NoStream, batch)
	for _, reordered := range [][]es.NewEvent{
		{batch[2], batch[1], batch[0]},
		{batch[1], batch[0]},
		{batch[0], batch[2], batch[1]},
	} {
		for _, expected := range []es.ExpectedVersion{es.Any, es.NoStream} {
			_, err := s.Append(t.Context(), id, expected, reordered)
			requireDuplicate(t, err)
		}
	}
	requireStreamIDs(t, s, id, newIDsOf(batch))
	res, err := s.Append(t.Context(), id, es.NoStream, batch)
	require.NoError(t, err)
	require.Equal(t, original, res)
}

// testIDInAnotherStream appends ids stored in one stream to another.
func testIDInAnotherStream(t *testing.T, s es.Store) {
	x, y := streamID("owner"), streamID("other")
	stored := eventsWithIDs(2)
	mustAppend(t, s, x, es.NoStream, stored)
	mustAppend(t, s, y, es.NoStream, Events(1))
	z := streamID("other")
	for _, c := range []struct {
		id       string
		expected es.ExpectedVersion
		batch    []es.NewEvent
	}{
		{y, es.Any, stored},
		{y, es.Exactly(1), stored[:1]},
		{y, es.Any, concat(eventsWithIDs(1), stored[1:])},
		{z, es.NoStream, stored},
		{z, es.Any, stored[1:]},
	} {
		_, err := s.Append(t.Context(), c.id, c.expected, c.batch)
		requireDuplicate(t, err)
	}
	requireStreamIDs(t, s, x, newIDsOf(stored))
	requireVersion(t, s, y, 1)
	requireVersion(t, s, z, 0)
}

// testIDTwiceInBatch appends a batch that carries one id twice.
func testIDTwiceInBatch(t *testing.T, s es.Store) {
	id := streamID("twice")
	batch := eventsWithIDs(3)
	batch[2].ID = batch[0].ID
	_, err := s.Append(t.Context(), id, es.NoStream, batch)
	requireInvalid(t, err)
	requireVersion(t, s, id, 0)

	// Even when that id is stored already.
	stored := eventsWithIDs(1)
	mustAppend(t, s, id, es.NoStream, stored)
	_, err = s.Append(t.Context(), id, es.Any, concat(stored, stored))
	requireInvalid(t, err)
	requireStreamIDs(t, s, id, newIDsOf(stored))

	// None of the first batch was stored.
	res := mustAppend(t, s, id, es.Exactly(1), batch[:2])
	require.Equal(t, int64(2), res.FirstVersion)
}

// testRetrySpanningAppends retries, as one batch, a run that two appends
// stored, with another stream's append between them: the result carries
// each end's own position, so resuming the global log from FirstPosition
// skips nothing.
func testRetrySpanningAppends(t *testing.T, s es.Store) {
	id := streamID("span")
	a, b := eventsWithIDs(1), eventsWithIDs(1)
	mustAppend(t, s, id, es.NoStream, a)
	mustAppend(t, s, streamID("between"), es.NoStream, Events(1))
	mustAppend(t, s, id, es.Exactly(1), b)
	stored := readStream(t, s, id, nil)
	require.Len(t, stored, 2)

	for _, expected := range []es.ExpectedVersion{es.NoStream, es.Any} {
		res, err := s.Append(t.Context(), id, expected, concat(a, b))
		require.NoError(t, err, "expected version %s", expected)
		require.Equal(t, es.AppendResult{
			StreamID:      id,
			FirstVersion:  1,
			StreamVersion: 2,
			FirstPosition: stored[0].Position,
			LastPosition:  stored[1].Position,
		}, res, "expected version %s", expected)
	}
	requireStreamIDs(t, s, id, newIDsOf(concat(a, b)))
}
