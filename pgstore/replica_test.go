package pgstore_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

// TestReplicaConfig checks Config.Replicas and ReplicaWait: bad values
// are refused; a replica that is the primary itself serves reads (the
// routing is tested against real standbys in integration_test).
func TestReplicaConfig(t *testing.T) {
	t.Parallel()
	pool := pgstoretest.Pool(t, nil)
	_, err := pgstore.New(pool, &pgstore.Config{ReplicaWait: -time.Second})
	require.ErrorContains(t, err, "ReplicaWait")
	_, err = pgstore.New(pool, &pgstore.Config{Replicas: []*pgxpool.Pool{nil}})
	require.ErrorContains(t, err, "Replicas[0]")
	store, err := pgstore.New(pool, &pgstore.Config{Replicas: []*pgxpool.Pool{pool}})
	require.NoError(t, err)
	_, err = store.StreamInfo(t.Context(), "order-none")
	require.Error(t, err)
}
