package storetest

import (
	"encoding/binary"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// EventType is the type of the events [Events] returns.
const EventType = "storetest.Event"

// Events returns n events ready to append, of type [EventType], with zero
// ids (the store fills them) and no metadata. Event i (from 0) has as data
// the msgpack map {"n": i}, so the events are distinct and their data is
// valid msgpack.
func Events(n int) []es.NewEvent {
	events := make([]es.NewEvent, n)
	for i := range events {
		events[i] = es.NewEvent{Type: EventType, Data: msgpackMap("n", uint32(i))}
	}
	return events
}

// msgpackMap encodes the msgpack map {key: n} (key shorter than 32 bytes).
func msgpackMap(key string, n uint32) []byte {
	b := []byte{0x81, 0xa0 | byte(len(key))}
	b = append(b, key...)
	b = append(b, 0xce)
	return binary.BigEndian.AppendUint32(b, n)
}

// withIDs gives each event a fresh UUIDv7 and returns events.
func withIDs(events []es.NewEvent) []es.NewEvent {
	for i := range events {
		events[i].ID = newID()
	}
	return events
}

// eventsWithIDs returns n events with explicit ids.
func eventsWithIDs(n int) []es.NewEvent { return withIDs(Events(n)) }

// newID returns a fresh UUIDv7.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// uniq returns a fresh string of 32 hex digits, without '-'.
func uniq() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// streamID returns a fresh stream id in category.
func streamID(category string) string { return category + "-" + uniq() }

// plainStreamID returns a fresh stream id without '-': its own category.
func plainStreamID() string { return "plain" + uniq() }

// mustAppend appends and fails the test on an error.
func mustAppend(t *testing.T, s es.Store, id string, expected es.ExpectedVersion, events []es.NewEvent) es.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), id, expected, events)
	require.NoError(t, err, "appending %d events to %q with expected version %s", len(events), id, expected)
	require.Equal(t, id, res.StreamID)
	require.Equal(t, int64(len(events))-1, res.StreamVersion-res.FirstVersion, "result %+v", res)
	return res
}

// collect gathers the events of seq until the first error.
func collect(seq iter.Seq2[es.Event, error]) ([]es.Event, error) {
	var events []es.Event
	for e, err := range seq {
		if err != nil {
			return events, err
		}
		events = append(events, e)
	}
	return events, nil
}

// readStream reads a stream and fails the test on an error.
func readStream(t *testing.T, s es.Store, id string, opts *es.ReadStreamOpts) []es.Event {
	t.Helper()
	events, err := collect(s.ReadStream(t.Context(), id, opts))
	require.NoError(t, err, "reading stream %q with %+v", id, opts)
	return events
}

// readAll reads the global log and fails the test on an error.
func readAll(t *testing.T, s es.Store, opts *es.ReadAllOpts) []es.Event {
	t.Helper()
	events, err := collect(s.ReadAll(t.Context(), opts))
	require.NoError(t, err, "reading all with %+v", opts)
	return events
}

// visibleTimeout bounds how long awaitVisible waits. It is generous: on a
// busy machine another test (of this suite, run in parallel, or of another
// package on the same cluster) may hold the read_all horizon back for a
// long while. A wait ends as soon as the event is visible.
const visibleTimeout = 5 * time.Minute

// awaitVisible waits until the event at pos is visible in the global log,
// and with it every event before it. A PostgreSQL store hides an event
// while a transaction that could precede it is still running anywhere in
// the cluster.
func awaitVisible(t *testing.T, s es.Store, pos es.Position) {
	t.Helper()
	require.False(t, pos.IsZero(), "awaitVisible: zero position")
	// Just before pos: nothing but pos itself can lie between.
	before := es.NewPosition(pos.TxKey(), pos.Global()-1)
	deadline := time.Now().Add(visibleTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		events := readAll(t, s, &es.ReadAllOpts{After: before, MaxCount: 1})
		if len(events) > 0 {
			require.Equal(t, pos, events[0].Position, "the first event after %s", before)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event at position %s not visible in ReadAll after %s", pos, visibleTimeout)
		}
		time.Sleep(wait)
	}
}

