package storetest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var validationTests = []test{
	{"BadAppends", testBadAppends},
	{"LongestStreamID", testLongestStreamID},
	{"BadReads", testBadReads},
}

// badStreamIDs are stream ids that no store accepts.
func badStreamIDs() map[string]string {
	return map[string]string{
		"Empty":       "",
		"TooLong":     "long-" + strings.Repeat("x", es.MaxStreamIDLength-4),
		"NUL":         "nul-\x00" + uniq(),
		"InvalidUTF8": "utf8-\xff" + uniq(),
	}
}

// testBadAppends appends input that can never succeed, to an absent and to
// an existing stream.
func testBadAppends(t *testing.T, s es.Store) {
	existing := streamID("valid")
	seed := mustAppend(t, s, existing, es.NoStream, Events(1))
	absent := streamID("valid")

	withType := func(i int, typ string) []es.NewEvent {
		events := Events(2)
		events[i].Type = typ
		return events
	}
	twice := eventsWithIDs(2)
	twice[1].ID = twice[0].ID

	type badAppend struct {
		name     string
		ids      []string
		expected es.ExpectedVersion
		events   []es.NewEvent
	}
	both := []string{absent, existing}
	cases := []badAppend{
		{"EmptyBatch", both, es.Any, []es.NewEvent{}},
		{"NilBatch", both, es.Any, nil},
		{"EmptyTypeFirst", both, es.Any, withType(0, "")},
		{"EmptyTypeLast", both, es.Any, withType(1, "")},
		{"NULInType", both, es.Any, withType(1, "bad\x00type")},
		{"InvalidUTF8Type", both, es.Any, withType(0, "bad\xfftype")},
		{"ExpectedVersionMinus3", both, es.Exactly(-3), Events(1)},
		{"IDTwice", both, es.Any, twice},
	}
	for name, id := range badStreamIDs() {
		cases = append(cases, badAppend{"StreamID" + name, []string{id}, es.Any, Events(1)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, id := range c.ids {
				res, err := s.Append(t.Context(), id, c.expected, c.events)
				requireInvalid(t, err)
				require.Equal(t, es.AppendResult{}, res)
			}
			requireVersion(t, s, absent, 0)
			requireVersion(t, s, existing, 1)
		})
	}

	// Nothing reached the global log: it holds the seed and the sentinel.
	sentinel := mustAppend(t, s, streamID("sentinel"), es.NoStream, Events(1))
	awaitVisible(t, s, sentinel.LastPosition)
	all := readAll(t, s, nil)
	require.Len(t, all, 2)
	require.Equal(t, seed.FirstPosition, all[0].Position)
	require.Equal(t, sentinel.FirstPosition, all[1].Position)
}

// testLongestStreamID appends to a stream id of the longest length.
func testLongestStreamID(t *testing.T, s es.Store) {
	id := "long-" + uniq()
	id += strings.Repeat("x", es.MaxStreamIDLength-len(id))
	require.Len(t, id, es.MaxStreamIDLength)
	mustAppend(t, s, id, es.NoStream, Events(2))
	requireVersion(t, s, id, 2)
	for _, e := range readStream(t, s, id, &es.ReadStreamOpts{Backwards: true}) {
		require.Equal(t, id, e.StreamID)
	}
	// Multi-byte characters count in bytes: 1000 bytes are fine.
	multi := "multi-" + uniq()
	multi += strings.Repeat("é", (es.MaxStreamIDLength-len(multi))/2)
	multi += strings.Repeat("y", es.MaxStreamIDLength-len(multi))
	mustAppend(t, s, multi, es.NoStream, Events(1))
	requireVersion(t, s, multi, 1)
	_, err := s.Append(t.Context(), multi+"é", es.Any, Events(1))
	requireInvalid(t, err)
}

// testBadReads reads with invalid stream ids and options.
func testBadReads(t *testing.T, s es.Store) {
	id := streamID("reads")
	mustAppend(t, s, id, es.NoStream, Events(3))
	for name, bad := range badStreamIDs() {
		_, err := collect(s.ReadStream(t.Context(), bad, nil))
		requireInvalid(t, err)
		_, err = s.StreamInfo(t.Context(), bad)
		requireInvalid(t, err)
		require.NotErrorIs(t, err, es.ErrNotFound, name)
	}
	for _, opts := range []*es.ReadStreamOpts{
		{MaxCount: -1},
		{MaxCount: -1, Backwards: true},
		{From: 2, MaxCount: -5},
	} {
		got, err := collect(s.ReadStream(t.Context(), id, opts))
		requireInvalid(t, err)
		require.Empty(t, got)
	}
	got, err := collect(s.ReadAll(t.Context(), &es.ReadAllOpts{MaxCount: -1}))
	requireInvalid(t, err)
	require.Empty(t, got)
}
