package es_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

func TestPositionOrderAndText(t *testing.T) {
	t.Parallel()
	a := es.NewPosition(10, 7)
	b := es.NewPosition(10, 8)
	c := es.NewPosition(11, 2) // a later transaction key sorts after, whatever its global position

	require.True(t, a.Before(b))
	require.True(t, b.Before(c))
	require.False(t, c.Before(a))
	require.Equal(t, 0, a.Compare(es.NewPosition(10, 7)))
	require.Equal(t, 1, c.Compare(b))
	require.True(t, es.Position{}.IsZero())
	require.True(t, es.Position{}.Before(a))
	require.False(t, a.IsZero())

	require.Equal(t, "10/7", a.String())
	for _, p := range []es.Position{{}, a, c, es.NewPosition(1<<63+5, 1<<62)} {
		q, err := es.ParsePosition(p.String())
		require.NoError(t, err)
		require.Equal(t, p, q)

		text, err := p.MarshalText()
		require.NoError(t, err)
		var r es.Position
		require.NoError(t, r.UnmarshalText(text))
		require.Equal(t, p, r)
	}
	for _, bad := range []string{"", "7", "a/1", "1/b", "1/-1", "-1/1", "1/2/3"} {
		_, err := es.ParsePosition(bad)
		require.ErrorIs(t, err, es.ErrInvalidArgument, "ParsePosition(%q)", bad)
	}
}

func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		e       es.ExpectedVersion
		sql     *int64
		str     string
		matches map[int64]bool
	}{
		{es.Any, nil, "any", map[int64]bool{0: true, 1: true, 5: true}},
		{es.NoStream, ptr(0), "no stream", map[int64]bool{0: true, 1: false}},
		{es.StreamExists, ptr(-1), "stream exists", map[int64]bool{0: false, 1: true, 9: true}},
		{es.Exactly(3), ptr(3), "3", map[int64]bool{0: false, 2: false, 3: true, 4: false}},
		{es.Exactly(0), ptr(0), "no stream", map[int64]bool{0: true, 1: false}},
	}
	for _, c := range cases {
		require.True(t, c.e.Valid(), c.str)
		require.Equal(t, c.sql, c.e.SQL(), c.str)
		require.Equal(t, c.str, c.e.String())
		require.Equal(t, c.e, es.ExpectedVersionFromSQL(c.e.SQL()), c.str)
		for actual, want := range c.matches {
			require.Equal(t, want, c.e.Matches(actual), "%s matches %d", c.str, actual)
		}
	}
	require.Equal(t, es.NoStream, es.Exactly(0))
	require.True(t, es.Any.IsAny())
	require.False(t, es.Exactly(-3).Valid())
	require.Equal(t, "invalid", es.Exactly(-3).String())
	require.Equal(t, es.ExpectedVersion{}, es.Any, "the zero value is Any")
}

func ptr(n int64) *int64 { return &n }

func TestVersionConflictError(t *testing.T) {
	t.Parallel()
	var err error = fmt.Errorf("saving: %w", &es.VersionConflictError{StreamID: "order-1", Expected: es.Exactly(2), Actual: 5})
	require.ErrorIs(t, err, es.ErrWrongVersion)
	require.NotErrorIs(t, err, es.ErrDuplicateEvent)
	var vc *es.VersionConflictError
	require.True(t, errors.As(err, &vc))
	require.Equal(t, int64(5), vc.Actual)
	require.Equal(t, es.Exactly(2), vc.Expected)
	require.Contains(t, err.Error(), `"order-1"`)
	require.Contains(t, err.Error(), "expected 2, actual 5")
}

func TestCategory(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]string{"order-42": "order", "order-42-x": "order", "order": "order", "-x": ""} {
		require.Equal(t, want, es.Category(id), id)
		require.Equal(t, want, es.Event{StreamID: id}.Category(), id)
	}
}
