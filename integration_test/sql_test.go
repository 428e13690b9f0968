package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// These tests use the store the way a user without Go does: plain SQL text
// against a database migrated with the default schema name es.

// sqlEvent is a row of the read functions.
type sqlEvent struct {
	GlobalPosition int64
	TransactionID  uint64
	StreamID       string
	Version        int64
	EventType      string
}

func querySQLEvents(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string, args ...any) []sqlEvent {
	t.Helper()
	rows, err := conn.Query(ctx,
		"SELECT global_position, transaction_id, stream_id, version, event_type FROM "+sql, args...)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sqlEvent])
	require.NoError(t, err, sql)
	return events
}

func versionsOf(events []sqlEvent) []int64 {
	versions := make([]int64, len(events))
	for i, e := range events {
		versions[i] = e.Version
	}
	return versions
}

// requirePgError checks that err is a PostgreSQL error with the SQLSTATE
// code and returns it.
func requirePgError(t *testing.T, err error, code string, msgAndArgs ...any) *pgconn.PgError {
	t.Helper()
	var pg *pgconn.PgError
	ok := errors.As(err, &pg)
	require.True(t, ok, "want SQLSTATE %s, got %v %s", code, err, fmt.Sprint(msgAndArgs...))
	require.Equal(t, code, pg.Code, "%s: %s %s", pg.Message, pg.Detail, fmt.Sprint(msgAndArgs...))
	return pg
}

// detail decodes an error's DETAIL, which the es functions write as JSON.
func detail(t *testing.T, pg *pgconn.PgError) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(pg.Detail), &d), "DETAIL %q is not JSON", pg.Detail)
	return d
}

