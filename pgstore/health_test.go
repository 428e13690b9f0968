package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/internal/syncbuf"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/storekit"
	"github.com/pgevent/es/storetest"
)

var errRollback = errors.New("roll back")

// awaitSQLHealth polls subscription_health(name, stall) until it says want.
func awaitSQLHealth(t *testing.T, ctx context.Context, store *pgstore.Store, schema, name, stall, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got string
		err := store.Pool().QueryRow(ctx, "SELECT health FROM "+schema+".subscription_health($1, $2::interval)", name, stall).Scan(&got)
		return err == nil && got == want
	}, deliveryTimeout, 10*time.Millisecond, "subscription %q %s", name, want)
}

// TestHealthStalled: a handler stuck on an event, seen with a stall bound
// of zero, is stalled; with the default minute it is catching up.
func TestHealthStalled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = store.Append(ctx, "stuck-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	entered := make(chan struct{})
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "stuck", func(ctx context.Context, e es.Event) error {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		}, fastOpts(es.SubscribeOpts{}))
	})
	<-entered
	awaitSQLHealth(t, ctx, store, schema, "stuck", "1 minute", "catching up")
	awaitSQLHealth(t, ctx, store, schema, "stuck", "0", "stalled")
	h, err := store.SubscriptionHealth(ctx, "stuck")
	require.NoError(t, err)
	require.Equal(t, es.HealthCatchingUp, h.Health)
	require.Equal(t, int64(1), h.EventsBehind)
	require.NoError(t, sub.stop(t))
}

// TestHealthHeldBack: an event committed after an older transaction began
// writing is hidden from the live subscription until that transaction
// ends; HorizonHolders names it.
func TestHealthHeldBack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	c := newCollector()
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "held", c.handle, fastOpts(es.SubscribeOpts{}))
	})
	awaitLive(t, store, "held")

	holder, err := pgx.Connect(ctx, pgtest.ConnString(t))
	require.NoError(t, err)
	t.Cleanup(func() { holder.Close(context.Background()) })
	_, err = holder.Exec(ctx, "SET application_name = 'holding the horizon'")
	require.NoError(t, err)
	tx, err := holder.Begin(ctx)
	require.NoError(t, err)
	var pid int
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = tx.Exec(ctx, "SELECT "+schema+".append_event('held-1', 'Noted', '\\x80')")
	require.NoError(t, err)

	res, err := store.Append(ctx, "held-2", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	deadline := time.Now().Add(deliveryTimeout)
	for {
		h, err := store.SubscriptionHealth(ctx, "held")
		require.NoError(t, err)
		if h.HiddenEvents >= 1 {
			require.Equal(t, es.HealthLive, h.Health, "it has handled every event it can read")
			require.GreaterOrEqual(t, h.EventsBehind, h.HiddenEvents)
			break
		}
		require.True(t, time.Now().Before(deadline), "no hidden event: %+v", h)
		time.Sleep(10 * time.Millisecond)
	}
	holders, err := store.HorizonHolders(ctx)
	require.NoError(t, err)
	i := slices.IndexFunc(holders, func(h pgstore.HorizonHolder) bool { return h.PID == pid })
	require.GreaterOrEqual(t, i, 0, "HorizonHolders names the open transaction: %+v", holders)
	require.Equal(t, "holding the horizon", holders[i].ApplicationName)
	require.Equal(t, "idle in transaction", holders[i].State)
	require.NotZero(t, holders[i].XID)
	require.False(t, holders[i].XactStart.IsZero())

	require.NoError(t, tx.Rollback(ctx))
	require.NoError(t, store.WaitFor(ctx, "held", res.LastPosition))
	require.NoError(t, sub.stop(t))
}

// TestSubscriptionsView lists every subscription with a checkpoint, a
// status or a lease.
func TestSubscriptionsView(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	res, err := store.Append(ctx, "view-1", es.NoStream, storetest.Events(2))
	require.NoError(t, err)
	c := newCollector()
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "running", c.handle, fastOpts(es.SubscribeOpts{}))
	})
	require.NoError(t, store.WaitFor(ctx, "running", res.LastPosition))
	require.NoError(t, store.ResetCheckpoint(ctx, "resting", es.Position{}))

	deadline := time.Now().Add(deliveryTimeout)
	for {
		hs, err := store.Subscriptions(ctx)
		require.NoError(t, err)
		require.Len(t, hs, 2)
		require.Equal(t, "resting", hs[0].Name)
		require.Equal(t, es.HealthIdle, hs[0].Health)
		require.Equal(t, int64(2), hs[0].EventsBehind)
		require.Equal(t, "running", hs[1].Name)
		if hs[1].Health == es.HealthLive && hs[1].Checkpoint == res.LastPosition {
			break
		}
		require.True(t, time.Now().Before(deadline), "running: %+v", hs[1])
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, sub.stop(t))
}

