package integration_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// TestReplicaSubscriptions runs subscriptions that read the log from real
// streaming replicas (pgstore.SubscriptionConfig.ReadReplicas) while their
// lease, notifications and checkpoints are on the primary:
//   - under a write load, the plain and the transactional form, and a
//     consumer group, handle every event exactly once, in each stream's
//     order, reading only the replica (the store's primary login may not
//     call read_partitions: a read that went to the primary would stop the
//     subscription);
//   - with the replica restarted mid-stream, the subscription reads the
//     primary while it is down and the replica again once it is back,
//     nothing skipped nor repeated;
//   - the replica's lag shows in the subscription's health while its
//     replay is delayed, and falls to zero once it has replayed.
func TestReplicaSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 6*time.Minute)

	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	// A login with everything a subscription does on the primary but
	// reading the log: every function es_writer may run but read_partitions.
	_, err = conn.Exec(ctx, `CREATE ROLE sub_no_log_reads LOGIN;
		GRANT USAGE ON SCHEMA es TO sub_no_log_reads;
		GRANT SELECT ON ALL TABLES IN SCHEMA es TO sub_no_log_reads;
		DO $$
		DECLARE f regprocedure;
		BEGIN
			FOR f IN SELECT p.oid::regprocedure FROM pg_proc AS p
			          WHERE p.pronamespace = 'es'::regnamespace AND p.proname <> 'read_partitions'
			            AND has_function_privilege('es_writer', p.oid, 'EXECUTE') LOOP
				EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO sub_no_log_reads', f);
			END LOOP;
		END $$`)
	require.NoError(t, err)

	replica, err := primary.StartReplica(ctx, nil)
	require.NoError(t, err)
	removeAtCleanup(t, replica)
	delayed, err := primary.StartReplica(ctx, &pgtest.ClusterOptions{Settings: map[string]string{"recovery_min_apply_delay": "3s"}})
	require.NoError(t, err)
	removeAtCleanup(t, delayed)

	_, writer := openStore(t, ctx, primary.ConnString("postgres"), nil)
	replicaPool, _ := openStore(t, ctx, replica.ConnString("postgres"), nil)
	delayedPool, _ := openStore(t, ctx, delayed.ConnString("postgres"), nil)
	noLogReads, _ := openStore(t, ctx, primary.ConnString("postgres")+" user=sub_no_log_reads", nil)
	primaryPool, _ := openStore(t, ctx, primary.ConnString("postgres"), nil)
	subs := pgstore.SubscriptionConfig{ReadReplicas: true, ReconnectBackoff: 50 * time.Millisecond, ReconnectBackoffMax: 500 * time.Millisecond}

	t.Run("EveryEventOnceUnderLoad", func(t *testing.T) {
		ctx := testContext(t, 4*time.Minute)
		store, err := pgstore.New(noLogReads, &pgstore.Config{Replicas: []*pgxpool.Pool{replicaPool}, Subscriptions: subs})
		require.NoError(t, err)
		_, err = pgstore.New(noLogReads, &pgstore.Config{Subscriptions: subs})
		require.Error(t, err, "ReadReplicas without Replicas")

		plain, tx := new(handledLog), new(handledLog)
		load := &es.SubscribeOpts{Categories: []string{"load"}}
		plainSub := runSubscription(t, func(ctx context.Context) error {
			return store.Subscribe(ctx, "replica-plain", plain.handle, load)
		})
		txSub := runSubscription(t, func(ctx context.Context) error {
			return store.SubscribeTx(ctx, "replica-tx", func(ctx context.Context, _ es.Tx, e es.Event) error { return tx.handle(ctx, e) }, load)
		})
		appended, last := appendLoad(t, ctx, writer, "load", 4, 150, nil)
		require.NoError(t, store.WaitFor(ctx, "replica-plain", last))
		require.NoError(t, store.WaitFor(ctx, "replica-tx", last))
		plain.requireExactly(t, appended)
		tx.requireExactly(t, appended)

		h, err := store.SubscriptionHealth(ctx, "replica-plain")
		require.NoError(t, err)
		require.Equal(t, poolAddress(replicaPool), h.ReadsFrom, "the instance reports the replica it reads")
		plainSub.stop(t, ctx)
		txSub.stop(t, ctx)
	})

	t.Run("ConsumerGroup", func(t *testing.T) {
		ctx := testContext(t, 4*time.Minute)
		store, err := pgstore.New(noLogReads, &pgstore.Config{Replicas: []*pgxpool.Pool{replicaPool}, Subscriptions: subs})
		require.NoError(t, err)
		// Two members of a group of 3 partitions, reading the standby.
		got := new(handledLog)
		opts := &es.SubscribeOpts{Categories: []string{"group"}, Partitions: 3}
		var members []*subscription
		for range 2 {
			members = append(members, runSubscription(t, func(ctx context.Context) error {
				return store.Subscribe(ctx, "replica-group", got.handle, opts)
			}))
		}
		appended, _ := appendLoad(t, ctx, writer, "group", 4, 100, nil)
		// WaitFor waits for one partition (the stream's): wait for all.
		waitFor(t, ctx, "every event handled", func() bool { return got.count() >= len(appended) })
		got.requireExactly(t, appended)
		for _, m := range members {
			m.stop(t, ctx)
		}
	})

	t.Run("ReplicaRestarted", func(t *testing.T) {
		ctx := testContext(t, 4*time.Minute)
		store, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{replicaPool}, Subscriptions: subs})
		require.NoError(t, err)
		got := new(handledLog)
		sub := runSubscription(t, func(ctx context.Context) error {
			return store.Subscribe(ctx, "replica-restart", got.handle, &es.SubscribeOpts{Categories: []string{"restart"}})
		})
		readsFrom := func(want string) func() bool {
			return func() bool {
				h, err := store.SubscriptionHealth(ctx, "replica-restart")
				require.NoError(t, err)
				return h.ReadsFrom == want
			}
		}
		waitFor(t, ctx, "the subscription reads the replica", readsFrom(poolAddress(replicaPool)))

		// Writers append throughout; the replica stops while they do, and
		// starts again.
		stop := make(chan struct{})
		var (
			load []uuid.UUID
			last es.Position
		)
		loaded := make(chan struct{})
		go func() {
			defer close(loaded)
			load, last = appendLoad(t, ctx, writer, "restart", 3, 100000, stop)
		}()
		waitFor(t, ctx, "events handled from the replica", func() bool { return got.count() >= 50 })
		require.NoError(t, replica.Stop())
		before := got.count()
		waitFor(t, ctx, "the subscription reads the primary", readsFrom("primary"))
		waitFor(t, ctx, "events handled while the replica is down", func() bool { return got.count() >= before+50 })
		require.NoError(t, replica.Start())
		waitFor(t, ctx, "the subscription reads the replica again", readsFrom(poolAddress(replicaPool)))
		before = got.count()
		waitFor(t, ctx, "events handled from the restarted replica", func() bool { return got.count() >= before+50 })
		close(stop)
		<-loaded
		require.NoError(t, store.WaitFor(ctx, "replica-restart", last))
		got.requireExactly(t, load)
		sub.stop(t, ctx)
	})

	t.Run("LagInHealth", func(t *testing.T) {
		ctx := testContext(t, 4*time.Minute)
		store, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{delayedPool}, Subscriptions: subs})
		require.NoError(t, err)
		got := new(handledLog)
		sub := runSubscription(t, func(ctx context.Context) error {
			return store.Subscribe(ctx, "replica-lag", got.handle, &es.SubscribeOpts{Start: es.StartFromEnd, Categories: []string{"lag"}})
		})
		health := func() es.SubscriptionHealth {
			h, err := store.SubscriptionHealth(ctx, "replica-lag")
			require.NoError(t, err)
			return h
		}
		waitFor(t, ctx, "the subscription reads the delayed replica", func() bool { return health().ReadsFrom == poolAddress(delayedPool) })

		events, ids := newEvents("Noted", 1)
		res, err := writer.Append(ctx, "lag-1", es.NoStream, events)
		require.NoError(t, err)
		// The replica replays the append 3 s after its commit: meanwhile
		// the instance measures a lag and reports it.
		var lagging es.SubscriptionHealth
		waitFor(t, ctx, "the replica's lag shows", func() bool { lagging = health(); return lagging.ReplicaLag > 0 })
		require.Equal(t, poolAddress(delayedPool), lagging.ReadsFrom)
		require.NoError(t, store.WaitFor(ctx, "replica-lag", res.LastPosition))
		got.requireExactly(t, ids)
		waitFor(t, ctx, "the lag is gone once replayed", func() bool {
			h := health()
			return h.ReplicaLag == 0 && h.Health == es.HealthLive
		})
		sub.stop(t, ctx)
	})
}

