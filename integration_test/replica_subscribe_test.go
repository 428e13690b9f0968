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
		appended, last := appendLoad(t, ctx, writer, "group", 4, 100, nil)
		require.NoError(t, store.WaitFor(ctx, "replica-group", last))
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
