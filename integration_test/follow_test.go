package integration_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// These tests follow the log the way a user without Go does (README,
// "Following the log"): LISTEN es_events, read_all from a saved position,
// save the position with the checkpoint functions.

// checkpointRow is a row of read_checkpoint.
type checkpointRow struct {
	TransactionID  uint64
	GlobalPosition int64
	Exists         bool
}

func readCheckpoint(t *testing.T, ctx context.Context, conn *pgx.Conn, name string) checkpointRow {
	t.Helper()
	var c checkpointRow
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT transaction_id, global_position, checkpoint_exists FROM es.read_checkpoint($1)", name).
		Scan(&c.TransactionID, &c.GlobalPosition, &c.Exists))
	return c
}

// TestFollowByHand is a follower written in SQL: LISTEN, then read pages
// from its checkpoint and advance it in the same transaction as its own
// writes, reading again on each notification.
func TestFollowByHand(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	connString := migratedDatabase(t, ctx)
	follower := connect(t, ctx, connString)
	writer := connect(t, ctx, connString)
	_, err := follower.Exec(ctx, "CREATE TABLE seen (stream_id text, version bigint, PRIMARY KEY (stream_id, version))")
	require.NoError(t, err)

	// LISTEN first, then catch up.
	_, err = follower.Exec(ctx, "LISTEN es_events")
	require.NoError(t, err)
	require.Equal(t, checkpointRow{}, readCheckpoint(t, ctx, follower, "by-hand"), "no checkpoint: the start of the log")

	// One page: read after the checkpoint, record, advance, in one
	// transaction. Returns how many events it read.
	page := func() int {
		tx, err := follower.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		var c checkpointRow
		require.NoError(t, tx.QueryRow(ctx, "SELECT transaction_id, global_position, checkpoint_exists FROM es.read_checkpoint('by-hand')").
			Scan(&c.TransactionID, &c.GlobalPosition, &c.Exists))
		var n int
		var lastTx uint64
		var lastPos int64
		err = tx.QueryRow(ctx, `
			WITH page AS (
				SELECT * FROM es.read_all($1, $2, 3)
			), rec AS (
				INSERT INTO seen SELECT stream_id, version FROM page
			)
			SELECT count(*), coalesce(max(transaction_id::text::bigint), 0),
			       coalesce((array_agg(global_position ORDER BY transaction_id DESC, global_position DESC))[1], 0)
			  FROM page`, c.TransactionID, c.GlobalPosition).Scan(&n, &lastTx, &lastPos)
		require.NoError(t, err)
		if n > 0 {
			_, err = tx.Exec(ctx, "SELECT * FROM es.advance_checkpoint('by-hand', $1, $2, $3, $4)",
				c.TransactionID, c.GlobalPosition, lastTx, lastPos)
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(ctx))
		return n
	}
	catchUp := func() {
		for page() == 3 {
		}
	}

	appendEvents := func(stream string, n int) {
		for range n {
			_, err := writer.Exec(ctx, `SELECT es.append_event($1, 'Happened', '\x80')`, stream)
			require.NoError(t, err)
		}
	}
	appendEvents("acct-1", 4)
	appendEvents("acct-2", 2)
	count := func() int {
		var n int
		require.NoError(t, follower.QueryRow(ctx, "SELECT count(*) FROM seen").Scan(&n))
		return n
	}
	waitFor(t, ctx, "six events followed", func() bool { catchUp(); return count() == 6 })

	// Live: wait for a notification, read again; and read once more
	// shortly after (an append may have skipped notifying).
	appendEvents("acct-1", 1)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := follower.WaitForNotification(wctx)
	cancel()
	require.NoError(t, err)
	require.Equal(t, "es_events", n.Channel)
	waitFor(t, ctx, "the seventh event followed", func() bool { catchUp(); return count() == 7 })

	var lastTx uint64
	var lastPos int64
	require.NoError(t, writer.QueryRow(ctx, "SELECT transaction_id, global_position FROM es.events ORDER BY transaction_id DESC, global_position DESC LIMIT 1").
		Scan(&lastTx, &lastPos))
	require.Equal(t, checkpointRow{lastTx, lastPos, true}, readCheckpoint(t, ctx, follower, "by-hand"))
	var versions []int64
	rows, err := follower.Query(ctx, "SELECT version FROM seen WHERE stream_id = 'acct-1' ORDER BY version")
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5}, versions)
}

