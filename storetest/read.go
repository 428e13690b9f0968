package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var readStreamTests = []test{
	{"EventFields", testReadStreamEventFields},
	{"Windows", testReadStreamWindows},
	{"AbsentStream", testReadStreamAbsent},
	{"EarlyBreak", testReadStreamEarlyBreak},
	{"AppendWhileReading", testReadStreamAppendWhileReading},
}

var streamInfoTests = []test{
	{"AfterAppends", testStreamInfoAfterAppends},
	{"Absent", testStreamInfoAbsent},
}

// seedStream appends five events to a fresh stream in two batches, with
// events of another stream in between, and returns the stream id and the
// appended events. Events 1, 3 and 5 are of type "A"; 2 and 4, of type "B"
// with metadata.
func seedStream(t *testing.T, s es.Store) (string, []es.NewEvent) {
	t.Helper()
	id, other := streamID("read"), streamID("other")
	events := eventsWithIDs(5)
	for i := range events {
		events[i].Type = "A"
		if i%2 == 1 {
			events[i].Type = "B"
			events[i].Metadata = msgpackMap("m", uint32(i))
		}
	}
	mustAppend(t, s, id, es.NoStream, events[:2])
	mustAppend(t, s, other, es.NoStream, Events(2))
	mustAppend(t, s, id, es.Exactly(2), events[2:])
	mustAppend(t, s, other, es.Exactly(2), Events(1))
	return id, events
}

// testReadStreamEventFields reads a stream whole and checks every field.
func testReadStreamEventFields(t *testing.T, s es.Store) {
	id, events := seedStream(t, s)
	for _, opts := range []*es.ReadStreamOpts{nil, {}} {
		got := readStream(t, s, id, opts)
		requireStored(t, events, got, id, 1)
		requirePositionsIncrease(t, got)
		for _, e := range got {
			require.Equal(t, "read", e.Category())
		}
		// The first batch shares a recording time no later than the
		// second's.
		require.False(t, got[2].RecordedAt.Before(got[0].RecordedAt))
	}
}

// testReadStreamWindows reads parts of a stream forwards and backwards.
func testReadStreamWindows(t *testing.T, s es.Store) {
	id, events := seedStream(t, s)
	all := newIDsOf(events)
	cases := []struct {
		opts es.ReadStreamOpts
		want []int64
	}{
		{es.ReadStreamOpts{}, span(1, 5)},
		{es.ReadStreamOpts{From: 1}, span(1, 5)},
		{es.ReadStreamOpts{From: -1}, span(1, 5)},
		{es.ReadStreamOpts{From: 3}, span(3, 5)},
		{es.ReadStreamOpts{From: 5}, span(5, 5)},
		{es.ReadStreamOpts{From: 6}, nil},
		{es.ReadStreamOpts{From: 100}, nil},
		{es.ReadStreamOpts{MaxCount: 2}, span(1, 2)},
		{es.ReadStreamOpts{MaxCount: 1}, span(1, 1)},
		{es.ReadStreamOpts{MaxCount: 5}, span(1, 5)},
		{es.ReadStreamOpts{MaxCount: 10}, span(1, 5)},
		{es.ReadStreamOpts{From: 2, MaxCount: 2}, span(2, 3)},
		{es.ReadStreamOpts{From: 4, MaxCount: 10}, span(4, 5)},
		{es.ReadStreamOpts{From: 6, MaxCount: 1}, nil},
		{es.ReadStreamOpts{Backwards: true}, span(5, 1)},
		{es.ReadStreamOpts{Backwards: true, From: 5}, span(5, 1)},
		{es.ReadStreamOpts{Backwards: true, From: 9}, span(5, 1)},
		{es.ReadStreamOpts{Backwards: true, From: 3}, span(3, 1)},
		{es.ReadStreamOpts{Backwards: true, From: 1}, span(1, 1)},
		{es.ReadStreamOpts{Backwards: true, MaxCount: 1}, span(5, 5)},
		{es.ReadStreamOpts{Backwards: true, From: 3, MaxCount: 2}, span(3, 2)},
		{es.ReadStreamOpts{Backwards: true, From: 2, MaxCount: 5}, span(2, 1)},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("from=%d,max=%d,backwards=%t", c.opts.From, c.opts.MaxCount, c.opts.Backwards), func(t *testing.T) {
			opts := c.opts
			got := readStream(t, s, id, &opts)
			require.Equal(t, c.want, nilIfEmpty(versionsOf(got)))
			for _, e := range got {
				require.Equal(t, all[e.Version-1], e.ID, "version %d", e.Version)
				require.Equal(t, id, e.StreamID)
			}
			require.Equal(t, c.opts, opts, "ReadStream must not change its options")
		})
	}
}