// appendLoad appends from writers goroutines to streams of their own (5
// each, in the category prefix), one to three events per append, until
// each made appends appends or stop is closed, and returns the ids of the
// events appended and the position of the last.
func appendLoad(t *testing.T, ctx context.Context, store *pgstore.Store, prefix string, writers, appends int, stop <-chan struct{}) ([]uuid.UUID, es.Position) {
	var (
		mu   sync.Mutex
		ids  []uuid.UUID
		last es.Position
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			versions := make([]int64, 5)
			for i := range appends {
				select {
				case <-stop:
					return
				default:
				}
				s := i % 5
				stream := fmt.Sprintf("%s-%d_%d", prefix, w, s)
				events, eventIDs := newEvents("Noted", 1+i%3)
				res, err := store.Append(ctx, stream, es.Exactly(versions[s]), events)
				if err != nil {
					t.Errorf("append to %s: %v", stream, err)
					return
				}
				versions[s] = res.StreamVersion
				mu.Lock()
				ids = append(ids, eventIDs...)
				if last.Before(res.LastPosition) {
					last = res.LastPosition
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	require.NotEmpty(t, ids)
	return ids, last
}

// poolAddress is the host:port a subscription reports for a replica pool.
func poolAddress(p *pgxpool.Pool) string {
	cc := p.Config().ConnConfig
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// handledLog records the events a subscription handler is given, in order.
type handledLog struct {
	mu     sync.Mutex
	events []logEvent
}

func (h *handledLog) handle(_ context.Context, e es.Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, logEvent{ID: e.ID, StreamID: e.StreamID, Version: e.Version, Position: e.Position})
	return nil
}

func (h *handledLog) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// requireExactly checks that the handler was given the events ids, each
// once, each stream's in its order.
func (h *handledLog) requireExactly(t *testing.T, ids []uuid.UUID) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	requireOnce(t, h.events)
	requireStreamOrder(t, h.events)
	requireSameSet(t, ids, idsOf(h.events))
}

// syncStandbyCluster returns a primary, a streaming replica of it, and a
// connection string of the primary whose commits wait for a synchronous
// standby that never connects (synchronous_standby_names = 'nobody'):
// such a commit is flushed, streamed and replayed by the replica, which
// shows it, while the primary does not show it until the wait is
// cancelled. Every other session commits with synchronous_commit = local.
// It is how a standby shows a commit before the primary does, held open.
func syncStandbyCluster(t *testing.T, ctx context.Context) (primary, replica *pgtest.Cluster, held string) {
	primary = ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	replica, err = primary.StartReplica(ctx, nil)
	require.NoError(t, err)
	removeAtCleanup(t, replica)
	_, err = conn.Exec(ctx, "ALTER DATABASE postgres SET synchronous_commit = local")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
	require.NoError(t, err)
	// New sessions take the setting once the server has reloaded it.
	waitFor(t, ctx, "the primary waits for the synchronous standby", func() bool {
		c := connect(t, ctx, primary.ConnString("postgres"))
		var names string
		require.NoError(t, c.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names))
		return names == "nobody"
	})
	held = primary.ConnString("postgres") + " synchronous_commit=on"
	return primary, replica, held
}

// appendHeld appends one event to stream through held (a store on
// syncStandbyCluster's held connection string) and returns once the
// replica shows it and the primary does not, with its id and a function
// that lets the commit finish on the primary.
func appendHeld(t *testing.T, ctx context.Context, held *pgstore.Store, primaryPool, replicaPool *pgxpool.Pool, stream string) (uuid.UUID, func()) {
	t.Helper()
	events, ids := newEvents("Noted", 1)
	done := make(chan error, 1)
	go func() {
		_, err := held.Append(context.WithoutCancel(ctx), stream, es.NoStream, events)
		done <- err
	}()
	shows := func(pool *pgxpool.Pool) bool {
		var shown bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM es.events WHERE event_id = $1)", ids[0]).Scan(&shown))
		return shown
	}
	waitFor(t, ctx, "the replica shows the held append", func() bool { return shows(replicaPool) })
	require.False(t, shows(primaryPool), "the primary does not show the held append yet")
	released := false
	release := func() {
		if released {
			return
		}
		released = true
		_, err := primaryPool.Exec(ctx, "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
		require.NoError(t, err)
		require.NoError(t, <-done, "the held append commits once its wait is cancelled")
	}
	t.Cleanup(release)
	return ids[0], release
}

// TestReplicaSubscriptionStandbyAhead: the replica shows a commit the
// primary does not show yet. A subscription reading it hands over only
// what the primary shows too (every event its transactional handler looks
// up on the primary is there), starts at the primary's end, and delivers
// the held event once the primary shows it.
func TestReplicaSubscriptionStandbyAhead(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	primary, replica, heldConn := syncStandbyCluster(t, ctx)
	primaryPool, writer := openStore(t, ctx, primary.ConnString("postgres"), nil)
	_, held := openStore(t, ctx, heldConn, nil)
	replicaPool, _ := openStore(t, ctx, replica.ConnString("postgres"), nil)
	store, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{replicaPool},
		Subscriptions: pgstore.SubscriptionConfig{ReadReplicas: true, PollInterval: 50 * time.Millisecond}})
	require.NoError(t, err)

	first, release := appendHeld(t, ctx, held, primaryPool, replicaPool, "ahead-1")
	events, ids := newEvents("Noted", 1)
	second, err := writer.Append(ctx, "ahead-2", es.NoStream, events)
	require.NoError(t, err)

	var (
		mu     sync.Mutex
		got    []uuid.UUID
		unseen []uuid.UUID // handed over while the handler's transaction on the primary did not show it
	)
	sub := runSubscription(t, func(ctx context.Context) error {
		return store.SubscribeTx(ctx, "ahead", func(ctx context.Context, tx es.Tx, e es.Event) error {
			var shown bool
			if err := pgstore.PgxTx(tx).QueryRow(ctx, "SELECT EXISTS (SELECT FROM es.events WHERE event_id = $1)", e.ID).Scan(&shown); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e.ID)
			if !shown {
				unseen = append(unseen, e.ID)
			}
			return nil
		}, &es.SubscribeOpts{Categories: []string{"ahead"}})
	})
	startFromEnd := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "ahead-end", func(context.Context, es.Event) error { return nil }, &es.SubscribeOpts{Start: es.StartFromEnd})
	})
	// The later event (committed on both) waits behind the held one: the
	// subscription hands over neither while the primary hides the first.
	// Release it, and both come, in the log's order.
	release()
	require.NoError(t, store.WaitFor(ctx, "ahead", second.LastPosition))
	sub.stop(t, ctx)
	startFromEnd.stop(t, ctx) // it did not stop on a checkpoint beyond the primary's log
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, unseen, "events handed over before the primary showed them")
	require.ElementsMatch(t, []uuid.UUID{first, ids[0]}, got)
}

