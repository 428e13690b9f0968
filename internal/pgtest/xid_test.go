package pgtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// TestClusterNextXID starts clusters whose transaction counter is late in
// epoch 0 (past 2^31, where ids of a fresh cluster's rows would look as
// if they came from the future) and in epoch 1, and checks that they work
// like any other: the counter is where it was asked to be, the catalogs
// and rows written before and after a crash and a restart are there,
// VACUUM is quiet, and transaction status lookups work.
func TestClusterNextXID(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	for _, tc := range []struct {
		name string
		next uint64
	}{
		{"epoch0", 3_000_000_000},
		{"epoch1", 1<<32 + 100_000}, // in pg_xact segment 0000, past the page initdb wrote
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			c, err := pgtest.StartCluster(&pgtest.ClusterOptions{NextXID: tc.next})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, c.Remove()) })
			connString := c.ConnString("postgres")

			conn := connect(t, connString)
			var xid uint64
			require.NoError(t, conn.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid))
			require.GreaterOrEqual(t, xid, tc.next)
			require.Less(t, xid, tc.next+100)

			var databases []string
			rows, err := conn.Query(ctx, "SELECT datname FROM pg_database ORDER BY datname")
			require.NoError(t, err)
			databases, err = pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{"postgres", "template0", "template1"}, databases, "initdb's databases are all visible")

			// The catalogs agree with the counter: nothing older than it
			// is left to freeze.
			var oldest int
			require.NoError(t, conn.QueryRow(ctx, "SELECT max(age(datfrozenxid)) FROM pg_database").Scan(&oldest))
			require.GreaterOrEqual(t, oldest, 0)
			require.Less(t, oldest, 1000)

			_, err = conn.Exec(ctx, "CREATE DATABASE app")
			require.NoError(t, err)
			app := connect(t, c.ConnString("app"))
			_, err = app.Exec(ctx, "CREATE TABLE kept (id int PRIMARY KEY, xid xid8 DEFAULT pg_current_xact_id())")
			require.NoError(t, err)
			_, err = app.Exec(ctx, "INSERT INTO kept (id) SELECT generate_series(1, 100)")
			require.NoError(t, err)
			var committed uint64
			require.NoError(t, app.QueryRow(ctx, "SELECT max(xid)::text::bigint FROM kept").Scan(&committed))
			require.GreaterOrEqual(t, committed, tc.next)
			var status string
			require.NoError(t, app.QueryRow(ctx, "SELECT pg_xact_status(max(xid)) FROM kept").Scan(&status))
			require.Equal(t, "committed", status)
			tx, err := app.Begin(ctx)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, "INSERT INTO kept (id) VALUES (101)")
			require.NoError(t, err)
			require.NoError(t, tx.Rollback(ctx))

			// A crash, then a clean restart: the rows stay, the counter
			// goes on from where it was.
			require.NoError(t, c.Kill())
			require.NoError(t, c.Start())
			require.NoError(t, c.Stop())
			require.NoError(t, c.Start())
			app = connect(t, c.ConnString("app"))
			var n int
			require.NoError(t, app.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n))
			require.Equal(t, 100, n)
			require.NoError(t, app.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid))
			require.Greater(t, xid, committed)
			_, err = app.Exec(ctx, "VACUUM (FREEZE) kept")
			require.NoError(t, err)
			require.NoError(t, app.QueryRow(ctx, "SELECT count(*) FROM kept").Scan(&n))
			require.Equal(t, 100, n)

			log := serverLog(t, c)
			for _, bad := range []string{"wraparound", "overwrote invalid", "must be vacuumed", "failsafe", "could not access status"} {
				require.NotContains(t, log, bad)
			}
		})
	}
}

func TestClusterNextXIDInvalid(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	_, err := pgtest.StartCluster(&pgtest.ClusterOptions{NextXID: 1 << 32})
	require.ErrorContains(t, err, "must be at least 3")
	_, err = pgtest.StartCluster(&pgtest.ClusterOptions{NextXID: 10})
	require.ErrorContains(t, err, "below the counter initdb left")
}

// serverLog returns the cluster's server log, in lower case.
func serverLog(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	data, err := os.ReadFile(c.LogPath())
	require.NoError(t, err)
	return strings.ToLower(string(data))
}

// testContext is the test's context with a generous deadline.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