// TestResetCheckpointInTransaction: a reset commits or rolls back with the
// caller's transaction (e.g. with truncating the read model).
func TestResetCheckpointInTransaction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "CREATE TABLE "+schema+".model (n int)")
	require.NoError(t, err)
	res, err := store.Append(ctx, "reset-1", es.NoStream, storetest.Events(2))
	require.NoError(t, err)
	require.NoError(t, store.ResetCheckpoint(ctx, "model", res.LastPosition))

	for _, commit := range []bool{false, true} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "TRUNCATE "+schema+".model"); err != nil {
				return err
			}
			if err := store.WithTx(tx).ResetCheckpoint(ctx, "model", es.Position{}); err != nil {
				return err
			}
			if !commit {
				return errRollback
			}
			return nil
		})
		if commit {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, errRollback)
		}
		pos, ok, err := store.Checkpoint(ctx, "model")
		require.NoError(t, err)
		require.True(t, ok)
		if commit {
			require.True(t, pos.IsZero(), "committed with the transaction")
		} else {
			require.Equal(t, res.LastPosition, pos, "rolled back with the transaction")
		}
	}
}

// TestHealthRateWhileCatchingUp: a subscription that catches up reports
// its rate; subscription_health shows it with the time left.
func TestHealthRateWhileCatchingUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	var last es.AppendResult
	for i := range 20 {
		last, err = store.Append(ctx, "rate-1", es.Exactly(int64(i*25)), storetest.Events(25))
		require.NoError(t, err)
	}
	release := make(chan struct{})
	sub := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "rate", func(ctx context.Context, e es.Event) error {
			select {
			case <-release: // the test has seen the rate: run freely
			default:
				time.Sleep(time.Millisecond)
			}
			return nil
		}, fastOpts(es.SubscribeOpts{BatchSize: 10, ProgressInterval: 5 * time.Millisecond}))
	})
	deadline := time.Now().Add(deliveryTimeout)
	for {
		var (
			health string
			rate   *float64
			eta    *time.Duration
		)
		require.NoError(t, pool.QueryRow(ctx, "SELECT health, rate, eta FROM "+schema+".subscription_health('rate')").Scan(&health, &rate, &eta))
		// (While an older transaction elsewhere hides part of the backlog,
		// the subscription may be live with a rate reported.)
		if rate != nil && health == "catching up" {
			require.Positive(t, *rate)
			require.NotNil(t, eta)
			require.Positive(t, *eta)
			break
		}
		require.True(t, time.Now().Before(deadline), "no rate reported (health %s)", health)
		time.Sleep(5 * time.Millisecond)
	}
	h, err := store.SubscriptionHealth(ctx, "rate")
	require.NoError(t, err)
	close(release)
	require.NoError(t, store.WaitFor(ctx, "rate", last.LastPosition))
	if h.Health == es.HealthCatchingUp && h.Rate > 0 {
		require.Positive(t, h.Remaining())
	}
	// Caught up: no rate any more.
	deadline = time.Now().Add(deliveryTimeout)
	for {
		h, err := store.SubscriptionHealth(ctx, "rate")
		require.NoError(t, err)
		if h.Health == es.HealthLive && h.Rate == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "still %+v", h)
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, sub.stop(t))
}

// TestLoggerLeaseWait: the store's logger hears an instance wait for the
// lease another instance holds, and take over when it stops.
func TestLoggerLeaseWait(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.NewSchema(t)
	var buf syncbuf.Buffer
	cfg := fastConfig(schema)
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := pgstore.New(pool, cfg)
	require.NoError(t, err)
	first := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "logged", func(context.Context, es.Event) error { return nil }, nil)
	})
	awaitLive(t, store, "logged")
	second := run(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "logged", func(context.Context, es.Event) error { return nil }, nil)
	})
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "waiting for its lease") },
		deliveryTimeout, 5*time.Millisecond, "a lease wait logged")
	require.NoError(t, first.stop(t))
	require.Eventually(t, func() bool { return strings.Count(buf.String(), "msg=\"subscription active\"") >= 2 },
		deliveryTimeout, 5*time.Millisecond, "the second instance takes over")
	require.NoError(t, second.stop(t))
	require.Contains(t, buf.String(), "subscription=logged")
}

// TestStallBoundSameInSQLAndGo: memstore's health rule (storekit.StallAfter)
// and subscription_health's default p_stall say the same.
func TestStallBoundSameInSQLAndGo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	pool, schema := pgtest.NewSchema(t)
	var seconds float64
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT extract(epoch FROM (regexp_match(pg_get_function_arguments('%s.subscription_health'::regproc),
		                                         'DEFAULT ''([^'']*)''::interval'))[1]::interval)`, schema)).Scan(&seconds))
	require.Equal(t, storekit.StallAfter, time.Duration(seconds*float64(time.Second)))
}
