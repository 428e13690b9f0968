package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
)

// TestWithTx: a store bound to a transaction appends, reads and deletes
// checkpoints in it (its reads see its own uncommitted appends, others do
// not), everything goes with a rollback, and it cannot subscribe.
func TestWithTx(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.Store(t)

	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	bound := s.WithTx(tx)
	res, err := bound.Append(ctx, "tx-1", es.NoStream, newEvents(2, "T"))
	require.NoError(t, err)
	require.EqualValues(t, 2, res.StreamVersion)

	var versions []int64
	for e, err := range bound.ReadStream(ctx, "tx-1", nil) {
		require.NoError(t, err)
		versions = append(versions, e.Version)
	}
	require.Equal(t, []int64{1, 2}, versions, "the transaction sees its own events")
	info, err := bound.StreamInfo(ctx, "tx-1")
	require.NoError(t, err)
	require.EqualValues(t, 2, info.Version)
	_, err = s.StreamInfo(ctx, "tx-1")
	require.ErrorIs(t, err, es.ErrNotFound, "others do not, before the commit")
	_, _, err = bound.Checkpoint(ctx, "sub-1")
	require.NoError(t, err)

	err = bound.Subscribe(ctx, "sub-1", func(context.Context, es.Event) error { return nil }, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	require.NoError(t, tx.Rollback(ctx))
	_, err = s.StreamInfo(ctx, "tx-1")
	require.ErrorIs(t, err, es.ErrNotFound, "rolled back")

	_, err = s.WithTx(nil).Append(ctx, "tx-2", es.Any, newEvents(1, "T"))
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	for _, err := range s.WithTx(nil).ReadStream(ctx, "tx-2", nil) {
		require.ErrorIs(t, err, es.ErrInvalidArgument)
	}
}