// TestFollowWithPsql runs the worked psql session of the README section
// (docs/following-the-log.md): LISTEN, read from the saved position,
// advance the checkpoint, and sees it work.
func TestFollowWithPsql(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	connString := migratedDatabase(t, ctx)
	writer := connect(t, ctx, connString)
	for _, s := range []string{"order-1", "order-1", "order-2"} {
		_, err := writer.Exec(ctx, `SELECT es.append_event($1, 'OrderPlaced', '\x80')`, s)
		require.NoError(t, err)
	}

	script := `LISTEN es_events;
SELECT transaction_id AS after_tx, global_position AS after_pos
  FROM es.read_checkpoint('billing') \gset
SELECT global_position, stream_id, version, event_type
  FROM es.read_all(:'after_tx', :after_pos, 100);
\set handled :ROW_COUNT
BEGIN;
SELECT transaction_id AS last_tx, global_position AS last_pos
  FROM es.read_all(:'after_tx', :after_pos, :handled)
 ORDER BY transaction_id DESC, global_position DESC LIMIT 1 \gset
SELECT transaction_id, global_position
  FROM es.advance_checkpoint('billing', :'after_tx', :after_pos, :'last_tx', :last_pos);
COMMIT;
SELECT es.append_event('order-3', 'OrderPlaced', '\x80') IS NOT NULL AS appended;
`
	path := filepath.Join(t.TempDir(), "follow.sql")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o644))
	// A transaction of another test that began before the appends holds
	// them back from read_all until it ends; the horizon only moves
	// forwards, so once read_all returns all three the script sees them
	// too (a script that read none would stop at \gset, one that read some
	// would advance the checkpoint and append before the others show).
	waitFor(t, ctx, "read_all returns the three events", func() bool {
		var n int
		require.NoError(t, writer.QueryRow(ctx, "SELECT count(*) FROM es.read_all('0', 0, 100)").Scan(&n))
		return n == 3
	})
	var out string
	waitFor(t, ctx, "psql reads three events", func() bool {
		_, err := writer.Exec(ctx, "SELECT es.delete_checkpoint('billing')")
		require.NoError(t, err)
		o, err := psql(t, ctx, connString, "-A", "-F", " ", "-f", path)
		require.NoError(t, err, o)
		out = o
		return strings.Contains(o, "3 order-2 1 OrderPlaced")
	})
	for _, want := range []string{"1 order-1 1 OrderPlaced", "2 order-1 2 OrderPlaced", "3 order-2 1 OrderPlaced"} {
		require.Contains(t, out, want)
	}
	require.Regexp(t, regexp.MustCompile(`Asynchronous notification "es_events" with payload ".*order-3.*" received`), out)
	c := readCheckpoint(t, ctx, writer, "billing")
	require.True(t, c.Exists)
	require.Equal(t, int64(3), c.GlobalPosition)
	require.Contains(t, out, fmt.Sprintf("%d 3", c.TransactionID), "advance_checkpoint's result")
}

