package memstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) es.Store { return memstore.New(nil) })
}

func TestPositions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memstore.New(&memstore.Config{})

	// One transaction key per append, one global position per event, and
	// failed appends take neither.
	r1, err := s.Append(ctx, "a-1", es.NoStream, storetest.Events(2))
	require.NoError(t, err)
	_, err = s.Append(ctx, "a-1", es.NoStream, storetest.Events(1))
	require.ErrorIs(t, err, es.ErrWrongVersion)
	r2, err := s.Append(ctx, "b-1", es.Any, storetest.Events(3))
	require.NoError(t, err)

	require.Equal(t, es.NewPosition(1, 1), r1.FirstPosition)
	require.Equal(t, es.NewPosition(1, 2), r1.LastPosition)
	require.Equal(t, es.NewPosition(2, 3), r2.FirstPosition)
	require.Equal(t, es.NewPosition(2, 5), r2.LastPosition)
}

func TestConfigNow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC)
	s := memstore.New(&memstore.Config{Now: func() time.Time { return now }})

	_, err := s.Append(ctx, "a-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	now = now.Add(time.Hour)
	_, err = s.Append(ctx, "a-1", es.Exactly(1), storetest.Events(1))
	require.NoError(t, err)

	info, err := s.StreamInfo(ctx, "a-1")
	require.NoError(t, err)
	// Microseconds, as PostgreSQL keeps them.
	require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC), info.CreatedAt)
	require.Equal(t, time.Date(2025, 1, 2, 4, 4, 5, 6000, time.UTC), info.UpdatedAt)
	var recorded []time.Time
	for e, err := range s.ReadStream(ctx, "a-1", nil) {
		require.NoError(t, err)
		recorded = append(recorded, e.RecordedAt)
	}
	require.Equal(t, []time.Time{info.CreatedAt, info.UpdatedAt}, recorded)
}

func TestReturnedSlicesAreCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memstore.New(nil)
	events := []es.NewEvent{{Type: "T", Data: []byte{1, 2, 3}, Metadata: []byte{0x80}}}
	_, err := s.Append(ctx, "a-1", es.NoStream, events)
	require.NoError(t, err)
	events[0].Data[0] = 9
	events[0].Metadata[0] = 9

	read := func() es.Event {
		for e, err := range s.ReadStream(ctx, "a-1", nil) {
			require.NoError(t, err)
			return e
		}
		t.Fatal("no event")
		return es.Event{}
	}
	e := read()
	require.Equal(t, []byte{1, 2, 3}, e.Data)
	require.Equal(t, []byte{0x80}, e.Metadata)
	e.Data[0] = 7
	e.Metadata = append(e.Metadata[:0], 7)

	for e, err := range s.ReadAll(ctx, nil) {
		require.NoError(t, err)
		require.Equal(t, []byte{1, 2, 3}, e.Data)
		require.Equal(t, []byte{0x80}, e.Metadata)
		e.Data[1] = 7
	}
	e = read()
	require.Equal(t, []byte{1, 2, 3}, e.Data)
	require.Equal(t, []byte{0x80}, e.Metadata)
}

func TestReadAllOptionsAreCopied(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memstore.New(nil)
	_, err := s.Append(ctx, "a-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	_, err = s.Append(ctx, "b-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)

	opts := &es.ReadAllOpts{Categories: []string{"a"}}
	seq := s.ReadAll(ctx, opts)
	opts.Categories[0] = "b"
	opts.MaxCount = -1
	var got []string
	for e, err := range seq {
		require.NoError(t, err)
		got = append(got, e.StreamID)
	}
	require.Equal(t, []string{"a-1"}, got)
}

func TestDuplicateErrorNamesIDAndStream(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memstore.New(nil)
	res, err := s.Append(ctx, "a-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	var stored es.Event
	for e, err := range s.ReadStream(ctx, "a-1", nil) {
		require.NoError(t, err)
		stored = e
	}
	require.Equal(t, res.FirstPosition, stored.Position)

	_, err = s.Append(ctx, "b-1", es.Any, []es.NewEvent{{ID: stored.ID, Type: "T"}})
	require.ErrorIs(t, err, es.ErrDuplicateEvent)
	require.ErrorContains(t, err, stored.ID.String())
	require.ErrorContains(t, err, `"a-1"`)
	require.ErrorContains(t, err, `"b-1"`)
}
