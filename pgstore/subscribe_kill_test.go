package pgstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// childEnv carries the subscriber process's instructions from
// TestSubscribeKilledProcess to TestSubscribeChild:
// "<mode>|<schema>|<name>|<block after>|<connection string>".
const childEnv = "ES_SUBSCRIBE_CHILD"

// killBatch is the batch size and checkpoint interval (in events) of the
// subscriber process.
const killBatch = 5

// TestSubscribeChild is not a test on its own: it is the subscriber process
// TestSubscribeKilledProcess starts and kills. It subscribes (plain or
// transactional), prints "handled <event id>" for each event handled, and
// after blockAfter events prints "blocking" and waits to be killed.
func TestSubscribeChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("the subscriber process of TestSubscribeKilledProcess")
	}
	parts := strings.SplitN(spec, "|", 5)
	require.Len(t, parts, 5)
	mode, schema, name, connString := parts[0], parts[1], parts[2], parts[4]
	blockAfter, err := strconv.Atoi(parts[3])
	require.NoError(t, err)

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, connString)
	require.NoError(t, err)
	defer pool.Close()
	// Batches of exactly killBatch events: no transaction may commit early
	// because a slow machine took TxMaxDuration to handle part of a batch.
	store, err := pgstore.New(pool, fastConfig(schema, pgstore.SubscriptionConfig{TxMaxDuration: time.Minute}))
	require.NoError(t, err)

	handled := 0
	handle := func(ctx context.Context, e es.Event) error {
		fmt.Printf("handled %s\n", e.ID)
		if handled++; handled == blockAfter {
			fmt.Println("blocking")
			select {} // until killed
		}
		return nil
	}
	opts := &es.SubscribeOpts{BatchSize: killBatch, CheckpointEvery: killBatch, CheckpointInterval: time.Hour}
	switch mode {
	case "plain":
		err = store.Subscribe(ctx, name, handle, opts)
	case "tx":
		err = store.SubscribeTx(ctx, name, func(ctx context.Context, etx es.Tx, e es.Event) error {
			tx := pgstore.PgxTx(etx)
			if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".applied VALUES ($1)", e.ID); err != nil {
				return err
			}
			return handle(ctx, e)
		}, opts)
	}
	require.NoError(t, err)
}

// TestSubscribeKilledProcess kills the subscriber process (SIGKILL) after
// it handled events but before it saved their checkpoint: the plain form
// delivers them again (at least once), the transactional form applies
// each event exactly once.
func TestSubscribeKilledProcess(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"plain", "tx"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			const (
				total      = 20
				blockAfter = 2*killBatch + 2 // two batches saved, two events handled and not
			)
			ctx := t.Context()
			pool, schema := pgtest.NewSchema(t)
			store, err := pgstore.New(pool, fastConfig(schema))
			require.NoError(t, err)
			_, err = pool.Exec(ctx, "CREATE TABLE "+schema+".applied (event_id uuid PRIMARY KEY)")
			require.NoError(t, err)
			res, err := store.Append(ctx, "killed-1", es.NoStream, newEvents(total, "K"))
			require.NoError(t, err)
			all := readAllVisible(t, store, total)

			// The subscriber process.
			name := "killed-" + mode
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSubscribeChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s|%d|%s", childEnv, mode, schema, name, blockAfter, pgtest.ConnString(t)))
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			cmd.Stderr = os.Stderr
			require.NoError(t, cmd.Start())
			var handled []uuid.UUID
			blocked := false
			scanner := bufio.NewScanner(stdout)
			for !blocked && scanner.Scan() {
				line := scanner.Text()
				if id, ok := strings.CutPrefix(line, "handled "); ok {
					handled = append(handled, uuid.MustParse(id))
				}
				blocked = line == "blocking"
			}
			require.True(t, blocked, "the subscriber process ended before blocking: %v", scanner.Err())
			require.NoError(t, cmd.Process.Kill())
			_ = cmd.Wait()
			require.Len(t, handled, blockAfter)
			for i, id := range handled {
				require.Equal(t, all[i].ID, id, "handled in order")
			}

			// Two batches were saved; the last two handled events were not.
			pos, ok, err := store.Checkpoint(ctx, name)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, all[2*killBatch-1].Position, pos)

			// A new instance (it may have to wait for the server to notice
			// the dead process and release its lock) carries on.
			c := newCollector()
			var sub *running
			if mode == "plain" {
				sub = run(t, func(ctx context.Context) error {
					return store.Subscribe(ctx, name, c.handle, fastOpts(es.SubscribeOpts{}))
				})
			} else {
				sub = run(t, func(ctx context.Context) error {
					return store.SubscribeTx(ctx, name, func(ctx context.Context, etx es.Tx, e es.Event) error {
						tx := pgstore.PgxTx(etx)
						if _, err := tx.Exec(ctx, "INSERT INTO "+schema+".applied VALUES ($1)", e.ID); err != nil {
							return err // a second application fails on the primary key
						}
						c.add(e)
						return nil
					}, fastOpts(es.SubscribeOpts{}))
				})
			}
			got := c.waitUntil(t, "the rest", func(events []es.Event) bool { return len(events) >= total-2*killBatch })
			pgtestAwaitCheckpoint(t, store, name, res.LastPosition)
			require.NoError(t, sub.stop(t))
			require.Len(t, got, total-2*killBatch)
			for i, e := range got {
				require.Equal(t, all[2*killBatch+i].ID, e.ID)
			}
			// At least once: the two events handled but not saved came again.
			require.Equal(t, handled[2*killBatch:], []uuid.UUID{got[0].ID, got[1].ID})

			var applied int
			require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".applied").Scan(&applied))
			if mode == "tx" {
				require.Equal(t, total, applied, "each event applied exactly once")
			} else {
				require.Zero(t, applied)
			}
		})
	}
}

// readAllVisible reads the global log, waiting (polling, with a deadline)
// until n events are visible: an unrelated transaction elsewhere in the
// cluster may hold them back for a while.
func readAllVisible(t *testing.T, store *pgstore.Store, n int) []es.Event {
	t.Helper()
	var all []es.Event
	deadline := time.Now().Add(deliveryTimeout)
	for {
		all = all[:0]
		for e, err := range store.ReadAll(t.Context(), nil) {
			require.NoError(t, err)
			all = append(all, e)
		}
		if len(all) >= n || time.Now().After(deadline) {
			require.Len(t, all, n, "the visible log")
			return all
		}
		time.Sleep(5 * time.Millisecond)
	}
}