func TestRawSQL(t *testing.T) {
	t.Parallel()
	connString := migratedDatabase(t, testContext(t, testTimeout))

	t.Run("AppendAndRead", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)

		var version, first, last int64
		var txID uint64
		require.NoError(t, conn.QueryRow(ctx, `
			SELECT stream_version, first_version, last_position, transaction_id
			  FROM es.append('cart-1', 0,
			                 ARRAY[gen_random_uuid(), gen_random_uuid()],
			                 ARRAY['ItemAdded', 'ItemAdded'],
			                 ARRAY['\x81a16101'::bytea, '\x81a16102'::bytea],
			                 NULL)`).Scan(&version, &first, &last, &txID))
		require.Equal(t, int64(2), version)
		require.Equal(t, int64(1), first)
		require.NotZero(t, txID)

		require.NoError(t, conn.QueryRow(ctx,
			`SELECT stream_version FROM es.append_event('cart-1', 'CheckedOut', '\x80'::bytea, '\x80'::bytea, 2)`).
			Scan(&version))
		require.Equal(t, int64(3), version)
		// The shortest form: any version, a generated id, no metadata.
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT stream_version FROM es.append_event('cart-2', 'ItemAdded', '\x80')`).Scan(&version))
		require.Equal(t, int64(1), version)

		require.Equal(t, []int64{1, 2, 3}, versionsOf(querySQLEvents(t, ctx, conn, "es.read_stream('cart-1')")))
		require.Equal(t, []int64{2, 3}, versionsOf(querySQLEvents(t, ctx, conn, "es.read_stream('cart-1', 2)")))
		require.Equal(t, []int64{1}, versionsOf(querySQLEvents(t, ctx, conn, "es.read_stream('cart-1', 1, 1)")))
		require.Empty(t, querySQLEvents(t, ctx, conn, "es.read_stream('nobody-1')"))
		require.Equal(t, []int64{3, 2, 1}, versionsOf(querySQLEvents(t, ctx, conn, "es.read_stream_backward('cart-1')")))
		require.Equal(t, []int64{2}, versionsOf(querySQLEvents(t, ctx, conn, "es.read_stream_backward('cart-1', 2, 1)")))

		var metadata []byte
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT metadata FROM es.read_stream('cart-1', 3)").Scan(&metadata))
		require.Equal(t, []byte{0x80}, metadata)

		var streamVersion int64
		var exists bool
		var created, updated *time.Time
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT version, stream_exists, created_at, updated_at FROM es.stream_info('cart-1')").
			Scan(&streamVersion, &exists, &created, &updated))
		require.Equal(t, int64(3), streamVersion)
		require.True(t, exists)
		require.NotNil(t, created)
		require.False(t, updated.Before(*created))
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT version, stream_exists, created_at FROM es.stream_info('nobody-1')").
			Scan(&streamVersion, &exists, &created))
		require.Equal(t, int64(0), streamVersion)
		require.False(t, exists)
		require.Nil(t, created)

		// The global log, filtered to this test's category.
		var all []sqlEvent
		waitFor(t, ctx, "read_all returns the cart events", func() bool {
			all = querySQLEvents(t, ctx, conn, "es.read_all('0', 0, 1000, ARRAY['cart'])")
			return len(all) == 4
		})
		require.Equal(t, []string{"cart-1", "cart-1", "cart-1", "cart-2"},
			[]string{all[0].StreamID, all[1].StreamID, all[2].StreamID, all[3].StreamID})
		// Empty filter arrays mean "no filter", as in Go. (Other subtests
		// may append meanwhile: the later read may only be longer.)
		empty := querySQLEvents(t, ctx, conn, "es.read_all('0', 0, 100000, '{}', '{}')")
		unfiltered := querySQLEvents(t, ctx, conn, "es.read_all('0', 0, 100000, NULL, NULL)")
		require.GreaterOrEqual(t, len(empty), 4)
		require.GreaterOrEqual(t, len(unfiltered), len(empty))
		require.Equal(t, empty, unfiltered[:len(empty)])
		require.Equal(t, last, all[1].GlobalPosition)
		require.Equal(t, txID, all[0].TransactionID)
		after := querySQLEvents(t, ctx, conn, "es.read_all($1, $2, 1000, ARRAY['cart'])",
			all[1].TransactionID, all[1].GlobalPosition)
		require.Equal(t, all[2:], after)
		require.Len(t, querySQLEvents(t, ctx, conn, "es.read_all('0', 0, 2, ARRAY['cart'])"), 2)
		require.Equal(t, all[2:3], querySQLEvents(t, ctx, conn, "es.read_all('0', 0, 1000, ARRAY['cart'], ARRAY['CheckedOut'])"))
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		// A database of its own: it counts every event to prove that
		// failed calls write nothing, and the other subtests append to
		// theirs meanwhile.
		conn := connect(t, ctx, migratedDatabase(t, ctx))
		const storedID = "01900000-0000-7000-8000-000000000001"
		_, err := conn.Exec(ctx, `SELECT es.append_event('err-1', 'E', '\x80', NULL, 0, $1)`, storedID)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `SELECT es.append_event('err-1', 'E', '\x80', NULL, 1)`)
		require.NoError(t, err)
		countEvents := func() int {
			var n int
			require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM es.events").Scan(&n))
			return n
		}
		before := countEvents()

		for _, tc := range []struct {
			sql  string
			want map[string]any // JSON numbers decode as float64
		}{
			{`es.append_event('err-1', 'E', '\x80', NULL, 5)`, map[string]any{"stream_id": "err-1", "expected": 5.0, "actual": 2.0}},
			{`es.append_event('err-1', 'E', '\x80', NULL, 0)`, map[string]any{"stream_id": "err-1", "expected": 0.0, "actual": 2.0}},
			{`es.append_event('err-2', 'E', '\x80', NULL, -1)`, map[string]any{"stream_id": "err-2", "expected": -1.0, "actual": 0.0}},
			{`es.append_event('err-2', 'E', '\x80', NULL, 3)`, map[string]any{"stream_id": "err-2", "expected": 3.0, "actual": 0.0}},
			{`es.append('err-1', 1, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY['\x80'::bytea])`, map[string]any{"stream_id": "err-1", "expected": 1.0, "actual": 2.0}},
		} {
			_, err := conn.Exec(ctx, "SELECT * FROM "+tc.sql)
			pg := requirePgError(t, err, "PE001", tc.sql)
			require.Equal(t, tc.want, detail(t, pg), tc.sql)
		}

		for _, sql := range []string{
			`es.append_event('err-3', 'E', '\x80', NULL, NULL, '` + storedID + `')`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid(), '` + storedID + `'::uuid], ARRAY['E', 'E'], ARRAY['\x80'::bytea, '\x80'])`,
		} {
			_, err := conn.Exec(ctx, "SELECT * FROM "+sql)
			pg := requirePgError(t, err, "PE002", sql)
			d := detail(t, pg)
			require.Contains(t, d, "stream_id", sql)
			require.Equal(t, "err-1", d["stored_stream_id"], sql)
		}

		for _, sql := range []string{
			`es.append_event('', 'E', '\x80')`,
			`es.append_event(NULL, 'E', '\x80')`,
			`es.append_event(repeat('x', 1001), 'E', '\x80')`,
			`es.append_event('err-1', '', '\x80')`,
			`es.append_event('err-1', NULL, '\x80')`,
			`es.append_event('err-1', 'E', NULL)`,
			`es.append_event('err-1', 'E', '\x80', NULL, -2)`,
			`es.append_event('err-1', 'E', '\x80', NULL, NULL, NULL)`,
			`es.append('err-1', NULL, ARRAY[]::uuid[], ARRAY[]::text[], ARRAY[]::bytea[])`,
			`es.append('err-1', NULL, NULL, NULL, NULL)`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['E'], ARRAY['\x80'::bytea, '\x80'])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY['\x80'::bytea, '\x80'])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY['\x80'::bytea], ARRAY['\x80'::bytea, '\x80'])`,
			`es.append('err-1', NULL, ARRAY['` + storedID + `'::uuid, '` + storedID + `'], ARRAY['E', 'E'], ARRAY['\x80'::bytea, '\x80'])`,
			// Arrays not indexed from 1, or not one-dimensional.
			`es.append('err-1', NULL, '[0:0]={` + storedID + `}'::uuid[], ARRAY['E'], ARRAY['\x80'::bytea])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], '[2:2]={E}'::text[], ARRAY['\x80'::bytea])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY['E'], '[0:0]={"\\x80"}'::bytea[])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY['\x80'::bytea], '[0:0]={"\\x81a161"}'::bytea[])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY[ARRAY['E']], ARRAY['\x80'::bytea])`,
			`es.append('err-1', NULL, ARRAY[gen_random_uuid()], ARRAY['E'], ARRAY[ARRAY['\x80'::bytea]])`,
			`es.read_stream('err-1', 1, -1)`,
			`es.read_stream_backward('err-1', NULL, -1)`,
			`es.read_all('0', 0, -1)`,
		} {
			_, err := conn.Exec(ctx, "SELECT * FROM "+sql)
			pg := requirePgError(t, err, "PE003", sql)
			require.Contains(t, detail(t, pg), "argument", sql)
		}

		require.Equal(t, before, countEvents(), "a failed call wrote something")
	})

	t.Run("EventsAreImmutable", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)
		_, err := conn.Exec(ctx, `SELECT es.append_event('immutable-1', 'E', '\x80')`)
		require.NoError(t, err)

		for _, sql := range []string{
			"UPDATE es.events SET event_type = 'Changed' WHERE stream_id = 'immutable-1'",
			"UPDATE es.events SET event_type = 'Changed' WHERE false",
			"DELETE FROM es.events WHERE stream_id = 'immutable-1'",
			"DELETE FROM es.events",
			"TRUNCATE es.events",
			"TRUNCATE es.events CASCADE",
		} {
			_, err := conn.Exec(ctx, sql)
			requirePgError(t, err, "PE005", sql)
		}
		var eventType string
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT event_type FROM es.read_stream('immutable-1')").Scan(&eventType))
		require.Equal(t, "E", eventType)
	})

	// The read functions are prepared once per connection (pgx, PREPARE)
	// and from the sixth execution on PostgreSQL may use a generic plan.
	t.Run("GenericPlans", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		conn := connect(t, ctx, connString)
		_, err := conn.Exec(ctx, `SELECT es.append_event('plan-1', 'E', '\x80')`)
		require.NoError(t, err)

		for i := range 8 {
			var n int
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT count(*) FROM es.read_all($1, $2, $3, $4)", uint64(0), int64(0), 1000, []string{"plan"}).Scan(&n),
				"execution %d of read_all", i+1)
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT count(*) FROM es.read_stream($1, $2, $3)", "plan-1", int64(1), 10).Scan(&n),
				"execution %d of read_stream", i+1)
			require.Equal(t, 1, n)
			require.NoError(t, conn.QueryRow(ctx,
				"SELECT count(*) FROM es.read_stream_backward($1, $2, $3)", "plan-1", nil, 10).Scan(&n),
				"execution %d of read_stream_backward", i+1)
			require.Equal(t, 1, n)
		}

		_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
		require.NoError(t, err)
		for _, sql := range []string{
			"PREPARE generic_read_all(xid8, bigint, int) AS SELECT * FROM es.read_all($1, $2, $3)",
			"EXECUTE generic_read_all('0', 0, 10)",
			"PREPARE generic_read_stream(text, bigint, int) AS SELECT * FROM es.read_stream($1, $2, $3)",
			"EXECUTE generic_read_stream('plan-1', 1, 10)",
			"PREPARE generic_read_back(text, bigint, int) AS SELECT * FROM es.read_stream_backward($1, $2, $3)",
			"EXECUTE generic_read_back('plan-1', NULL, 10)",
		} {
			_, err := conn.Exec(ctx, sql)
			require.NoError(t, err, sql)
		}
		// A negative count still fails with the es error under a generic plan.
		_, err = conn.Exec(ctx, "EXECUTE generic_read_stream('plan-1', 1, -1)")
		requirePgError(t, err, "PE003")
	})

	t.Run("Psql", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, testTimeout)
		out, err := psql(t, ctx, connString, "-At",
			"-c", `SELECT stream_version FROM es.append_event('psql-1', 'Created', '\x80')`,
			"-c", `SELECT stream_version FROM es.append_event('psql-1', 'Renamed', '\x80', NULL, 1)`,
			"-c", `SELECT string_agg(event_type, ',' ORDER BY version) FROM es.read_stream('psql-1')`,
			"-c", `SELECT version FROM es.stream_info('psql-1')`,
		)
		require.NoError(t, err, out)
		require.Equal(t, "1\n2\nCreated,Renamed\n2\n", out)

		out, err = psql(t, ctx, connString, "-At", "-v", "VERBOSITY=verbose",
			"-c", `SELECT stream_version FROM es.append_event('psql-1', 'Renamed', '\x80', NULL, 1)`)
		require.Error(t, err, out)
		require.Contains(t, out, "ERROR:  PE001:")
		_, detailLine, ok := strings.Cut(out, "\nDETAIL:  ")
		require.True(t, ok, out)
		detailLine, _, _ = strings.Cut(detailLine, "\n")
		var d map[string]any
		require.NoError(t, json.Unmarshal([]byte(detailLine), &d), out)
		require.Equal(t, map[string]any{"stream_id": "psql-1", "expected": 1.0, "actual": 2.0}, d)

		out, err = psql(t, ctx, connString, "-At", "-v", "VERBOSITY=verbose", "-c", "DELETE FROM es.events")
		require.Error(t, err, out)
		require.Contains(t, out, "ERROR:  PE005:")
		require.True(t, strings.Contains(out, "immutable"), out)
	})
}
