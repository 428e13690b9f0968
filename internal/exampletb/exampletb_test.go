package exampletb_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/exampletb"
)

func TestCleanupsRunNewestFirstAfterTheContextEnds(t *testing.T) {
	t.Parallel()
	tb, done := exampletb.New()
	var order []string
	tb.Cleanup(func() {
		order = append(order, "first")
		require.Error(t, tb.Context().Err(), "the context is cancelled before the cleanups run")
	})
	tb.Cleanup(func() { order = append(order, "second") })
	require.NoError(t, tb.Context().Err())
	require.False(t, tb.Failed())

	done()
	require.Equal(t, []string{"second", "first"}, order)
}

func TestErrorFailsTheExampleAtDone(t *testing.T) {
	t.Parallel()
	tb, done := exampletb.New()
	cleaned := false
	tb.Cleanup(func() { cleaned = true })
	tb.Errorf("want %d, got %d", 1, 2)
	require.True(t, tb.Failed())
	require.PanicsWithValue(t, "exampletb: the example failed: want 1, got 2", done)
	require.True(t, cleaned, "the cleanups run before done panics")
}

func TestFatalPanicsAndTheDeferredDoneCleansUp(t *testing.T) {
	t.Parallel()
	cleaned := false
	example := func() {
		tb, done := exampletb.New()
		defer done()
		tb.Cleanup(func() { cleaned = true })
		tb.Fatal("no database")
		t.Error("Fatal returned")
	}
	require.PanicsWithValue(t, "exampletb: the example failed: no database", example)
	require.True(t, cleaned)
}

func TestSkipPanics(t *testing.T) {
	t.Parallel()
	tb, done := exampletb.New()
	defer done()
	require.PanicsWithValue(t, "exampletb: an example cannot be skipped: no PostgreSQL", func() { tb.Skip("no PostgreSQL") })
	require.PanicsWithValue(t, "exampletb: an example cannot be skipped: no PostgreSQL 15", func() { tb.Skipf("no PostgreSQL %d", 15) })
	require.False(t, tb.Skipped())
}

func TestName(t *testing.T) {
	t.Parallel()
	tb, done := exampletb.New()
	defer done()
	require.Equal(t, "example", tb.Name())
}