// nilIfEmpty returns nil for an empty slice, so that require.Equal treats
// "none" alike however it is built.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// testReadStreamAbsent reads a stream that does not exist.
func testReadStreamAbsent(t *testing.T, s es.Store) {
	seedStream(t, s)
	id := streamID("absent")
	for _, opts := range []*es.ReadStreamOpts{nil, {From: 1, MaxCount: 1}, {Backwards: true}, {Backwards: true, From: 3}} {
		require.Empty(t, readStream(t, s, id, opts))
	}
	require.Empty(t, readStream(t, s, "read", nil), "a category is not a stream")
}

// testReadStreamEarlyBreak stops iterations early, many times, and checks
// that the store still works (no leaked connection or lock).
func testReadStreamEarlyBreak(t *testing.T, s es.Store) {
	id, events := seedStream(t, s)
	for i := range 50 {
		n := 0
		for e, err := range s.ReadStream(t.Context(), id, &es.ReadStreamOpts{Backwards: i%2 == 1}) {
			require.NoError(t, err)
			require.NotEqual(t, int64(0), e.Version)
			n++
			if n == 2 {
				break
			}
		}
		require.Equal(t, 2, n)
	}
	mustAppend(t, s, id, es.Exactly(5), Events(1))
	requireVersion(t, s, id, 6)
	require.Equal(t, newIDsOf(events), idsOf(readStream(t, s, id, &es.ReadStreamOpts{MaxCount: 5})))
}

// testReadStreamAppendWhileReading appends to the stream being read from
// inside the loop: a store must not hold a lock that Append needs while it
// yields.
func testReadStreamAppendWhileReading(t *testing.T, s es.Store) {
	id, events := seedStream(t, s)
	var got []es.Event
	for e, err := range s.ReadStream(t.Context(), id, nil) {
		require.NoError(t, err)
		got = append(got, e)
		if len(got) <= 5 {
			mustAppend(t, s, id, es.Any, Events(1))
		}
	}
	// The events appended meanwhile may or may not be returned.
	require.GreaterOrEqual(t, len(got), 5)
	require.LessOrEqual(t, len(got), 10)
	require.Equal(t, span(1, int64(len(got))), versionsOf(got))
	require.Equal(t, newIDsOf(events), idsOf(got[:5]))
	requireVersion(t, s, id, 10)
}

// testStreamInfoAfterAppends checks version and times as a stream grows.
func testStreamInfoAfterAppends(t *testing.T, s es.Store) {
	id := streamID("info")
	mustAppend(t, s, id, es.NoStream, Events(2))
	first, err := s.StreamInfo(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, id, first.StreamID)
	require.Equal(t, int64(2), first.Version)
	require.False(t, first.CreatedAt.IsZero())
	require.False(t, first.UpdatedAt.Before(first.CreatedAt), "updated %v before created %v", first.UpdatedAt, first.CreatedAt)

	mustAppend(t, s, streamID("info"), es.NoStream, Events(1))
	mustAppend(t, s, id, es.Exactly(2), Events(3))
	second, err := s.StreamInfo(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, int64(5), second.Version)
	require.True(t, second.CreatedAt.Equal(first.CreatedAt), "created at changed: %v then %v", first.CreatedAt, second.CreatedAt)
	require.False(t, second.UpdatedAt.Before(first.UpdatedAt), "updated at went back: %v then %v", first.UpdatedAt, second.UpdatedAt)

	// A failed append changes nothing.
	_, err = s.Append(t.Context(), id, es.Exactly(2), Events(1))
	require.ErrorIs(t, err, es.ErrWrongVersion)
	third, err := s.StreamInfo(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, second.Version, third.Version)
	require.True(t, third.UpdatedAt.Equal(second.UpdatedAt))
}

// testStreamInfoAbsent asks about streams that do not exist.
func testStreamInfoAbsent(t *testing.T, s es.Store) {
	seedStream(t, s)
	for _, id := range []string{streamID("absent"), "read", plainStreamID()} {
		_, err := s.StreamInfo(t.Context(), id)
		require.ErrorIs(t, err, es.ErrNotFound, "stream %q", id)
		require.NotErrorIs(t, err, es.ErrInvalidArgument)
	}
}