// TestCheckpointFunctions checks the checkpoint functions' rules and their
// SQLSTATEs from raw SQL.
func TestCheckpointFunctions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	connString := migratedDatabase(t, ctx)
	conn := connect(t, ctx, connString)
	advance := func(name any, expTx, expPos, tx, pos any) error {
		_, err := conn.Exec(ctx, "SELECT * FROM es.advance_checkpoint($1, $2, $3, $4, $5)", name, expTx, expPos, tx, pos)
		return err
	}

	// Unknown: one row at the start of the log; a NULL or empty id is refused.
	require.Equal(t, checkpointRow{}, readCheckpoint(t, ctx, conn, "c"))
	var exists bool
	requirePgError(t, conn.QueryRow(ctx, "SELECT checkpoint_exists FROM es.read_checkpoint(NULL)").Scan(&exists), "PE003")
	requirePgError(t, conn.QueryRow(ctx, "SELECT checkpoint_exists FROM es.read_checkpoint('')").Scan(&exists), "PE003")

	// Created from the start, then forwards only.
	require.NoError(t, advance("c", "0", 0, "10", 5))
	require.Equal(t, checkpointRow{10, 5, true}, readCheckpoint(t, ctx, conn, "c"))
	require.NoError(t, advance("c", "10", 5, "10", 7))
	require.NoError(t, advance("c", "10", 7, "12", 1)) // a later transaction key, a smaller global position
	require.NoError(t, advance("c", "12", 1, "12", 1)) // the same: allowed, nothing moves
	require.Equal(t, checkpointRow{12, 1, true}, readCheckpoint(t, ctx, conn, "c"))

	// A stale instance (expected where it was before): PE007, unchanged.
	pg := requirePgError(t, advance("c", "10", 5, "11", 0), "PE007")
	d := detail(t, pg)
	require.Equal(t, "c", d["subscription_id"])
	require.Equal(t, "10/5", d["expected"])
	require.Equal(t, "12/1", d["actual"])
	require.Equal(t, "11/0", d["position"])
	requirePgError(t, advance("c", "0", 0, "20", 1), "PE007", "expected the start, but it exists")
	requirePgError(t, advance("new", "10", 5, "20", 1), "PE007", "expected a position, but none exists")
	require.Equal(t, checkpointRow{}, readCheckpoint(t, ctx, conn, "new"))
	// Without an expected position: forwards only.
	require.NoError(t, advance("c", nil, nil, "13", 2))
	requirePgError(t, advance("c", nil, nil, "13", 1), "PE007", "backwards")
	require.NoError(t, advance("c", nil, nil, "13", 2))
	require.NoError(t, advance("other", nil, nil, "1", 1))
	require.Equal(t, checkpointRow{13, 2, true}, readCheckpoint(t, ctx, conn, "c"))

	// Bad input: PE003, nothing changes.
	for i, args := range [][5]any{
		{nil, "13", 2, "14", 1},
		{"", "13", 2, "14", 1},
		{"c", "13", 2, nil, 1},
		{"c", "13", 2, "14", nil},
		{"c", "13", 2, "14", -1},
		{"c", "13", nil, "14", 1},
		{"c", nil, 2, "14", 1},
		{"c", "13", -2, "14", 1},
		{"c", "13", 2, "13", 1}, // before the expected position
	} {
		pg := requirePgError(t, advance(args[0], args[1], args[2], args[3], args[4]), "PE003", "case ", i)
		require.NotEmpty(t, detail(t, pg)["argument"])
	}
	require.Equal(t, checkpointRow{13, 2, true}, readCheckpoint(t, ctx, conn, "c"))

	// delete_checkpoint: true once.
	var deleted bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT es.delete_checkpoint('other')").Scan(&deleted))
	require.True(t, deleted)
	require.NoError(t, conn.QueryRow(ctx, "SELECT es.delete_checkpoint('other')").Scan(&deleted))
	require.False(t, deleted)
	require.Equal(t, checkpointRow{}, readCheckpoint(t, ctx, conn, "other"))
}

// TestCheckpointCompareAndSetRace: two transactions advance the same
// checkpoint from the same expected position; the second waits for the
// first and fails when it commits. Also when the checkpoint is created.
func TestCheckpointCompareAndSetRace(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, time.Minute)
	connString := migratedDatabase(t, ctx)
	a := connect(t, ctx, connString)
	b := connect(t, ctx, connString)

	for _, tc := range []struct{ name, expTx string }{{"create", "0"}, {"update", "5"}} {
		name := "race-" + tc.name
		if tc.expTx != "0" {
			_, err := a.Exec(ctx, "SELECT * FROM es.advance_checkpoint($1, '0', 0, '5', 0)", name)
			require.NoError(t, err)
		}
		txA, err := a.Begin(ctx)
		require.NoError(t, err)
		_, err = txA.Exec(ctx, "SELECT * FROM es.advance_checkpoint($1, $2, 0, '7', 1)", name, tc.expTx)
		require.NoError(t, err)

		errB := make(chan error, 1)
		go func() {
			_, err := b.Exec(ctx, "SELECT * FROM es.advance_checkpoint($1, $2, 0, '8', 1)", name, tc.expTx)
			errB <- err
		}()
		// B waits on A's row (or on A's uncommitted insert).
		check := connect(t, ctx, connString)
		waitFor(t, ctx, "B waits for A", func() bool {
			var waiting bool
			require.NoError(t, check.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')",
				b.PgConn().PID()).Scan(&waiting))
			return waiting
		})
		require.NoError(t, txA.Commit(ctx))
		requirePgError(t, <-errB, "PE007", tc.name)
		require.Equal(t, checkpointRow{7, 1, true}, readCheckpoint(t, ctx, a, name))
	}
}
