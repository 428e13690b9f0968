package pgtest_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// TestDumpRestore moves a database whose table is owned by and granted to
// roles of its own to a fresh cluster: without the roles the restore
// fails and leaves nothing; with CopyRoles first it brings the rows, the
// owner, the grants and the memberships.
func TestDumpRestore(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := testContext(t)

	src := startCluster(t, nil)
	dst := startCluster(t, nil)
	admin := connect(t, src.ConnString("postgres"))
	for _, sql := range []string{
		"CREATE ROLE app_owner NOLOGIN",
		"CREATE ROLE app_reader NOLOGIN",
		`CREATE ROLE "Mixed ""Case"" login" LOGIN IN ROLE app_reader`,
		"CREATE DATABASE app",
	} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err)
	}
	app := connect(t, src.ConnString("app"))
	for _, sql := range []string{
		"CREATE TABLE t (id int PRIMARY KEY, v text)",
		"INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 1000) AS i",
		"ALTER TABLE t OWNER TO app_owner",
		"GRANT SELECT ON t TO app_reader",
	} {
		_, err := app.Exec(ctx, sql)
		require.NoError(t, err)
	}
	dump := filepath.Join(t.TempDir(), "app.dump")
	require.NoError(t, src.Dump(ctx, "app", dump))

	// Without the roles: the restore fails, in one transaction.
	err := dst.Restore(ctx, dump, "app")
	require.ErrorContains(t, err, "does not exist")
	require.ErrorContains(t, err, "role")
	dstAdmin := connect(t, dst.ConnString("postgres"))
	var tables int
	restored := connect(t, dst.ConnString("app"))
	require.NoError(t, restored.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables))
	require.Zero(t, tables, "a failed restore leaves nothing")
	require.NoError(t, restored.Close(ctx))
	_, err = dstAdmin.Exec(ctx, "DROP DATABASE app")
	require.NoError(t, err)

	// Roles first (twice: existing roles are updated, not an error), then
	// the database.
	require.NoError(t, dst.CopyRoles(ctx, src))
	require.NoError(t, dst.CopyRoles(ctx, src))
	require.NoError(t, dst.Restore(ctx, dump, "app"))
	restored = connect(t, dst.ConnString("app"))
	var rows int
	var owner string
	var canRead, member bool
	require.NoError(t, restored.QueryRow(ctx, `SELECT (SELECT count(*) FROM t), (SELECT tableowner FROM pg_tables WHERE tablename = 't'),
		has_table_privilege('Mixed "Case" login', 't', 'SELECT'), pg_has_role('Mixed "Case" login', 'app_reader', 'MEMBER')`).
		Scan(&rows, &owner, &canRead, &member))
	require.Equal(t, 1000, rows)
	require.Equal(t, "app_owner", owner)
	require.True(t, canRead, "the grant to app_reader is restored")
	require.True(t, member, "the membership is copied")
	var login bool
	require.NoError(t, dstAdmin.QueryRow(ctx, `SELECT rolcanlogin FROM pg_roles WHERE rolname = 'Mixed "Case" login'`).Scan(&login))
	require.True(t, login, "role attributes are copied")
}

