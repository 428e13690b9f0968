package integration_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// UserCreated under one name: v1 has "email", v2 "contact_email".
type userCreatedV1 struct {
	Email string `msgpack:"email"`
}

type userCreatedV2 struct {
	ContactEmail string `msgpack:"contact_email"`
}

// previousEventFunctions are the event-row functions as es released them
// before schema versions: the same arguments, rows without schema_version.
// Installing the code package must replace them.
var previousEventFunctions = []string{
	`read_stream(p_stream_id text, p_from_version bigint DEFAULT 1, p_max_count int DEFAULT NULL)`,
	`read_stream_backward(p_stream_id text, p_from_version bigint DEFAULT NULL, p_max_count int DEFAULT NULL)`,
	`read_all(p_after_transaction_id xid8 DEFAULT '0', p_after_position bigint DEFAULT 0, p_max_count int DEFAULT 1000,
	          p_categories text[] DEFAULT NULL, p_event_types text[] DEFAULT NULL)`,
	`read_partition(p_after_transaction_id xid8, p_after_position bigint, p_max_count int, p_partition int, p_partitions int,
	                p_categories text[] DEFAULT NULL, p_event_types text[] DEFAULT NULL)`,
	`read_partitions(p_after_transaction_id xid8, p_after_position bigint, p_max_count int, p_partition_set int[], p_partitions int,
	                 p_categories text[] DEFAULT NULL, p_event_types text[] DEFAULT NULL)`,
	`load(p_stream_id text, p_snapshot_schema_version int)`,
}

const previousEventRow = `global_position bigint, transaction_id xid8, stream_id text, version bigint, event_id uuid,
	event_type text, data bytea, metadata bytea, recorded_at timestamptz`

