package integration_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// TestStandby runs the store against a streaming hot standby of its
// database: the global log read on the standby while the primary is
// written to has no gaps, no duplicates and nothing rolled back; a
// subscription or an append on the standby fails at once with
// es.ErrReadOnly; stream reads work there.
func TestStandby(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)

	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE side_effects (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text NOT NULL)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	replica, err := primary.StartReplica(ctx, nil)
	require.NoError(t, err)
	removeAtCleanup(t, replica)

	ppool, pstore := openStore(t, ctx, primary.ConnString("postgres"), nil)
	// Small pages: the reader pages through the log often.
	_, rstore := openStore(t, ctx, replica.ConnString("postgres"), &pgstore.Config{ReadBatchSize: 97})

	t.Run("reading the log while the primary is written to", func(t *testing.T) {
		const (
			writers = 4
			appends = 150 // per writer
		)
		var (
			committed  atomic.Int64 // events acknowledged on the primary
			rolledBack sync.Map     // ids of events whose transaction rolled back
			writing    = make(chan struct{})
			wg         sync.WaitGroup
			mu         sync.Mutex
			errs       []error
		)
		fail := func(err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
		}
		for w := range writers {
			rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			wg.Go(func() {
				for i := range appends {
					stream := fmt.Sprintf("load%d-%d", w, rnd.IntN(4))
					if rnd.IntN(3) == 0 {
						stream = fmt.Sprintf("shared-%d", rnd.IntN(3))
					}
					events, ids := newEvents("Loaded", 1+rnd.IntN(8))
					var err error
					switch i % 10 {
					case 3: // rolled back, after writing elsewhere
						err = standbyRolledBack(ctx, ppool, pstore, stream, events)
						for _, id := range ids {
							rolledBack.Store(id, true)
						}
					case 6: // committed, after writing elsewhere first
						err = pgx.BeginFunc(ctx, ppool, func(tx pgx.Tx) error {
							if _, err := tx.Exec(ctx, "INSERT INTO side_effects (note) VALUES ('before an append')"); err != nil {
								return err
							}
							_, err := pstore.WithTx(tx).Append(ctx, stream, es.Any, events)
							return err
						})
						if err == nil {
							committed.Add(int64(len(events)))
						}
					default:
						_, err = pstore.Append(ctx, stream, es.Any, events)
						if err == nil {
							committed.Add(int64(len(events)))
						}
					}
					if err != nil {
						fail(fmt.Errorf("writer %d, append %d to %s: %w", w, i, stream, err))
						return
					}
				}
			})
		}
		go func() {
			wg.Wait()
			close(writing)
		}()

		// The reader follows the log on the replica from where it got to,
		// as a subscription does, until it has seen every committed event.
		var (
			seen  []es.Event
			after es.Position
		)
		read := func() int {
			n := 0
			for e, err := range rstore.ReadAll(ctx, &es.ReadAllOpts{After: after}) {
				require.NoError(t, err)
				seen = append(seen, e)
				after = e.Position
				n++
			}
			return n
		}
		readsDuringLoad := 0
		for done := false; !done; {
			select {
			case <-writing:
				done = true
			case <-ctx.Done():
				require.FailNow(t, "the writers did not finish", "%v", ctx.Err())
			default:
				if read() == 0 {
					time.Sleep(time.Millisecond)
				} else {
					readsDuringLoad++
				}
			}
		}
		seenDuringLoad := len(seen)
		require.Empty(t, errs)
		require.NoError(t, replica.WaitReplayed(ctx))
		want := int(committed.Load())
		eventually(t, ctx, fmt.Sprintf("the reader saw all %d committed events", want), func() bool {
			read()
			return len(seen) >= want
		})

		// Compare with the primary's log, read when nothing runs.
		log, stored := settledLog(t, ctx, ppool)
		require.Equal(t, want, stored, "events stored on the primary")
		require.Len(t, log, stored, "read_all on the primary returns every stored event")
		got := make([]logEvent, len(seen))
		for i, e := range seen {
			got[i] = logEvent{ID: e.ID, StreamID: e.StreamID, Version: e.Version, Position: e.Position}
			_, rb := rolledBack.Load(e.ID)
			require.False(t, rb, "the reader saw an event whose transaction rolled back: %s", got[i])
		}
		requireOnce(t, got, "read on the replica")
		requireSameIDs(t, idsOf(log), idsOf(got), "the replica's reader saw the primary's log, in order, each event once")
		requireStreamOrder(t, got)
		t.Logf("%d events read on the replica, %d of them in %d reads while %d writers appended", len(got), seenDuringLoad, readsDuringLoad, writers)
	})

	t.Run("writing on the standby fails at once", func(t *testing.T) {
		// Generous: a subscription that retried instead of failing would
		// return nil when the deadline ends it.
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		handled := false
		err := rstore.Subscribe(sctx, "on-standby", func(context.Context, es.Event) error {
			handled = true
			return nil
		}, subscribeOpts())
		require.ErrorIs(t, err, es.ErrReadOnly, "Subscribe on a standby")
		require.NoError(t, sctx.Err(), "Subscribe failed at once, not at the deadline")
		err = rstore.SubscribeTx(sctx, "on-standby-tx", func(context.Context, es.Tx, es.Event) error {
			handled = true
			return nil
		}, subscribeOpts())
		require.ErrorIs(t, err, es.ErrReadOnly, "SubscribeTx on a standby")
		require.NoError(t, sctx.Err(), "SubscribeTx failed at once, not at the deadline")
		require.False(t, handled, "no event was handed to a handler")

		events, _ := newEvents("Refused", 2)
		_, err = rstore.Append(ctx, "shared-0", es.Any, events)
		require.ErrorIs(t, err, es.ErrReadOnly, "Append on a standby")
		_, err = rstore.Append(ctx, "brand-new-1", es.NoStream, events)
		require.ErrorIs(t, err, es.ErrReadOnly, "Append of a new stream on a standby")

		for _, name := range []string{"on-standby", "on-standby-tx"} {
			_, ok, err := pstore.Checkpoint(ctx, name)
			require.NoError(t, err)
			require.False(t, ok, "no checkpoint for %s on the primary", name)
		}
	})

	t.Run("reading streams on the standby", func(t *testing.T) {
		require.NoError(t, replica.WaitReplayed(ctx))
		for _, stream := range []string{"shared-0", "shared-1", "load0-0", "load3-2"} {
			want, err := pstore.StreamInfo(ctx, stream)
			require.NoError(t, err)
			got, err := rstore.StreamInfo(ctx, stream)
			require.NoError(t, err)
			require.Equal(t, want.Version, got.Version, stream)
			require.True(t, want.UpdatedAt.Equal(got.UpdatedAt), stream)

			wantEvents := readStreamIDs(t, ctx, pstore, stream)
			gotEvents := readStreamIDs(t, ctx, rstore, stream)
			require.Len(t, gotEvents, int(want.Version), stream)
			requireSameIDs(t, wantEvents, gotEvents, "ReadStream on the standby: ", stream)
		}
		_, err := rstore.StreamInfo(ctx, "never-1")
		require.ErrorIs(t, err, es.ErrNotFound)
	})
}

// standbyRolledBack writes elsewhere, appends events and rolls back.
func standbyRolledBack(ctx context.Context, pool *pgxpool.Pool, store *pgstore.Store, stream string, events []es.NewEvent) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "INSERT INTO side_effects (note) VALUES ('rolled back')"); err != nil {
		return err
	}
	if _, err := store.WithTx(tx).Append(ctx, stream, es.Any, events); err != nil {
		return err
	}
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}

func readStreamIDs(t testing.TB, ctx context.Context, store *pgstore.Store, stream string) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for e, err := range store.ReadStream(ctx, stream, nil) {
		require.NoError(t, err)
		ids = append(ids, e.ID)
	}
	return ids
}