// TestUpgrade upgrades a cluster whose transaction counter is far along:
// the new cluster has the data, the roles and the counter; the old one is
// stopped, intact, and starts again.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := testContext(t)

	const next = 3_000_000_000
	old := startCluster(t, &pgtest.ClusterOptions{NextXID: next})
	admin := connect(t, old.ConnString("postgres"))
	for _, sql := range []string{"CREATE ROLE app_reader NOLOGIN", "CREATE DATABASE app"} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err)
	}
	require.NoError(t, admin.Close(ctx))
	app := connect(t, old.ConnString("app"))
	for _, sql := range []string{
		"CREATE TABLE t (id int PRIMARY KEY, xid xid8 DEFAULT pg_current_xact_id())",
		"INSERT INTO t (id) SELECT generate_series(1, 1000)",
		"GRANT SELECT ON t TO app_reader",
	} {
		_, err := app.Exec(ctx, sql)
		require.NoError(t, err)
	}
	var last uint64
	require.NoError(t, app.QueryRow(ctx, "SELECT max(xid)::text::bigint FROM t").Scan(&last))
	require.GreaterOrEqual(t, last, uint64(next))
	require.NoError(t, app.Close(ctx))

	upgraded, err := old.Upgrade(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, upgraded.Remove()) })
	require.NotEqual(t, old.ConnString("app"), upgraded.ConnString("app"))
	requireNoConnect(t, old.ConnString("postgres"))

	conn := connect(t, upgraded.ConnString("app"))
	var rows int
	var canRead bool
	var xid uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM t), has_table_privilege('app_reader', 't', 'SELECT'), pg_current_xact_id()::text::bigint").
		Scan(&rows, &canRead, &xid))
	require.Equal(t, 1000, rows)
	require.True(t, canRead)
	require.Greater(t, xid, last, "the transaction counter carries over")
	var status string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_xact_status($1::text::xid8)", strconv.FormatUint(last, 10)).Scan(&status))
	require.Equal(t, "committed", status, "the commit log carries over")

	require.NoError(t, old.Start())
	conn = connect(t, old.ConnString("app"))
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&rows))
	require.Equal(t, 1000, rows, "the old cluster is intact")

	_, err = upgraded.Upgrade(ctx, &pgtest.ClusterOptions{NextXID: next})
	require.ErrorContains(t, err, "NextXID must be 0")
}

// TestReplica streams a primary to a hot standby: the replica is in
// recovery, read-only, on a socket of its own, and after WaitReplayed
// shows everything the primary committed.
func TestReplica(t *testing.T) {
	t.Parallel()
	requireBinaries(t)
	ctx := testContext(t)

	primary := startCluster(t, nil)
	pconn := connect(t, primary.ConnString("postgres"))
	_, err := pconn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY)")
	require.NoError(t, err)

	_, err = primary.StartReplica(ctx, &pgtest.ClusterOptions{NextXID: 1000})
	require.ErrorContains(t, err, "NextXID must be 0")
	require.ErrorContains(t, primary.WaitReplayed(ctx), "not a replica")

	replica, err := primary.StartReplica(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, replica.Remove()) })
	require.NotEqual(t, primary.ConnString("postgres"), replica.ConnString("postgres"))
	rconn := connect(t, replica.ConnString("postgres"))
	var recovering bool
	var feedback, receiver string
	require.NoError(t, rconn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('hot_standby_feedback'), (SELECT status FROM pg_stat_wal_receiver)").
		Scan(&recovering, &feedback, &receiver))
	require.True(t, recovering)
	require.Equal(t, "on", feedback)
	require.Equal(t, "streaming", receiver)
	var senders int
	require.NoError(t, pconn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").Scan(&senders))
	require.Equal(t, 1, senders)

	for round, n := range []int{1, 20_000} {
		_, err := pconn.Exec(ctx, "INSERT INTO t SELECT coalesce(max(id), 0) + i FROM t, generate_series(1, $1) AS i GROUP BY i", n)
		require.NoError(t, err)
		var want int
		require.NoError(t, pconn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&want))
		require.NoError(t, replica.WaitReplayed(ctx))
		var got int
		require.NoError(t, rconn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&got))
		require.Equal(t, want, got, "round %d", round)
	}

	_, err = rconn.Exec(ctx, "INSERT INTO t VALUES (0)")
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "25006", pgErr.Code, "read_only_sql_transaction")

	require.NoError(t, replica.Remove())
	_, err = pconn.Exec(ctx, "INSERT INTO t VALUES (0)")
	require.NoError(t, err, "the primary goes on without its replica")
}

// startCluster starts a cluster removed at cleanup.
func startCluster(t *testing.T, opts *pgtest.ClusterOptions) *pgtest.Cluster {
	t.Helper()
	c, err := pgtest.StartCluster(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Remove()) })
	return c
}
