package integration_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// TestReplicaReads reads through pgstore.Config.Replicas from real
// streaming replicas whose replay is delayed (recovery_min_apply_delay):
//   - with es.ReadAfter, a read waits until the replica shows the write,
//     and is served there (the store's primary pool belongs to a login
//     that may read nothing: a read that went to the primary would fail);
//   - when the replica does not show it within ReplicaWait, the read goes
//     to the primary;
//   - Repository.Update loads from the primary (es.ReadFromPrimary);
//   - a position printed and parsed again works as well.
func TestReplicaReads(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)

	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	// A login without any es privilege: the "primary" of the store whose
	// reads must be served by the replica.
	_, err = conn.Exec(ctx, "CREATE ROLE no_reads LOGIN")
	require.NoError(t, err)
	lagging, err := primary.StartReplica(ctx, &pgtest.ClusterOptions{Settings: map[string]string{"recovery_min_apply_delay": "1s"}})
	require.NoError(t, err)
	removeAtCleanup(t, lagging)
	stuck, err := primary.StartReplica(ctx, &pgtest.ClusterOptions{Settings: map[string]string{"recovery_min_apply_delay": "1h"}})
	require.NoError(t, err)
	removeAtCleanup(t, stuck)

	_, writer := openStore(t, ctx, primary.ConnString("postgres"), nil)
	laggingPool, _ := openStore(t, ctx, lagging.ConnString("postgres"), nil)
	stuckPool, stuckDirect := openStore(t, ctx, stuck.ConnString("postgres"), nil)
	noReads, _ := openStore(t, ctx, primary.ConnString("postgres")+" user=no_reads", nil)
	primaryPool, _ := openStore(t, ctx, primary.ConnString("postgres"), nil)
	viaLagging, err := pgstore.New(noReads, &pgstore.Config{Replicas: []*pgxpool.Pool{laggingPool}, ReplicaWait: 3 * time.Minute})
	require.NoError(t, err)
	viaStuck, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{stuckPool}, ReplicaWait: 10 * time.Millisecond})
	require.NoError(t, err)

	t.Run("ReadAfterWaitsForTheReplica", func(t *testing.T) {
		res, err := writer.Append(ctx, "order-ryw", es.NoStream, []es.NewEvent{{Type: "Placed", Data: []byte{0x80}}})
		require.NoError(t, err)
		token, err := es.ParsePosition(res.LastPosition.String()) // as a web request carries it
		require.NoError(t, err)
		rctx := es.ReadAfter(ctx, token)

		info, err := viaLagging.StreamInfo(rctx, "order-ryw")
		require.NoError(t, err, "served by the replica once it shows the write")
		require.Equal(t, int64(1), info.Version)
		var read []es.Event
		for e, err := range viaLagging.ReadStream(rctx, "order-ryw", nil) {
			require.NoError(t, err)
			read = append(read, e)
		}
		require.Len(t, read, 1)
		require.Equal(t, res.LastPosition, read[0].Position)
		var loaded int
		for item, err := range viaLagging.Load(rctx, "order-ryw", 1) {
			require.NoError(t, err)
			require.Nil(t, item.Snapshot)
			loaded++
		}
		require.Equal(t, 1, loaded)
		found := false
		for e, err := range viaLagging.ReadAll(rctx, nil) {
			require.NoError(t, err)
			found = found || e.Position == res.LastPosition
		}
		require.True(t, found, "ReadAll shows the write")

		// Without ReadAfter the read goes to the replica at once, and the
		// primary is never asked (its login may read nothing).
		_, err = viaLagging.StreamInfo(ctx, "order-none")
		require.ErrorIs(t, err, es.ErrNotFound)
		// With ReadFromPrimary, to the primary: refused to this login.
		_, err = viaLagging.StreamInfo(es.ReadFromPrimary(ctx), "order-ryw")
		require.Error(t, err)
		require.NotErrorIs(t, err, es.ErrNotFound)
	})

	t.Run("FallsBackToThePrimary", func(t *testing.T) {
		res, err := writer.Append(ctx, "order-fallback", es.NoStream, []es.NewEvent{{Type: "Placed", Data: []byte{0x80}}})
		require.NoError(t, err)
		_, err = stuckDirect.StreamInfo(ctx, "order-fallback")
		require.ErrorIs(t, err, es.ErrNotFound, "the stuck replica does not show it (its replay waits an hour)")
		info, err := viaStuck.StreamInfo(es.ReadAfter(ctx, res.LastPosition), "order-fallback")
		require.NoError(t, err)
		require.Equal(t, int64(1), info.Version, "read from the primary after ReplicaWait")
	})

	t.Run("UpdateLoadsFromThePrimary", func(t *testing.T) {
		reg := es.NewRegistry()
		require.NoError(t, es.Register[replicaNoted](reg, "Noted"))
		repo, err := es.NewRepository(viaStuck, reg, func() *replicaCounter { return &replicaCounter{} },
			&es.RepositoryConfig{Category: "counter"})
		require.NoError(t, err)
		c := repo.New("r1")
		require.NoError(t, es.Record(c, replicaNoted{}))
		_, err = repo.Save(ctx, c)
		require.NoError(t, err)
		// The stuck replica has not got the stream: a load from it finds
		// nothing; Update loads from the primary, and saves version 2.
		updated, res, err := repo.Update(ctx, "r1", func(c *replicaCounter) error { return es.Record(c, replicaNoted{}) })
		require.NoError(t, err)
		require.Equal(t, int64(2), res.StreamVersion)
		require.Equal(t, 2, updated.n)
		_, err = repo.Load(ctx, "r1")
		require.ErrorIs(t, err, es.ErrNotFound, "a plain load reads the replica, which has not replayed it")
	})
}

// replicaNoted and replicaCounter are a minimal aggregate for
// TestReplicaReads.
type replicaNoted struct{}

type replicaCounter struct {
	es.AggregateBase
	n int
}

func (c *replicaCounter) Apply(any) error { c.n++; return nil }