// delayedStandby starts a migrated primary and a standby of it whose
// replay waits 2 s, and returns the primary, pools on both and a store on
// the primary.
func delayedStandby(t *testing.T, ctx context.Context) (*pgtest.Cluster, *pgxpool.Pool, *pgstore.Store, *pgxpool.Pool) {
	t.Helper()
	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	delayed, err := primary.StartReplica(ctx, &pgtest.ClusterOptions{Settings: map[string]string{"recovery_min_apply_delay": "2s"}})
	require.NoError(t, err)
	removeAtCleanup(t, delayed)
	primaryPool, writer := openStore(t, ctx, primary.ConnString("postgres"), nil)
	delayedPool, _ := openStore(t, ctx, delayed.ConnString("postgres"), nil)
	return primary, primaryPool, writer, delayedPool
}

// TestReplicaSubscriptionStartFromEnd: on a lagging standby, a
// subscription that starts at the end starts at the primary's end: an
// event the primary showed before it started is not delivered, one
// appended after is.
func TestReplicaSubscriptionStartFromEnd(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	_, primaryPool, writer, delayedPool := delayedStandby(t, ctx)
	store, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{delayedPool},
		Subscriptions: pgstore.SubscriptionConfig{ReadReplicas: true, PollInterval: 50 * time.Millisecond}})
	require.NoError(t, err)

	before, _ := newEvents("Noted", 1)
	_, err = writer.Append(ctx, "sfe-1", es.NoStream, before)
	require.NoError(t, err)
	got := new(handledLog)
	sub := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "sfe", got.handle, &es.SubscribeOpts{Start: es.StartFromEnd})
	})
	waitFor(t, ctx, "the subscription has a checkpoint", func() bool {
		h, err := store.SubscriptionHealth(ctx, "sfe")
		require.NoError(t, err)
		return h.HasCheckpoint
	})
	after, ids := newEvents("Noted", 1)
	res, err := writer.Append(ctx, "sfe-2", es.NoStream, after)
	require.NoError(t, err)
	require.NoError(t, store.WaitFor(ctx, "sfe", res.LastPosition))
	sub.stop(t, ctx)
	got.requireExactly(t, ids)
}

