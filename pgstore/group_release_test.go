package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// TestGroupPartitionReleasedWhenNotOpened: a partition a member took
// (Take) but whose session never opened (it was handed back, or the member
// stopped, while Open was still connecting) is free for the other members
// at once, not only once its lease's TTL has lapsed.
func TestGroupPartitionReleasedWhenNotOpened(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	a := pgstore.NewGroupMember(store, "released", "a", 2)
	b := pgstore.NewGroupMember(store, "released", "b", 2)
	_, free, err := a.Join(ctx)
	require.NoError(t, err)
	require.Equal(t, []int{0, 1}, free)
	ok, err := a.Take(ctx, 0)
	require.NoError(t, err)
	require.True(t, ok)

	// Its Run is cancelled before Open has connected.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = a.Partition(0).Open(cancelled)
	require.ErrorIs(t, err, context.Canceled)

	members, free, err := b.Join(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, members)
	require.Equal(t, []int{0, 1}, free, "partition 0 is free once a's session failed to open")
	ok, err = b.Take(ctx, 0)
	require.NoError(t, err)
	require.True(t, ok)
}
