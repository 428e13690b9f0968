package integration_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// loadRow is a row of es.load.
type loadRow struct {
	Version               int64
	EventType             *string
	SnapshotSchemaVersion *int32
	SnapshotState         []byte
}

func queryLoad(t *testing.T, ctx context.Context, conn *pgx.Conn, streamID string, schema any) []loadRow {
	t.Helper()
	rows, err := conn.Query(ctx,
		"SELECT version, event_type, snapshot_schema_version, snapshot_state FROM es.load($1, $2)", streamID, schema)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[loadRow])
	require.NoError(t, err)
	return got
}

// snapshotRow returns the stored snapshot of a stream (version, schema
// version, state), or ok=false.
func snapshotRow(t *testing.T, ctx context.Context, conn *pgx.Conn, streamID string) (version int64, schema int32, state []byte, ok bool) {
	t.Helper()
	err := conn.QueryRow(ctx, "SELECT version, schema_version, state FROM es.snapshots WHERE stream_id = $1", streamID).
		Scan(&version, &schema, &state)
	if err == pgx.ErrNoRows {
		return 0, 0, nil, false
	}
	require.NoError(t, err)
	return version, schema, state, true
}

// TestSnapshotSQL uses the snapshot functions from plain SQL, as a user
// without Go would.
func TestSnapshotSQL(t *testing.T) {
	t.Parallel()
	connString := migratedDatabase(t, testContext(t, testTimeout))

	t.Run("SaveAndLoad", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)
		for range 5 {
			_, err := conn.Exec(ctx, `SELECT es.append_event('acct-1', 'Deposited', '\x81a16101'::bytea)`)
			require.NoError(t, err)
		}
		var stored bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT es.save_snapshot('acct-1', 3, 1, '\x81a762616c616e636503'::bytea)`).Scan(&stored))
		require.True(t, stored)
		require.NoError(t, conn.QueryRow(ctx, `SELECT es.save_snapshot('acct-1', 2, 1, '\x80'::bytea)`).Scan(&stored))
		require.False(t, stored, "an older snapshot is not stored")

		got := queryLoad(t, ctx, conn, "acct-1", 1)
		require.Len(t, got, 3)
		require.Equal(t, int64(3), got[0].Version, "the snapshot row first")
		require.Nil(t, got[0].EventType)
		require.Equal(t, int32(1), *got[0].SnapshotSchemaVersion)
		require.Equal(t, []byte("\x81\xa7balance\x03"), got[0].SnapshotState)
		for i, r := range got[1:] {
			require.Equal(t, int64(4+i), r.Version)
			require.Equal(t, "Deposited", *r.EventType)
			require.Nil(t, r.SnapshotSchemaVersion)
			require.Nil(t, r.SnapshotState)
		}

		// Another schema version, or none: every event, no snapshot row.
		for _, schema := range []any{2, nil} {
			got = queryLoad(t, ctx, conn, "acct-1", schema)
			require.Len(t, got, 5, "schema %v", schema)
			for i, r := range got {
				require.Equal(t, int64(1+i), r.Version)
				require.Nil(t, r.SnapshotState)
			}
		}
		require.Empty(t, queryLoad(t, ctx, conn, "nobody-1", 1))

		// The snapshot as JSON, with the decoder of migration 004.
		var doc string
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT es.msgpack_to_jsonb(state)::text FROM es.snapshots WHERE stream_id = 'acct-1'").Scan(&doc))
		require.JSONEq(t, `{"balance": 3}`, doc)

		// A LIMIT limits the call (the Go store pages this way).
		rows, err := conn.Query(ctx, "SELECT version FROM es.load('acct-1', 1) LIMIT 2")
		require.NoError(t, err)
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Equal(t, []int64{3, 4}, versions)
	})

	t.Run("AppendWithSnapshot", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)
		const appendWithSnapshot = `
			SELECT stream_version, first_version FROM es.append($1, $2,
			       ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['A', 'B'], ARRAY['\x80', '\x80']::bytea[],
			       NULL, $3, $4)`
		var version, first int64
		require.NoError(t, conn.QueryRow(ctx, appendWithSnapshot, "cart-1", 0, 1, []byte("s2")).Scan(&version, &first))
		require.Equal(t, int64(2), version)
		require.Equal(t, int64(1), first)
		v, schema, state, ok := snapshotRow(t, ctx, conn, "cart-1")
		require.True(t, ok)
		require.Equal(t, int64(2), v)
		require.Equal(t, int32(1), schema)
		require.Equal(t, []byte("s2"), state)

		// A newer snapshot stored meanwhile is kept; the append succeeds.
		_, err := conn.Exec(ctx, `SELECT es.append_event('cart-1', 'C', '\x80')`)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `SELECT es.save_snapshot('cart-1', 3, 9, 'newer')`)
		require.NoError(t, err)
		require.NoError(t, conn.QueryRow(ctx, appendWithSnapshot, "cart-1", nil, 1, []byte("s5")).Scan(&version, &first))
		require.Equal(t, int64(5), version)
		v, _, state, _ = snapshotRow(t, ctx, conn, "cart-1")
		require.Equal(t, int64(5), v, "a higher version replaces")
		require.Equal(t, []byte("s5"), state)

		// The six-argument positional call is unchanged, with a NULL
		// metadata array and with the default.
		rows, err := conn.Query(ctx, `
			SELECT * FROM es.append('cart-1', 5, ARRAY[gen_random_uuid()], ARRAY['D'], ARRAY['\x80']::bytea[], NULL)`)
		require.NoError(t, err)
		cols := rows.FieldDescriptions()
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = c.Name
		}
		rows.Close()
		require.NoError(t, rows.Err())
		require.Equal(t, []string{"stream_version", "last_position", "transaction_id", "first_version", "first_position", "first_transaction_id"}, names)
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT stream_version FROM es.append('cart-1', 6, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY['\x80']::bytea[])`).Scan(&version))
		require.Equal(t, int64(7), version)
		v, _, _, _ = snapshotRow(t, ctx, conn, "cart-1")
		require.Equal(t, int64(5), v, "appends without a snapshot leave it alone")

		// A failed append stores no snapshot either.
		_, err = conn.Exec(ctx, appendWithSnapshot, "cart-1", 1, 1, []byte("never"))
		requirePgError(t, err, "PE001")
		v, _, _, _ = snapshotRow(t, ctx, conn, "cart-1")
		require.Equal(t, int64(5), v)

		// In a transaction that rolls back: neither events nor snapshot.
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, tx.QueryRow(ctx, appendWithSnapshot, "cart-9", 0, 1, []byte("rolled back")).Scan(&version, &first))
		require.NoError(t, tx.Rollback(ctx))
		_, _, _, ok = snapshotRow(t, ctx, conn, "cart-9")
		require.False(t, ok)
		require.Empty(t, queryLoad(t, ctx, conn, "cart-9", 1))
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)
		_, err := conn.Exec(ctx, `SELECT es.append_event('bad-1', 'A', '\x80'), es.append_event('bad-1', 'A', '\x80')`)
		require.NoError(t, err)
		long := strings.Repeat("x", 1001)

		cases := []struct {
			name, sql string
			args      []any
			code      string
			argument  string
		}{
			{"null stream", "SELECT es.save_snapshot(NULL, 1, 1, '\\x80')", nil, "PE003", "stream_id"},
			{"empty stream", "SELECT es.save_snapshot('', 1, 1, '\\x80')", nil, "PE003", "stream_id"},
			{"long stream", "SELECT es.save_snapshot($1, 1, 1, '\\x80')", []any{long}, "PE003", "stream_id"},
			{"null version", "SELECT es.save_snapshot('bad-1', NULL, 1, '\\x80')", nil, "PE003", "version"},
			{"zero version", "SELECT es.save_snapshot('bad-1', 0, 1, '\\x80')", nil, "PE003", "version"},
			{"negative version", "SELECT es.save_snapshot('bad-1', -5, 1, '\\x80')", nil, "PE003", "version"},
			{"null schema", "SELECT es.save_snapshot('bad-1', 1, NULL, '\\x80')", nil, "PE003", "schema_version"},
			{"null state", "SELECT es.save_snapshot('bad-1', 1, 1, NULL)", nil, "PE003", "state"},
			{"half a snapshot (state)", `SELECT * FROM es.append('bad-1', 2, ARRAY[gen_random_uuid()], ARRAY['A'], ARRAY['\x80']::bytea[], NULL, NULL, '\x80')`, nil, "PE003", "snapshot"},
			{"half a snapshot (schema)", `SELECT * FROM es.append('bad-1', 2, ARRAY[gen_random_uuid()], ARRAY['A'], ARRAY['\x80']::bytea[], NULL, 1, NULL)`, nil, "PE003", "snapshot"},
			{"append's own checks", `SELECT * FROM es.append('', 0, ARRAY[gen_random_uuid()], ARRAY['A'], ARRAY['\x80']::bytea[], NULL, 1, '\x80')`, nil, "PE003", "stream_id"},
			{"load null stream", "SELECT * FROM es.load(NULL, 1)", nil, "PE003", "stream_id"},
			{"load empty stream", "SELECT * FROM es.load('', 1)", nil, "PE003", "stream_id"},
			{"load empty stream (parameter)", "SELECT * FROM es.load($1, 1)", []any{""}, "PE003", "stream_id"},
		}
		for _, c := range cases {
			_, err := conn.Exec(ctx, c.sql, c.args...)
			pg := requirePgError(t, err, c.code, c.name)
			require.Equal(t, c.argument, detail(t, pg)["argument"], c.name)
		}

		// Beyond the stream: PE008 with the versions in DETAIL.
		for _, c := range []struct {
			stream  string
			version int64
			actual  float64
		}{{"bad-1", 3, 2}, {"bad-1", 1 << 40, 2}, {"nobody-1", 1, 0}} {
			_, err := conn.Exec(ctx, "SELECT es.save_snapshot($1, $2, 1, '\\x80')", c.stream, c.version)
			pg := requirePgError(t, err, "PE008", c.stream)
			d := detail(t, pg)
			require.Equal(t, c.stream, d["stream_id"])
			require.Equal(t, float64(c.version), d["version"])
			require.Equal(t, c.actual, d["stream_version"])
		}

		// Nothing was written: no snapshots, the stream still at 2.
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM es.snapshots WHERE stream_id IN ('bad-1', 'nobody-1', '')").Scan(&n))
		require.Zero(t, n)
		var version int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM es.stream_info('bad-1')").Scan(&version))
		require.Equal(t, int64(2), version)

		// The same from psql, as a user would type it.
		out, err := psql(t, ctx, connString, "-c", "SELECT es.save_snapshot('bad-1', 9, 1, '\\x80')")
		require.Error(t, err)
		require.Contains(t, out, "beyond the version 2 of stream bad-1")
	})
}