// TestReplicaSubscriptionHiddenOnPrimary: an event the primary hides
// behind an older running transaction, which the standby has not replayed
// when the notified read finds nothing, is read again until delivered,
// not left to the poll (an hour here: only the re-reads can deliver it
// within the test's deadline).
func TestReplicaSubscriptionHiddenOnPrimary(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	primary, primaryPool, writer, delayedPool := delayedStandby(t, ctx)
	store, err := pgstore.New(primaryPool, &pgstore.Config{Replicas: []*pgxpool.Pool{delayedPool},
		Subscriptions: pgstore.SubscriptionConfig{ReadReplicas: true, PollInterval: time.Hour, RepollDelay: 5 * time.Millisecond}})
	require.NoError(t, err)
	got := new(handledLog)
	sub := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "hid", got.handle, &es.SubscribeOpts{Categories: []string{"hid"}})
	})
	waitFor(t, ctx, "the subscription runs on the standby", func() bool {
		h, err := store.SubscriptionHealth(ctx, "hid")
		require.NoError(t, err)
		return h.ReadsFrom == poolAddress(delayedPool)
	})

	// An older transaction holds the primary's horizon while the event is
	// appended; it ends without a notification.
	older := connect(t, ctx, primary.ConnString("postgres"))
	_, err = older.Exec(ctx, "BEGIN")
	require.NoError(t, err)
	_, err = older.Exec(ctx, "SELECT pg_current_xact_id()")
	require.NoError(t, err)
	events, ids := newEvents("Noted", 1)
	res, err := writer.Append(ctx, "hid-1", es.NoStream, events)
	require.NoError(t, err)
	_, err = older.Exec(ctx, "COMMIT")
	require.NoError(t, err)
	require.NoError(t, store.WaitFor(ctx, "hid", res.LastPosition))
	sub.stop(t, ctx)
	got.requireExactly(t, ids)
}

// TestSubscribeOnSchemaBeforeReplicaStatus: on a schema migrated to 8
// (before the columns report_replica writes), with the current code
// package, a subscription runs: what it cannot report does not stop it.
func TestSubscribeOnSchemaBeforeReplicaStatus(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{TargetVersion: 8})
	require.NoError(t, err)
	_, store := openStore(t, ctx, primary.ConnString("postgres"), nil)
	got := new(handledLog)
	sub := runSubscription(t, func(ctx context.Context) error {
		return store.Subscribe(ctx, "v8", got.handle, nil)
	})
	events, ids := newEvents("Noted", 1)
	res, err := store.Append(ctx, "v8-1", es.NoStream, events)
	require.NoError(t, err)
	require.NoError(t, store.WaitFor(ctx, "v8", res.LastPosition))
	h, err := store.SubscriptionHealth(ctx, "v8")
	require.NoError(t, err)
	require.Empty(t, h.ReadsFrom, "nothing recorded below migration 009")
	sub.stop(t, ctx)
	got.requireExactly(t, ids)
}
