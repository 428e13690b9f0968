package es_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

func TestReadAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, ok := es.ReadAfterPosition(ctx)
	require.False(t, ok)
	require.False(t, es.ReadsFromPrimary(ctx))

	first, second := es.NewPosition(7, 70), es.NewPosition(9, 90)
	ctx = es.ReadAfter(ctx, first)
	pos, ok := es.ReadAfterPosition(ctx)
	require.True(t, ok)
	require.Equal(t, first, pos)
	pos, _ = es.ReadAfterPosition(es.ReadAfter(ctx, second))
	require.Equal(t, second, pos, "a later ReadAfter replaces an earlier one")
	_, ok = es.ReadAfterPosition(es.ReadAfter(context.Background(), es.Position{}))
	require.False(t, ok, "the zero position asks for nothing")

	primary := es.ReadFromPrimary(ctx)
	require.True(t, es.ReadsFromPrimary(primary))
	pos, ok = es.ReadAfterPosition(primary)
	require.True(t, ok, "ReadFromPrimary keeps the ReadAfter position")
	require.Equal(t, first, pos)
}