// installPrevious makes schema es (at migration 005) what the previous es
// version installed, as far as events go: its append and append_event
// (testdata/previous/append_005.sql, verbatim) instead of the current
// ones, and its event-row functions' result shape.
func installPrevious(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	t.Helper()
	src, err := os.ReadFile(repoPath(t, "integration_test/testdata/previous/append_005.sql"))
	require.NoError(t, err)
	previous := strings.ReplaceAll(string(src), "{{ $s }}", "es")
	require.NotContains(t, previous, "{{")

	_, err = conn.Exec(ctx, `
		DROP FUNCTION es.append(text, bigint, uuid[], text[], bytea[], bytea[], int[]),
		              es.append(text, bigint, uuid[], text[], bytea[], bytea[], int, bytea, int[]),
		              es.append_json(text, text, jsonb, jsonb, bigint, uuid, int),
		              es.append_event(text, text, bytea, bytea, bigint, uuid, int)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, previous)
	require.NoError(t, err)

	for _, fn := range previousEventFunctions {
		name := fn[:strings.IndexByte(fn, '(')]
		row := previousEventRow
		if name == "load" {
			row += ", snapshot_schema_version int, snapshot_state bytea"
		}
		var nulls []string
		for _, col := range strings.Split(row, ",") {
			nulls = append(nulls, "NULL::"+strings.Fields(col)[1])
		}
		_, err := conn.Exec(ctx, "DROP FUNCTION es."+name)
		require.NoError(t, err, name)
		_, err = conn.Exec(ctx, "CREATE FUNCTION es."+fn+" RETURNS TABLE ("+row+") LANGUAGE sql STABLE AS 'SELECT "+
			strings.Join(nulls, ", ")+" WHERE false'")
		require.NoError(t, err, name)
	}
}

// Events written by the previous es version — its table shape (no
// schema_version column) and its SQL functions, called the ways its users
// called them — read as version 1 after the upgrade and decode through the
// upcasters; the upgrade rewrites neither the rows nor the table, and the
// old calls keep working next to the new arguments.
func TestSchemaVersionsUpgradeFromPrevious(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	connString := pgtest.NewDatabase(t)
	conn := connect(t, ctx, connString)
	res, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{TargetVersion: 5})
	require.NoError(t, err)
	require.Equal(t, int32(5), res.ToVersion)
	var hasColumn bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_attribute
		WHERE attrelid = 'es.events'::regclass AND attname = 'schema_version' AND NOT attisdropped)`).Scan(&hasColumn))
	require.False(t, hasColumn, "migration 005's table")
	var view *string
	require.NoError(t, conn.QueryRow(ctx, `SELECT to_regclass('es.events_view')::text`).Scan(&view))
	require.Nil(t, view, "events_view needs the column: not created on 005's table")
	installPrevious(t, ctx, conn)

	old := es.NewRegistry()
	require.NoError(t, es.Register[userCreatedV1](old, "UserCreated"))
	body := func(email string) []byte {
		_, data, err := old.Encode(userCreatedV1{Email: email})
		require.NoError(t, err)
		return data
	}
	// The previous pgstore's call (six parameters), a hand-written batch and
	// a hand-written append_event.
	_, err = conn.Exec(ctx, "SELECT stream_version FROM es.append($1, $2, $3, $4, $5, $6)",
		"user-1", int64(0), []uuid.UUID{uuid.New()}, []string{"UserCreated"}, [][]byte{body("a@example.com")}, nil)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT * FROM es.append('user-1', 1, ARRAY[gen_random_uuid(), gen_random_uuid()],
		ARRAY['UserCreated', 'UserCreated'], ARRAY[$1, $2]::bytea[], NULL)`, body("b@example.com"), body("c@example.com"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT * FROM es.append_event('user-1', 'UserCreated', $1)`, body("d@example.com"))
	require.NoError(t, err)
	var filenode uint32
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_relation_filenode('es.events')`).Scan(&filenode))

	res, err = pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	require.Equal(t, int32(5), res.FromVersion)
	require.Greater(t, res.ToVersion, int32(5))
	var after uint32
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_relation_filenode('es.events')`).Scan(&after))
	require.Equal(t, filenode, after, "adding the column does not rewrite the table")
	for _, fn := range previousEventFunctions {
		name := fn[:strings.IndexByte(fn, '(')]
		var args []string
		require.NoError(t, conn.QueryRow(ctx, `SELECT proargnames FROM pg_proc WHERE oid = to_regproc('es.`+name+`')`).Scan(&args))
		require.Contains(t, args, "schema_version", "%s returns it after the upgrade", name)
	}

	// The calls of the previous version work as they did, and store
	// version 1; the new arguments store other versions.
	_, err = conn.Exec(ctx, "SELECT stream_version FROM es.append($1, $2, $3, $4, $5, $6)",
		"user-1", int64(4), []uuid.UUID{uuid.New()}, []string{"UserCreated"}, [][]byte{body("e@example.com")}, nil)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT * FROM es.append_event('user-1', 'UserCreated', $1, NULL, 5)`, body("f@example.com"))
	require.NoError(t, err)
	v2 := func(email string) []byte {
		r := es.NewRegistry()
		require.NoError(t, es.RegisterWith[userCreatedV2](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 2}))
		_, data, err := r.Encode(userCreatedV2{ContactEmail: email})
		require.NoError(t, err)
		return data
	}
	_, err = conn.Exec(ctx, `SELECT * FROM es.append_event('user-1', 'UserCreated', $1, p_schema_version => 2)`, v2("g@example.com"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT * FROM es.append('user-1', NULL, ARRAY[gen_random_uuid(), gen_random_uuid()],
		ARRAY['UserCreated', 'UserCreated'], ARRAY[$1, $2]::bytea[], NULL, ARRAY[1, 2])`, body("h@example.com"), v2("i@example.com"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SELECT * FROM es.append_json('user-1', 'UserCreated', '{"contact_email": "j@example.com"}',
		p_schema_version => 2)`)
	require.NoError(t, err)
	wantVersions := []int{1, 1, 1, 1, 1, 1, 2, 1, 2, 2}
	wantEmails := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}

	// SQL sees the versions: the table, the view, the read functions. (The
	// global log shows an event once no transaction of the cluster that
	// could precede it runs: other tests run.)
	waitFor(t, ctx, "the events visible in read_all", func() bool {
		var n int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM es.read_all('0', 0, NULL)`).Scan(&n))
		return n == len(wantVersions)
	})
	for _, q := range []string{
		`SELECT schema_version FROM es.events WHERE stream_id = 'user-1' ORDER BY version`,
		`SELECT schema_version FROM es.events_view WHERE stream_id = 'user-1' ORDER BY version`,
		`SELECT schema_version FROM es.read_stream('user-1')`,
		`SELECT schema_version FROM es.read_stream_backward('user-1') ORDER BY version`,
		`SELECT schema_version FROM es.read_all('0', 0, NULL)`,
		`SELECT schema_version FROM es.read_partition('0', 0, NULL, es.stream_partition('user-1', 3), 3)`,
		`SELECT schema_version FROM es.load('user-1', 1)`,
	} {
		rows, err := conn.Query(ctx, q)
		require.NoError(t, err, q)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		require.NoError(t, err, q)
		want := make([]int32, len(wantVersions))
		for i, v := range wantVersions {
			want[i] = int32(v)
		}
		require.Equal(t, want, got, q)
	}
	var email string
	require.NoError(t, conn.QueryRow(ctx, `SELECT data->>'email' FROM es.events_view
		WHERE stream_id = 'user-1' AND version = 1 AND schema_version = 1`).Scan(&email))
	require.Equal(t, "a@example.com", email, "old rows are stored as they were written")

	// Go reads them at their versions and upcasts version 1.
	pool, err := pgxpool.New(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, nil)
	require.NoError(t, err)
	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[userCreatedV2](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 2}))
	require.NoError(t, r.RegisterUpcaster("UserCreated", func(m map[string]any) (string, map[string]any, error) {
		m["contact_email"] = m["email"]
		delete(m, "email")
		return "UserCreated", m, nil
	}))
	var versions []int
	var emails []string
	for e, err := range store.ReadStream(ctx, "user-1", nil) {
		require.NoError(t, err)
		versions = append(versions, e.SchemaVersion)
		v, err := r.Decode(e)
		require.NoError(t, err, "event %d", e.Version)
		emails = append(emails, strings.TrimSuffix(v.(userCreatedV2).ContactEmail, "@example.com"))
	}
	require.Equal(t, wantVersions, versions)
	require.Equal(t, wantEmails, emails)

	// A new event from Go is stored at the registered version.
	ne, err := r.NewEvent(userCreatedV2{ContactEmail: "k@example.com"}, nil)
	require.NoError(t, err)
	_, err = store.Append(ctx, "user-1", es.Exactly(10), []es.NewEvent{ne})
	require.NoError(t, err)
	var last int32
	require.NoError(t, conn.QueryRow(ctx, `SELECT schema_version FROM es.read_stream_backward('user-1', NULL, 1)`).Scan(&last))
	require.Equal(t, int32(2), last)

	// A NULL version in append_event is version 1, like the default.
	var nullVersion int32
	_, err = conn.Exec(ctx, `SELECT * FROM es.append_event('user-2', 'UserCreated', '\x80', p_schema_version => NULL)`)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, `SELECT schema_version FROM es.read_stream('user-2')`).Scan(&nullVersion))
	require.Equal(t, int32(1), nullVersion)

	// The check on the column holds for every later row, even the owner's.
	_, err = conn.Exec(ctx, `INSERT INTO es.events (transaction_id, stream_id, version, event_id, event_type, data, schema_version)
		VALUES ('1', 'user-x', 1, gen_random_uuid(), 'T', '\x80', 0)`)
	requirePgError(t, err, "23514")
}
