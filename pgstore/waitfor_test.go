package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/storetest"
)

// TestWaitForAcrossProcesses: a store with no instance of the subscription
// (another process, here another Store) waits on the saved checkpoint,
// which the transactional form commits with the read model: once WaitFor
// returns, the read model holds the write.
func TestWaitForAcrossProcesses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	_, err := pool.Exec(ctx, "CREATE TABLE "+schema+".read_model (event_id uuid PRIMARY KEY)")
	require.NoError(t, err)
	projector, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	writer, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)

	name := "across"
	sub := run(t, func(ctx context.Context) error {
		return projector.SubscribeTx(ctx, name, func(ctx context.Context, tx es.Tx, e es.Event) error {
			_, err := pgstore.PgxTx(tx).Exec(ctx, "INSERT INTO "+schema+".read_model VALUES ($1)", e.ID)
			return err
		}, fastOpts(es.SubscribeOpts{}))
	})
	require.Equal(t, es.SubscriptionStopped, writer.SubscriptionStatus(name).State, "the writer runs no instance")

	for i := range 50 {
		res, err := writer.Append(ctx, "across-1", es.Exactly(int64(i)), storetest.Events(1))
		require.NoError(t, err)
		require.NoError(t, writer.WaitFor(ctx, name, res.LastPosition), "append %d", i)
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".read_model").Scan(&n))
		require.Equal(t, i+1, n, "append %d: the read model holds it once WaitFor returns", i)
	}
	require.NoError(t, sub.stop(t))
}

// TestWaitForWakesTheSubscription: with notifications off and a poll an
// hour apart, the subscription would not read the new event for an hour;
// WaitFor asks it to read at once.
func TestWaitForWakesTheSubscription(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["es.notify"] = "off"
	quiet, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(quiet.Close)

	slow := pgstore.SubscriptionConfig{PollInterval: time.Hour}
	store, err := pgstore.New(pool, fastConfig(schema, slow))
	require.NoError(t, err)
	writer, err := pgstore.New(quiet, fastConfig(schema, slow))
	require.NoError(t, err)

	for _, filtered := range []bool{false, true} {
		name := "wake"
		opts := es.SubscribeOpts{}
		if filtered {
			name, opts.Categories = "wake-filtered", []string{"kept"}
		}
		c := newCollector()
		sub := run(t, func(ctx context.Context) error { return store.Subscribe(ctx, name, c.handle, fastOpts(opts)) })
		awaitLive(t, store, name)
		for i := range 3 {
			kept, err := writer.Append(ctx, "kept-"+name, es.Exactly(int64(i)), storetest.Events(1))
			require.NoError(t, err)
			require.NoError(t, store.WaitFor(ctx, name, kept.LastPosition))
			got, _ := c.snapshot()
			require.NotEmpty(t, got)
			require.Equal(t, kept.LastPosition, got[len(got)-1].Position, "handled once WaitFor returns")
			// An event the filter skips: handled once read past.
			other, err := writer.Append(ctx, "other-"+name, es.Exactly(int64(i)), storetest.Events(1))
			require.NoError(t, err)
			require.NoError(t, store.WaitFor(ctx, name, other.LastPosition))
			require.False(t, store.SubscriptionStatus(name).Handled.Before(other.LastPosition))
		}
		require.NoError(t, sub.stop(t))
	}
}

// awaitLive polls the status of name until it is live.
func awaitLive(t *testing.T, store *pgstore.Store, name string) {
	t.Helper()
	require.Eventually(t, func() bool { return store.SubscriptionStatus(name).State == es.SubscriptionLive },
		deliveryTimeout, 5*time.Millisecond, "subscription %q live", name)
}
