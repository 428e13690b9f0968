package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// TestHostileLoginCannotDisrupt: a login with no es grants (it may only
// connect, as every login may) does everything it can against a running
// installation, and es carries on:
//   - it holds the advisory locks es used to coordinate with (the
//     notification coalescing key, every subscription's key) and a range
//     of others: notifications still arrive and a subscription still
//     starts, delivers and hands over;
//   - it cannot lock (or read) the rows that now coordinate them
//     (notify_token, subscription_leases), nor call the lease functions;
//   - it LISTENs on the channel: by default the payload carries no stream
//     id.
//
// (What it can do, and the README's guarantees section documents: open a
// transaction that takes an xid and keep it open, which holds every
// reader of the global log back until it ends; that is PostgreSQL's
// snapshot horizon, and readers wait, they never skip.)
func TestHostileLoginCannotDisrupt(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	ctx := testContext(t, 3*time.Minute)
	store, err := pgstore.New(b.pool, &pgstore.Config{Schema: b.schema, Subscriptions: pgstore.SubscriptionConfig{
		LeasePollInterval: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond}})
	require.NoError(t, err)

	attackerCfg := createLogin(t, ctx, b.pool, b.schema+"_attacker")
	attacker, err := pgx.ConnectConfig(ctx, attackerCfg)
	require.NoError(t, err)
	defer attacker.Close(context.Background())

	// Hold the advisory locks es would have used, and many more.
	sub := "hostile-sub"
	for _, key := range []string{b.schema + "_events", b.schema + "_subscription:" + sub, "es_events", "es_subscription:" + sub} {
		_, err := attacker.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", key)
		require.NoError(t, err, key)
	}
	_, err = attacker.Exec(ctx, "SELECT pg_advisory_lock(k) FROM generate_series(1, 1000) AS k")
	require.NoError(t, err)

	// The coordination rows and functions are out of its reach.
	for _, q := range []string{
		`SELECT FROM %[1]s.notify_token FOR UPDATE`,
		`SELECT FROM %[1]s.subscription_leases FOR UPDATE`,
		`SELECT %[1]s.acquire_lease('hostile-sub', 'attacker', '1 hour')`,
		`SELECT %[1]s.raise_key_base()`,
		`LOCK TABLE %[1]s.events`,
		`LOCK TABLE %[1]s.notify_token IN ACCESS SHARE MODE`,
	} {
		tx, err := attacker.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, fmt.Sprintf(q, b.schema))
		requirePgError(t, err, "42501", q)
		require.NoError(t, tx.Rollback(ctx))
	}
	_, err = b.pool.Exec(ctx, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", b.schema, pgx.Identifier{attackerCfg.User}.Sanitize()))
	require.NoError(t, err)
	for _, q := range []string{
		`SELECT FROM %[1]s.notify_token FOR UPDATE`,
		`SELECT %[1]s.acquire_lease('hostile-sub', 'attacker', '1 hour')`,
		`SELECT %[1]s.renew_lease('hostile-sub', 'attacker', '1 hour')`,
	} {
		_, err := attacker.Exec(ctx, fmt.Sprintf(q, b.schema))
		requirePgError(t, err, "42501", "with USAGE: "+q)
	}

	// It listens: wake-ups still come, without stream ids.
	_, err = attacker.Exec(ctx, "LISTEN "+pgx.Identifier{store.Channel()}.Sanitize())
	require.NoError(t, err)
	res, err := store.Append(ctx, "customer-4711", es.Any, someEvents(1))
	require.NoError(t, err)
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	n, err := attacker.WaitForNotification(wait)
	cancel()
	require.NoError(t, err, "appends notify while the old coalescing lock is held elsewhere")
	require.NotContains(t, n.Payload, "customer")
	var p map[string]string
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &p))
	require.Equal(t, map[string]string{"position": res.LastPosition.String()}, p)

	// A subscription starts, delivers, and a second instance takes over
	// when the first stops.
	delivered := make(chan es.Event, 100)
	runSub := func() (context.CancelFunc, <-chan error) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- store.Subscribe(ctx, sub, func(_ context.Context, e es.Event) error {
				delivered <- e
				return nil
			}, nil)
		}()
		return cancel, done
	}
	stop1, done1 := runSub()
	next := func(what string) es.Event {
		t.Helper()
		select {
		case e := <-delivered:
			return e
		case <-ctx.Done():
			require.FailNow(t, "timed out waiting for "+what)
		}
		return es.Event{}
	}
	require.Equal(t, "order-1", next("setupRoles's event").StreamID)
	require.Equal(t, res.LastPosition, next("the first event").Position)
	stop1()
	require.NoError(t, <-done1)
	saved, ok, err := store.Checkpoint(ctx, sub)
	require.NoError(t, err)
	require.True(t, ok, "the first instance saved its checkpoint when it stopped")
	require.Equal(t, res.LastPosition, saved)
	stop2, done2 := runSub()
	res2, err := store.Append(ctx, "customer-4711", es.Exactly(1), someEvents(1))
	require.NoError(t, err)
	require.Equal(t, res2.LastPosition, next("the second event, by the second instance").Position)
	stop2()
	require.NoError(t, <-done2)
}