// idsOf returns the ids of stored events.
func idsOf(events []es.Event) []uuid.UUID {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// newIDsOf returns the ids of events to append.
func newIDsOf(events []es.NewEvent) []uuid.UUID {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}

// versionsOf returns the versions of events.
func versionsOf(events []es.Event) []int64 {
	vs := make([]int64, len(events))
	for i, e := range events {
		vs[i] = e.Version
	}
	return vs
}

// span returns the versions from..to, counting down when to < from.
func span(from, to int64) []int64 {
	var vs []int64
	step := int64(1)
	if to < from {
		step = -1
	}
	for v := from; ; v += step {
		vs = append(vs, v)
		if v == to {
			return vs
		}
	}
}

// concat returns the concatenation of slices, as a new slice.
func concat[T any](slices ...[]T) []T {
	var out []T
	for _, s := range slices {
		out = append(out, s...)
	}
	return out
}

// requireVersion checks a stream's version through StreamInfo and
// ReadStream; 0 means the stream must not exist.
func requireVersion(t *testing.T, s es.Store, id string, want int64) {
	t.Helper()
	info, err := s.StreamInfo(t.Context(), id)
	if want == 0 {
		require.ErrorIs(t, err, es.ErrNotFound, "stream %q should not exist", id)
	} else {
		require.NoError(t, err)
		require.Equal(t, want, info.Version, "version of %q", id)
		require.Equal(t, id, info.StreamID)
	}
	got := readStream(t, s, id, nil)
	require.Len(t, got, int(want), "events of %q", id)
	if want > 0 {
		require.Equal(t, span(1, want), versionsOf(got))
	}
}

// requireStreamIDs checks that the stream holds exactly the events with ids,
// in order.
func requireStreamIDs(t *testing.T, s es.Store, id string, ids []uuid.UUID) {
	t.Helper()
	requireVersion(t, s, id, int64(len(ids)))
	require.Equal(t, ids, idsOf(readStream(t, s, id, nil)), "events of %q", id)
}

// requireConflict checks that err is a version conflict with these details.
func requireConflict(t *testing.T, err error, id string, expected es.ExpectedVersion, actual int64) {
	t.Helper()
	require.ErrorIs(t, err, es.ErrWrongVersion)
	require.NotErrorIs(t, err, es.ErrDuplicateEvent)
	require.NotErrorIs(t, err, es.ErrInvalidArgument)
	var conflict *es.VersionConflictError
	require.True(t, errors.As(err, &conflict), "error %v (%T) is not a *es.VersionConflictError", err, err)
	require.Equal(t, id, conflict.StreamID, "conflict stream id")
	require.Equal(t, expected, conflict.Expected, "conflict expected version: got %s, want %s", conflict.Expected, expected)
	require.Equal(t, actual, conflict.Actual, "conflict actual version")
}

// requireDuplicate checks that err reports a duplicate event id, and
// nothing else.
func requireDuplicate(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, es.ErrDuplicateEvent)
	require.NotErrorIs(t, err, es.ErrWrongVersion)
	require.NotErrorIs(t, err, es.ErrInvalidArgument)
}

// requireInvalid checks that err reports an invalid argument, and nothing
// else.
func requireInvalid(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.NotErrorIs(t, err, es.ErrWrongVersion)
	require.NotErrorIs(t, err, es.ErrDuplicateEvent)
}

// requirePositionsIncrease checks that positions strictly increase along
// events.
func requirePositionsIncrease(t *testing.T, events []es.Event) {
	t.Helper()
	for i, e := range events {
		require.False(t, e.Position.IsZero(), "event %d (%s) has the zero position", i, e.ID)
		if i > 0 {
			require.Equal(t, 1, e.Position.Compare(events[i-1].Position),
				"position of event %d (%s) is not after the previous one (%s)", i, e.Position, events[i-1].Position)
		}
	}
}

// requireStored checks that got holds the events of want as stored in
// stream id from version first on.
func requireStored(t *testing.T, want []es.NewEvent, got []es.Event, id string, first int64) {
	t.Helper()
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		require.Equal(t, w.ID, g.ID, "event %d id", i)
		require.Equal(t, id, g.StreamID, "event %d stream id", i)
		require.Equal(t, first+int64(i), g.Version, "event %d version", i)
		require.Equal(t, w.Type, g.Type, "event %d type", i)
		require.Equal(t, max(w.SchemaVersion, 1), g.SchemaVersion, "event %d schema version", i)
		require.Equal(t, string(w.Data), string(g.Data), "event %d data", i)
		if w.Metadata == nil {
			require.Empty(t, g.Metadata, "event %d metadata", i)
		} else {
			require.Equal(t, w.Metadata, g.Metadata, "event %d metadata", i)
		}
		require.False(t, g.RecordedAt.IsZero(), "event %d recorded at", i)
		require.False(t, g.Position.IsZero(), "event %d position", i)
	}
}

// requireIDs checks that got holds the ids of want in the same order, and
// reports a difference briefly: long lists of UUIDs are unreadable.
func requireIDs(t *testing.T, want, got []uuid.UUID, what string) {
	t.Helper()
	if slices.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	at := func(ids []uuid.UUID) string {
		if i < len(ids) {
			return ids[i].String()
		}
		return "(end)"
	}
	inGot := make(map[uuid.UUID]bool, len(got))
	for _, id := range got {
		inGot[id] = true
	}
	var missing []string
	for _, id := range want {
		if !inGot[id] && len(missing) < 5 {
			missing = append(missing, id.String())
		}
	}
	t.Fatalf("%s: got %d ids, want %d; first difference at index %d: got %s, want %s; missing (up to 5): %v",
		what, len(got), len(want), i, at(got), at(want), missing)
}
