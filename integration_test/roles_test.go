package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/schema"
)

// These tests cover the roles and privileges of schema/code/roles.sql:
// each schema gets <schema>_reader and <schema>_writer (pgtest.NewSchema
// names schemas t_<random>, so parallel tests have roles of their own).

// The privilege policy, by function name and number of arguments: what
// roles.sql must grant. A function of the schema that is in none of these
// lists fails the tests: classify it here and in roles.sql.
var (
	readerFunctions = []string{"read_stream/3", "read_stream_backward/3", "read_all/5", "stream_info/1", "load/2",
		"read_checkpoint/1", "log_end/0", "log_hidden/2", "log_behind/6", "log_horizon/0", "keys_behind/2",
		"msgpack_to_jsonb/1", "try_msgpack_to_jsonb/1", "msgpack_float_text/2", "invalid_argument/4",
		"jsonb_to_msgpack/1", "msgpack_str_header/1", "msgpack_number/1",
		"lease_live/2", "subscription_running/1", "subscription_health/2", "subscription_ids/0", "horizon_holders/0",
		"stream_partition/2", "read_partition/7", "read_partitions/7", "stream_visible_from/1", "log_max_key/0",
		"archive_partitions/0", "archive_bounds/0"}
	writerFunctions = []string{"append/7", "append_event/7", "append_json/7", "advance_checkpoint/5", "delete_checkpoint/1",
		"reset_checkpoint/3", "acquire_lease/3", "renew_lease/3", "release_lease/2", "report_status/7", "report_replica/4",
		"park_event/10", "parked_retried/6", "retry_parked/3", "skip_parked/3",
		"join_group/4", "leave_group/2", "take_partition/6", "soft_delete_stream/2", "restore_stream/1"}
	snapshotterFunctions = []string{"save_snapshot/4", "append/9"}
	// Remove events for good, or say what is removed: <schema>_admin only.
	adminFunctions = []string{"tombstone_stream/2", "truncate_stream/2", "set_stream_retention/3",
		"set_category_retention/3", "apply_retention/2", "archive_events/4", "detach_archive_partition/2"}
	// The keys of data subjects: <schema>_keyholder (granted to the
	// writers), and forgetting a subject: <schema>_forgetter (granted to
	// nobody).
	keyholderFunctions = []string{"subject_key/2"}
	forgetterFunctions = []string{"forget_subject/1"}
	// Called only by the owner's functions.
	ownerFunctions = []string{"raise_key_base/0", "store_snapshot/4", "check_lease_arguments/4",
		"check_checkpoint_position/3", "refuse_while_running/2", "holds_lease/2",
		"check_group_arguments/5", "group_partitions_held/2", "check_stream_argument/2", "lock_stream/3",
		"raise_stream_deleted/3", "raise_stream_not_found/2", "remove_events/3", "check_retention_rule/3", "note_removed/3",
		"cover_archive/2", "protect_archive_table/1", "archive_removal_lock/0"}
	triggerFunctions = []string{"refuse_event_change/0"}

	// The plain-SQL read functions PostgreSQL inlines into the calling
	// query: they cannot pin search_path (that would stop the inlining)
	// and qualify every name instead.
	inlinedFunctions = []string{"read_stream/3", "read_stream_backward/3", "read_all/5", "stream_info/1", "load/2",
		"read_checkpoint/1", "keys_behind/2", "stream_partition/2", "read_partition/7", "read_partitions/7"}
)

// schemaFunction is a function of the schema as pg_proc describes it.
type schemaFunction struct {
	Name      string
	NArgs     int
	Args      string // identity arguments
	SecDef    bool
	Config    []string
	Executors []string // roles with EXECUTE ("PUBLIC" for PUBLIC)
}

func (f schemaFunction) key() string { return fmt.Sprintf("%s/%d", f.Name, f.NArgs) }

// schemaFunctions lists the functions of schema, by name and arity.
func schemaFunctions(t *testing.T, ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) []schemaFunction {
	t.Helper()
	rows, err := db.Query(ctx, `
		SELECT p.proname, p.pronargs::int, pg_get_function_identity_arguments(p.oid), p.prosecdef,
		       coalesce(p.proconfig, '{}'),
		       coalesce((SELECT array_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END)
		                   FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
		                  WHERE a.privilege_type = 'EXECUTE'), '{}')
		  FROM pg_proc AS p
		 WHERE p.pronamespace = $1::regnamespace
		 ORDER BY 1, 2`, schema)
	require.NoError(t, err)
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[schemaFunction])
	require.NoError(t, err)
	require.NotEmpty(t, fns)
	for _, f := range fns {
		slices.Sort(f.Executors)
	}
	return fns
}

// migrationDefines reports whether the code package creates the function
// name, so that tests can require the functions that have landed.
func migrationDefines(t *testing.T, name string) bool {
	t.Helper()
	found := false
	code := schema.Code()
	require.NoError(t, fs.WalkDir(code, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(code, path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "FUNCTION {{ $s }}."+name+"(") {
			found = true
		}
		return nil
	}))
	return found
}

// roleCall is a call of one function with valid arguments.
type roleCall struct {
	key  string // name/number of arguments
	sql  string // %[1]s is the schema; stream order-1 exists at version 1
	code string // the SQLSTATE when the call itself succeeds ("" = none)
}

var roleCalls = []roleCall{
	{"read_stream/3", `SELECT count(*) FROM %[1]s.read_stream('order-1', 1, $1)`, ""},
	{"read_stream_backward/3", `SELECT count(*) FROM %[1]s.read_stream_backward('order-1', NULL, $1)`, ""},
	{"read_all/5", `SELECT count(*) FROM %[1]s.read_all('0', 0, $1)`, ""},
	{"stream_info/1", `SELECT version FROM %[1]s.stream_info('order-1')`, ""},
	{"load/2", `SELECT count(*) FROM %[1]s.load('order-1', 1)`, ""},
	{"read_checkpoint/1", `SELECT global_position FROM %[1]s.read_checkpoint('sub-1')`, ""},
	{"msgpack_to_jsonb/1", `SELECT %[1]s.msgpack_to_jsonb('\x81a161cb3ff8000000000000')`, ""},
	{"try_msgpack_to_jsonb/1", `SELECT %[1]s.try_msgpack_to_jsonb('\xc1')`, ""},
	{"msgpack_float_text/2", `SELECT %[1]s.msgpack_float_text(0.1, true)`, ""},
	{"invalid_argument/4", `SELECT %[1]s.invalid_argument('f', 'arg', 'is bad', 1)`, "PE003"},
	{"append/7", `SELECT stream_version FROM %[1]s.append('order-1', NULL, ARRAY[gen_random_uuid()], ARRAY['Noted'], ARRAY['\x80'::bytea])`, ""},
	{"append/9", `SELECT stream_version FROM %[1]s.append('order-1', NULL, ARRAY[gen_random_uuid()], ARRAY['Noted'], ARRAY['\x80'::bytea], NULL, 1, '\x80')`, ""},
	{"append_json/7", `SELECT stream_version FROM %[1]s.append_json('order-1', 'Noted', '{"k": 1}')`, ""},
	{"jsonb_to_msgpack/1", `SELECT %[1]s.jsonb_to_msgpack('{"k": [1, 0.5, "x"]}')`, ""},
	{"msgpack_str_header/1", `SELECT %[1]s.msgpack_str_header(3)`, ""},
	{"msgpack_number/1", `SELECT %[1]s.msgpack_number(1.5)`, ""},
	{"append_event/7", `SELECT stream_version FROM %[1]s.append_event('order-1', 'Noted', '\x80', '\x80')`, ""},
	{"save_snapshot/4", `SELECT %[1]s.save_snapshot('order-1', 1, 1, '\x80')`, ""},
	{"advance_checkpoint/5", `SELECT global_position FROM %[1]s.advance_checkpoint('sub-1', NULL, NULL, '1', 1)`, ""},
	{"delete_checkpoint/1", `SELECT %[1]s.delete_checkpoint('sub-1')`, ""},
	{"acquire_lease/3", `SELECT %[1]s.acquire_lease('sub-1', 'me', '1 minute')`, ""},
	{"renew_lease/3", `SELECT %[1]s.renew_lease('sub-1', 'me', '1 minute')`, ""},
	{"release_lease/2", `SELECT %[1]s.release_lease('sub-1', 'me')`, ""},
	{"log_end/0", `SELECT * FROM %[1]s.log_end()`, ""},
	{"log_hidden/2", `SELECT %[1]s.log_hidden('0', 0)`, ""},
	{"log_behind/6", `SELECT events FROM %[1]s.log_behind('0', 0, NULL, NULL, 1, 4)`, ""},
	{"stream_partition/2", `SELECT %[1]s.stream_partition('order-1', 8)`, ""},
	{"read_partition/7", `SELECT count(*) FROM %[1]s.read_partition('0', 0, $1, 0, 1)`, ""},
	{"read_partitions/7", `SELECT count(*) FROM %[1]s.read_partitions('0', 0, $1, '{0}', 1)`, ""},
	{"join_group/4", `SELECT members FROM %[1]s.join_group('grp', 'me', 4, '1 minute')`, ""},
	{"leave_group/2", `SELECT %[1]s.leave_group('grp', 'me')`, ""},
	{"take_partition/6", `SELECT %[1]s.take_partition('grp/0-of-4', 'grp', 0, 4, 'me', '1 minute')`, ""},
	{"check_group_arguments/5", `SELECT %[1]s.check_group_arguments('f', 'grp', 'me', 4, '1 minute')`, ""},
	{"group_partitions_held/2", `SELECT count(*) FROM %[1]s.group_partitions_held('grp', 4)`, ""},
	{"log_horizon/0", `SELECT %[1]s.log_horizon()`, ""},
	{"keys_behind/2", `SELECT %[1]s.keys_behind(0, '1')`, ""},
	{"raise_key_base/0", `SELECT %[1]s.raise_key_base()`, ""},
	{"store_snapshot/4", `SELECT %[1]s.store_snapshot('order-1', 1, 1, '\x80')`, ""},
	{"check_lease_arguments/4", `SELECT %[1]s.check_lease_arguments('f', 'sub-1', 'me', '1 minute')`, ""},
	{"lease_live/2", `SELECT %[1]s.lease_live(now(), pg_backend_pid())`, ""},
	{"subscription_running/1", `SELECT %[1]s.subscription_running('sub-1')`, ""},
	{"subscription_health/2", `SELECT health FROM %[1]s.subscription_health('sub-1')`, ""},
	{"subscription_ids/0", `SELECT count(*) FROM %[1]s.subscription_ids()`, ""},
	{"horizon_holders/0", `SELECT count(*) FROM %[1]s.horizon_holders()`, ""},
	{"reset_checkpoint/3", `SELECT global_position FROM %[1]s.reset_checkpoint('sub-1', '0', 0)`, ""},
	{"report_status/7", `SELECT %[1]s.report_status('sub-1', 'me', 'running', NULL, NULL, NULL, NULL)`, ""},
	{"report_replica/4", `SELECT %[1]s.report_replica('sub-1', 'me', 'primary', NULL)`, ""},
	{"park_event/10", `SELECT %[1]s.park_event('sub-1', 'me', '1', 1, 'order-1', gen_random_uuid(), 'Noted', false, 'boom', 1)`, ""},
	{"parked_retried/6", `SELECT %[1]s.parked_retried('sub-1', 'me', '1', 1, true, NULL)`, ""},
	{"retry_parked/3", `SELECT %[1]s.retry_parked('sub-1', '1', 1)`, ""},
	{"skip_parked/3", `SELECT %[1]s.skip_parked('sub-1', '1', 1)`, ""},
	{"check_checkpoint_position/3", `SELECT %[1]s.check_checkpoint_position('f', '0', 0)`, ""},
	{"refuse_while_running/2", `SELECT %[1]s.refuse_while_running('f', 'sub-1')`, ""},
	{"holds_lease/2", `SELECT %[1]s.holds_lease('sub-1', 'me')`, ""},
	{"refuse_event_change/0", `SELECT %[1]s.refuse_event_change()`, "0A000"},
	{"stream_visible_from/1", `SELECT %[1]s.stream_visible_from('order-1')`, ""},
	{"soft_delete_stream/2", `SELECT %[1]s.soft_delete_stream('order-1', 1)`, ""},
	{"restore_stream/1", `SELECT %[1]s.restore_stream('order-1')`, ""},
	{"tombstone_stream/2", `SELECT %[1]s.tombstone_stream('order-1', 1)`, ""},
	{"truncate_stream/2", `SELECT %[1]s.truncate_stream('order-1', 2)`, ""},
	{"set_stream_retention/3", `SELECT %[1]s.set_stream_retention('order-1', 10, NULL)`, ""},
	{"set_category_retention/3", `SELECT %[1]s.set_category_retention('order', NULL, '1 day')`, ""},
	{"apply_retention/2", `SELECT * FROM %[1]s.apply_retention(10, 10)`, ""},
	{"check_stream_argument/2", `SELECT %[1]s.check_stream_argument('f', 'order-1')`, ""},
	{"lock_stream/3", `SELECT * FROM %[1]s.lock_stream('f', 'order-1', NULL)`, ""},
	{"raise_stream_deleted/3", `SELECT %[1]s.raise_stream_deleted('f', 'order-1', false)`, "PE004"},
	{"raise_stream_not_found/2", `SELECT %[1]s.raise_stream_not_found('f', 'order-1')`, "PE011"},
	{"remove_events/3", `SELECT %[1]s.remove_events('order-1', 1, 1)`, ""},
	{"check_retention_rule/3", `SELECT %[1]s.check_retention_rule('f', 1, NULL)`, ""},
	{"log_max_key/0", `SELECT %[1]s.log_max_key()`, ""},
	{"archive_events/4", `SELECT %[1]s.archive_events('0', 0, 10, 5)`, ""},
	{"archive_partitions/0", `SELECT count(*) FROM %[1]s.archive_partitions()`, ""},
	{"archive_bounds/0", `SELECT count(*) FROM %[1]s.archive_bounds()`, ""},
	{"detach_archive_partition/2", `SELECT %[1]s.detach_archive_partition('events_archive_0', false)`, "PE003"},
	{"note_removed/3", `SELECT %[1]s.note_removed(NULL, '1', 1)`, ""},
	{"cover_archive/2", `SELECT %[1]s.cover_archive('0', 10)`, ""},
	{"archive_removal_lock/0", `SELECT %[1]s.archive_removal_lock()`, ""},
	{"protect_archive_table/1", `SELECT %[1]s.protect_archive_table('%[1]s.events_archive')`, ""},
	{"subject_key/2", `SELECT length(%[1]s.subject_key('customer-1', true))`, ""},
	{"forget_subject/1", `SELECT %[1]s.forget_subject('customer-2')`, ""},
}

// roleBundle is a fresh schema with order-1 at version 1, its role names
// and a superuser pool on its database.
type roleBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
	reader string
	writer string
	// snapshotter may store snapshots; it is granted to writer.
	snapshotter string
	// admin may remove events for good (tombstones, retention) and
	// archive them.
	admin string
	// keyholder may read and create subjects' keys (granted to writer);
	// forgetter may forget subjects (granted to nobody).
	keyholder, forgetter string
	fns                  []schemaFunction
}

func setupRoles(t *testing.T) *roleBundle {
	t.Helper()
	pool, schema := pgtest.NewSchema(t)
	b := &roleBundle{
		ctx: testContext(t, testTimeout), pool: pool, schema: schema,
		reader: schema + "_reader", writer: schema + "_writer", snapshotter: schema + "_snapshotter",
		admin:     schema + "_admin",
		keyholder: schema + "_keyholder", forgetter: schema + "_forgetter",
	}
	_, err := pool.Exec(b.ctx, fmt.Sprintf(`SELECT %s.append_event('order-1', 'Noted', '\x80')`, schema))
	require.NoError(t, err)
	b.fns = schemaFunctions(t, b.ctx, pool, schema)
	return b
}

// kindOf returns "read", "write", "snapshot", "admin", "keys", "forget",
// "owner" or "trigger" for a function key (name/number of arguments),
// failing the test for a function the policy does not classify.
func kindOf(t *testing.T, key string) string {
	t.Helper()
	switch {
	case slices.Contains(readerFunctions, key):
		return "read"
	case slices.Contains(writerFunctions, key):
		return "write"
	case slices.Contains(snapshotterFunctions, key):
		return "snapshot"
	case slices.Contains(adminFunctions, key):
		return "admin"
	case slices.Contains(keyholderFunctions, key):
		return "keys"
	case slices.Contains(forgetterFunctions, key):
		return "forget"
	case slices.Contains(ownerFunctions, key):
		return "owner"
	case slices.Contains(triggerFunctions, key):
		return "trigger"
	}
	require.Failf(t, "unclassified function", "function %s is in no list of roles_test.go: classify it there and in schema/code/roles.sql", key)
	return ""
}

// calls returns the call of every function of the schema, failing the test
// for a function that has none.
func (b *roleBundle) calls(t *testing.T) []roleCall {
	t.Helper()
	var out []roleCall
	for _, f := range b.fns {
		i := slices.IndexFunc(roleCalls, func(c roleCall) bool { return c.key == f.key() })
		require.GreaterOrEqual(t, i, 0, "no roleCall for %s(%s): add one", f.Name, f.Args)
		out = append(out, roleCalls[i])
	}
	return out
}

// asRole runs sql as role (SET LOCAL ROLE on the superuser pool, with the
// given extra settings) in a transaction it rolls back, reading every row,
// and returns the error.
func (b *roleBundle) asRole(role, sql string, settings string, args ...any) error {
	tx, err := b.pool.Begin(b.ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(b.ctx)) }()
	if role != "" {
		if _, err := tx.Exec(b.ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
			return err
		}
	}
	if settings != "" {
		if _, err := tx.Exec(b.ctx, settings); err != nil {
			return err
		}
	}
	rows, err := tx.Query(b.ctx, fmt.Sprintf(sql, b.schema), args...)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	return rows.Err()
}

// requireCode checks that err is nil (code "") or has the SQLSTATE code.
func requireCode(t *testing.T, err error, code string, msgAndArgs ...any) {
	t.Helper()
	if code == "" {
		require.NoError(t, err, msgAndArgs...)
		return
	}
	requirePgError(t, err, code, msgAndArgs...)
}

// keyReads are reads of the subjects' keys: nobody but the owner may.
var keyReads = []string{
	`SELECT count(*) FROM %[1]s.subject_keys`,
	`SELECT key FROM %[1]s.subject_keys`,
}

// tableWrites are statements that write to the tables directly.
var tableWrites = []string{
	`INSERT INTO %[1]s.events (transaction_id, stream_id, version, event_id, event_type, data) VALUES ('1', 'order-1', 2, gen_random_uuid(), 'Noted', '\x80')`,
	`UPDATE %[1]s.events SET event_type = 'Changed'`,
	`DELETE FROM %[1]s.events`,
	`TRUNCATE %[1]s.events`,
	`INSERT INTO %[1]s.streams (stream_id, version, transaction_id) VALUES ('order-2', 0, '1')`,
	`UPDATE %[1]s.streams SET version = 7`,
	`DELETE FROM %[1]s.streams`,
	`TRUNCATE %[1]s.streams`,
	`INSERT INTO %[1]s.snapshots (stream_id, version, schema_version, state) VALUES ('order-1', 1, 1, '\x80')`,
	`UPDATE %[1]s.snapshots SET version = 7`,
	`DELETE FROM %[1]s.snapshots`,
	`TRUNCATE %[1]s.snapshots`,
	`INSERT INTO %[1]s.checkpoints (subscription_id) VALUES ('sub-1')`,
	`UPDATE %[1]s.checkpoints SET global_position = 7`,
	`DELETE FROM %[1]s.checkpoints`,
	`TRUNCATE %[1]s.checkpoints`,
	`INSERT INTO %[1]s.events_archive (global_position, transaction_id, stream_id, version, event_id, event_type, data, recorded_at) VALUES (9, '9', 'order-1', 9, gen_random_uuid(), 'Noted', '\x80', now())`,
	`UPDATE %[1]s.events_archive SET event_type = 'Changed'`,
	`DELETE FROM %[1]s.events_archive`,
	`TRUNCATE %[1]s.events_archive`,
	`UPDATE %[1]s.subject_keys SET key = NULL`,
	`DELETE FROM %[1]s.subject_keys`,
	`INSERT INTO %[1]s.subject_erasures (subject_id, forgotten_by, had_key) VALUES ('customer-9', 'me', false)`,
	`DELETE FROM %[1]s.subject_erasures`,
}

// viewWrites write through the view of the events: refused for everyone,
// the owner included, as a view over both the live events and the
// archive is not updatable (SQLSTATE 55000).
var viewWrites = []string{
	`UPDATE %[1]s.events_view SET event_type = 'Changed'`,
	`DELETE FROM %[1]s.events_view`,
	`UPDATE %[1]s.all_events SET event_type = 'Changed'`,
	`DELETE FROM %[1]s.all_events WHERE stream_id = 'order-1'`,
	`INSERT INTO %[1]s.all_events (global_position, transaction_id, stream_id, version, event_id, event_type, data, recorded_at) VALUES (9, '9', 'order-1', 9, gen_random_uuid(), 'Noted', '\x80', now())`,
}

var tableReads = []string{
	`SELECT count(*) FROM %[1]s.events`,
	`SELECT count(*) FROM %[1]s.streams`,
	`SELECT count(*) FROM %[1]s.snapshots`,
	`SELECT count(*) FROM %[1]s.checkpoints`,
	`SELECT data, metadata, correlation_id FROM %[1]s.events_view`,
	`SELECT * FROM %[1]s.streams_view`,
	`SELECT count(*) FROM %[1]s.subject_erasures`,
}

func TestRolesPrivileges(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	calls := b.calls(t)

	// Every function with valid arguments, as each role; the read
	// functions' max_count is a parameter, so that the plan keeps the
	// invalid_argument branch.
	// The privilege matrix: who may call what. The writer holds the
	// snapshotter and keyholder roles; nobody holds the forgetter's nor
	// the admin's.
	for _, role := range []string{b.reader, b.writer, b.admin, b.keyholder, b.forgetter} {
		for _, c := range calls {
			want := c.code
			switch kind := kindOf(t, c.key); {
			case kind == "trigger", kind == "owner":
				want = "42501"
			case role == b.reader && kind != "read",
				role == b.writer && (kind == "forget" || kind == "admin"),
				role == b.admin && kind != "admin",
				role == b.keyholder && kind != "keys",
				role == b.forgetter && kind != "forget":
				want = "42501"
			}
			var args []any
			if strings.Contains(c.sql, "$1") {
				args = append(args, 10)
			}
			for _, settings := range []string{"", "SET LOCAL search_path TO ''"} {
				requireCode(t, b.asRole(role, c.sql, settings, args...), want, fmt.Sprintf("%s as %s (%s)", c.key, role, settings))
			}
		}
		for _, q := range append(slices.Clone(keyReads), tableWrites...) {
			requirePgError(t, b.asRole(role, q, ""), "42501", fmt.Sprintf("%s as %s", q, role))
			// The flag the removing functions set gives no privilege.
			requirePgError(t, b.asRole(role, q, "SET LOCAL es.removing_events = on"), "42501", fmt.Sprintf("%s as %s, flag set", q, role))
		}
		for _, q := range viewWrites {
			requirePgError(t, b.asRole(role, q, ""), "55000", fmt.Sprintf("%s as %s", q, role))
		}
		if role == b.keyholder || role == b.forgetter || role == b.admin {
			// Nothing but their functions: no table, no view.
			for _, q := range tableReads {
				requirePgError(t, b.asRole(role, q, ""), "42501", fmt.Sprintf("%s as %s", q, role))
			}
			continue
		}
		// A bad argument is reported as such, not as a missing privilege
		// on the helper that reports it.
		requirePgError(t, b.asRole(role, `SELECT * FROM %[1]s.read_stream('order-1', 1, $1)`, "", -1), "PE003", role)
		for _, q := range tableReads {
			require.NoError(t, b.asRole(role, q, ""), "%s as %s", q, role)
		}
	}

	// The owner may write to the tables, but events stay immutable, also
	// through the view, also with an empty search_path (the trigger
	// function's body is schema-qualified).
	for _, settings := range []string{"", "SET LOCAL search_path TO ''"} {
		for _, q := range []string{
			`UPDATE %[1]s.events SET event_type = 'Changed'`,
			`DELETE FROM %[1]s.events`,
			`TRUNCATE %[1]s.events`,
			`UPDATE %[1]s.events_archive SET event_type = 'Changed'`,
			`DELETE FROM %[1]s.events_archive`,
			`TRUNCATE %[1]s.events_archive`,
		} {
			requirePgError(t, b.asRole("", q, settings), "PE005", q)
		}
		for _, q := range viewWrites {
			requirePgError(t, b.asRole("", q, settings), "55000", q)
		}
		require.NoError(t, b.asRole("", `UPDATE %[1]s.streams SET updated_at = now()`, settings))
		requirePgError(t, b.asRole("", `SELECT %[1]s.refuse_event_change()`, settings), "0A000")
		// With the flag the removing functions set, the owner may DELETE
		// (nothing else), as those functions do.
		flag := settings + "; SET LOCAL es.removing_events = on"
		if settings == "" {
			flag = "SET LOCAL es.removing_events = on"
		}
		require.NoError(t, b.asRole("", `DELETE FROM %[1]s.events WHERE stream_id = 'order-1'`, flag))
		for _, q := range []string{`UPDATE %[1]s.events SET event_type = 'Changed'`, `TRUNCATE %[1]s.events`} {
			requirePgError(t, b.asRole("", q, flag), "PE005", q)
		}
	}

	// Nothing above was written.
	var events, streams int64
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		`SELECT (SELECT count(*) FROM %[1]s.events), (SELECT count(*) FROM %[1]s.streams)`, b.schema)).Scan(&events, &streams))
	require.Equal(t, []int64{1, 1}, []int64{events, streams})
}

// createLogin creates a LOGIN role name (dropped at cleanup), member of
// the given roles, and returns a connection config for it.
func createLogin(t *testing.T, ctx context.Context, pool *pgxpool.Pool, name string, memberOf ...string) *pgx.ConnConfig {
	t.Helper()
	var pw [12]byte
	_, err := rand.Read(pw[:])
	require.NoError(t, err)
	password := hex.EncodeToString(pw[:])
	_, err = pool.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", pgx.Identifier{name}.Sanitize(), password))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		_, err := pool.Exec(ctx, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", pgx.Identifier{name}.Sanitize()))
		require.NoError(t, err)
	})
	for _, r := range memberOf {
		_, err = pool.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", pgx.Identifier{r}.Sanitize(), pgx.Identifier{name}.Sanitize()))
		require.NoError(t, err)
	}
	cfg, err := pgx.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	cfg.User = name
	cfg.Password = password
	return cfg
}

// loginPool opens a pool as the login of cfg, closed at cleanup.
func loginPool(t *testing.T, ctx context.Context, cfg *pgx.ConnConfig) *pgxpool.Pool {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig("")
	require.NoError(t, err)
	pcfg.ConnConfig = cfg
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var user string
	require.NoError(t, pool.QueryRow(ctx, "SELECT current_user").Scan(&user))
	require.Equal(t, cfg.User, user)
	return pool
}

func TestRolesLogins(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)

	t.Run("Writer", func(t *testing.T) {
		pool := loginPool(t, b.ctx, createLogin(t, b.ctx, b.pool, b.schema+"_app", b.writer))
		store, err := pgstore.New(pool, &pgstore.Config{Schema: b.schema})
		require.NoError(t, err)
		res, err := store.Append(b.ctx, "order-1", es.Exactly(1), []es.NewEvent{{Type: "Shipped", Data: []byte{0x80}}})
		require.NoError(t, err)
		require.Equal(t, int64(2), res.StreamVersion)
		_, err = store.Append(b.ctx, "order-1", es.Exactly(1), []es.NewEvent{{Type: "Shipped", Data: []byte{0x80}}})
		require.ErrorIs(t, err, es.ErrWrongVersion, "the append's own errors come through SECURITY DEFINER unchanged")
		info, err := store.StreamInfo(b.ctx, "order-1")
		require.NoError(t, err)
		require.Equal(t, int64(2), info.Version)
		var types []string
		for e, err := range store.ReadStream(b.ctx, "order-1", nil) {
			require.NoError(t, err)
			types = append(types, e.Type)
		}
		require.Equal(t, []string{"Noted", "Shipped"}, types)
		var viewType string
		require.NoError(t, pool.QueryRow(b.ctx, fmt.Sprintf(
			"SELECT event_type FROM %s.events_view WHERE stream_id = 'order-1' AND version = 2", b.schema)).Scan(&viewType))
		require.Equal(t, "Shipped", viewType)

		for _, q := range tableWrites {
			_, err := pool.Exec(b.ctx, fmt.Sprintf(q, b.schema))
			requirePgError(t, err, "42501", q)
		}
	})

	t.Run("Reader", func(t *testing.T) {
		pool := loginPool(t, b.ctx, createLogin(t, b.ctx, b.pool, b.schema+"_ro", b.reader))
		store, err := pgstore.New(pool, &pgstore.Config{Schema: b.schema})
		require.NoError(t, err)
		_, err = store.Append(b.ctx, "order-9", es.Any, []es.NewEvent{{Type: "Noted", Data: []byte{0x80}}})
		requirePgError(t, err, "42501")
		info, err := store.StreamInfo(b.ctx, "order-1")
		require.NoError(t, err)
		require.GreaterOrEqual(t, info.Version, int64(1))
		_, err = pool.Exec(b.ctx, fmt.Sprintf(`SELECT %s.append_event('order-9', 'Noted', '\x80')`, b.schema))
		requirePgError(t, err, "42501")
	})

	t.Run("Public", func(t *testing.T) {
		// A login with no role: refused at the schema. With USAGE on the
		// schema (as some administrators grant), refused at every
		// function: EXECUTE is revoked from PUBLIC.
		cfg := createLogin(t, b.ctx, b.pool, b.schema+"_nobody")
		pool := loginPool(t, b.ctx, cfg)
		for _, q := range append(slices.Clone(tableReads), `SELECT %[1]s.msgpack_to_jsonb('\x80')`) {
			_, err := pool.Exec(b.ctx, fmt.Sprintf(q, b.schema))
			pg := requirePgError(t, err, "42501", q)
			require.Contains(t, pg.Message, "schema", q)
		}
		_, err := b.pool.Exec(b.ctx, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", b.schema, pgx.Identifier{cfg.User}.Sanitize()))
		require.NoError(t, err)
		for _, c := range b.calls(t) {
			var args []any
			if strings.Contains(c.sql, "$1") {
				args = append(args, 10)
			}
			_, err := pool.Exec(b.ctx, fmt.Sprintf(c.sql, b.schema), args...)
			pg := requirePgError(t, err, "42501", c.key)
			require.Contains(t, pg.Message, "function", c.key)
		}
		for _, q := range append(slices.Clone(tableReads), tableWrites...) {
			_, err := pool.Exec(b.ctx, fmt.Sprintf(q, b.schema))
			requirePgError(t, err, "42501", q)
		}
	})
}

// TestRolesCatalog checks the grants in the catalogs: every function has
// EXECUTE for exactly the roles the policy gives it, every writing
// function is SECURITY DEFINER with a pinned search_path and no other is,
// the tables and views are readable by both roles and writable by the
// owner alone, and PUBLIC has nothing.
func TestRolesCatalog(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	var owner string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", b.schema).Scan(&owner))

	seen := map[string]bool{}
	for _, f := range b.fns {
		seen[f.Name] = true
		var want []string
		kind := kindOf(t, f.key())
		switch kind {
		case "read":
			want = []string{owner, b.reader, b.writer}
		case "write":
			want = []string{owner, b.writer}
		case "snapshot":
			want = []string{owner, b.snapshotter}
		case "admin":
			want = []string{owner, b.admin}
		case "keys":
			want = []string{owner, b.keyholder}
		case "forget":
			want = []string{owner, b.forgetter}
		case "owner", "trigger":
			want = []string{owner}
		}
		// The writing functions run as the owner; every function that
		// PostgreSQL does not inline pins search_path (the read functions
		// are inlined and qualify every name instead).
		require.Equal(t, kind == "write" || kind == "snapshot" || kind == "admin" || kind == "keys" || kind == "forget", f.SecDef,
			"SECURITY DEFINER on %s(%s)", f.Name, f.Args)
		if !slices.Contains(inlinedFunctions, f.key()) {
			require.Contains(t, f.Config, "search_path=pg_catalog, pg_temp", "%s(%s) must pin search_path", f.Name, f.Args)
		}
		slices.Sort(want)
		require.Equal(t, want, f.Executors, "EXECUTE on %s(%s)", f.Name, f.Args)
	}
	// The functions of the code package exist.
	for _, name := range []string{"append", "append_event", "read_stream", "read_stream_backward", "read_all", "stream_info",
		"msgpack_to_jsonb", "try_msgpack_to_jsonb", "save_snapshot", "load", "read_checkpoint", "advance_checkpoint",
		"acquire_lease", "log_horizon"} {
		if migrationDefines(t, name) {
			require.True(t, seen[name], "function %s is defined by the code package but not in schema %s", name, b.schema)
		}
	}
	// The set-returning inlined functions are planned as scans of the
	// tables, not as function scans (which would hold every row in memory).
	for _, q := range []string{
		`SELECT * FROM %[1]s.read_stream('order-1', 1, 10)`,
		`SELECT * FROM %[1]s.read_stream_backward('order-1', NULL, 10)`,
		`SELECT * FROM %[1]s.read_all('0', 0, 10)`,
		`SELECT * FROM %[1]s.stream_info('order-1')`,
		`SELECT * FROM %[1]s.load('order-1', 1)`,
		`SELECT * FROM %[1]s.read_checkpoint('sub-1')`,
	} {
		rows, err := b.pool.Query(b.ctx, "EXPLAIN "+fmt.Sprintf(q, b.schema))
		require.NoError(t, err)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.NotContains(t, strings.Join(plan, "\n"), "Function Scan on "+strings.SplitN(strings.SplitN(q, ".", 2)[1], "(", 2)[0],
			"%s is not inlined:\n%s", q, strings.Join(plan, "\n"))
	}

	// The writers store snapshots through the snapshotter role and use
	// the keys through the keyholder role; the forgetter and keyholder
	// roles are granted to no other role of the schema.
	for _, m := range []struct {
		member, role string
		want         bool
	}{
		{b.writer, b.snapshotter, true}, {b.writer, b.keyholder, true}, {b.writer, b.forgetter, false},
		{b.reader, b.keyholder, false}, {b.reader, b.forgetter, false}, {b.snapshotter, b.keyholder, false},
	} {
		var member bool
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", m.member, m.role).Scan(&member))
		require.Equal(t, m.want, member, "%s member of %s", m.member, m.role)
	}

	// Relations: SELECT for both roles, everything for the owner, nothing
	// for anyone else (sequences: nothing for anyone but the owner).
	rows, err := b.pool.Query(b.ctx, `
		SELECT c.relname, c.relkind::text, a.grantee::regrole::text, a.privilege_type
		  FROM pg_class AS c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
		 WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
		   AND c.relname <> 'schema_version'
		 ORDER BY 1, 3, 4`, b.schema)
	require.NoError(t, err)
	type grant struct{ Rel, Kind, Grantee, Privilege string }
	grants, err := pgx.CollectRows(rows, pgx.RowToStructByPos[grant])
	require.NoError(t, err)
	byRel := map[string][]string{}
	for _, g := range grants {
		if g.Grantee == owner {
			continue
		}
		byRel[g.Rel] = append(byRel[g.Rel], g.Grantee+":"+g.Privilege)
	}
	wantRead := []string{b.reader + ":SELECT", b.writer + ":SELECT"}
	slices.Sort(wantRead)
	for _, rel := range []string{"events", "streams", "snapshots", "checkpoints", "events_view", "streams_view",
		"transaction_key_base", "notify_token", "subscription_leases", "subscription_status", "subscriptions_view", "parked_events",
		"subscription_groups", "group_members", "subscription_partitions", "retention_policies",
		"events_archive", "all_events", "subject_erasures"} {
		got := byRel[rel]
		slices.Sort(got)
		require.Equal(t, wantRead, got, "grants on %s", rel)
		delete(byRel, rel)
	}
	require.Empty(t, byRel, "grants on other relations (subject_keys: none)")
	var columnGrants int
	require.NoError(t, b.pool.QueryRow(b.ctx, `
		SELECT count(*) FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
		 WHERE c.relnamespace = $1::regnamespace AND a.attacl IS NOT NULL`, b.schema).Scan(&columnGrants))
	require.Zero(t, columnGrants, "no column privileges")

	// The schema: USAGE for both roles, nothing for PUBLIC.
	rows, err = b.pool.Query(b.ctx, `
		SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END || ':' || a.privilege_type
		  FROM pg_namespace AS n, aclexplode(n.nspacl) AS a
		 WHERE n.nspname = $1 AND a.grantee <> n.nspowner ORDER BY 1`, b.schema)
	require.NoError(t, err)
	schemaGrants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	wantSchema := []string{b.admin + ":USAGE", b.reader + ":USAGE", b.snapshotter + ":USAGE", b.writer + ":USAGE",
		b.keyholder + ":USAGE", b.forgetter + ":USAGE"}
	slices.Sort(wantSchema)
	require.Equal(t, wantSchema, schemaGrants)

	// The roles cannot log in and are not superusers or role creators.
	rows, err = b.pool.Query(b.ctx, `
		SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls
		  FROM pg_roles WHERE rolname = ANY ($1) ORDER BY 1`, []string{b.reader, b.writer, b.snapshotter, b.admin, b.keyholder, b.forgetter})
	require.NoError(t, err)
	type roleAttrs struct {
		Name                                      string
		Login, Super, CreateRole, CreateDB, NoRLS bool
	}
	roles, err := pgx.CollectRows(rows, pgx.RowToStructByPos[roleAttrs])
	require.NoError(t, err)
	want := []roleAttrs{{Name: b.admin}, {Name: b.reader}, {Name: b.snapshotter}, {Name: b.writer}, {Name: b.keyholder}, {Name: b.forgetter}}
	slices.SortFunc(want, func(a, b roleAttrs) int { return strings.Compare(a.Name, b.Name) })
	require.Equal(t, want, roles)
}

// TestRolesWithoutCreateRole migrates as an owner that may create schemas
// but not roles: the migration stops at 008 with a hint, and succeeds once
// an administrator has created the roles. The SECURITY DEFINER functions
// then run as that (non-superuser) owner.
func TestRolesWithoutCreateRole(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	admin := pgtest.Pool(t)
	var rnd [6]byte
	_, err := rand.Read(rnd[:])
	require.NoError(t, err)
	schema := "t_" + hex.EncodeToString(rnd[:])
	reader, writer, snapshotter, adminRole := schema+"_reader", schema+"_writer", schema+"_snapshotter", schema+"_admin"
	keyholder, forgetter := schema+"_keyholder", schema+"_forgetter"

	ownerCfg := createLogin(t, ctx, admin, schema+"_owner")
	t.Cleanup(func() {
		// Before the owner's cleanup (cleanups run last in, first out).
		_, err := admin.Exec(context.Background(), fmt.Sprintf(
			"DROP SCHEMA IF EXISTS %s CASCADE; DROP ROLE IF EXISTS %s, %s, %s, %s, %s, %s", schema, reader, writer, snapshotter, adminRole, keyholder, forgetter))
		require.NoError(t, err)
	})
	var db string
	require.NoError(t, admin.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	_, err = admin.Exec(ctx, fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s",
		pgx.Identifier{db}.Sanitize(), pgx.Identifier{ownerCfg.User}.Sanitize()))
	require.NoError(t, err)

	owner, err := pgx.ConnectConfig(ctx, ownerCfg)
	require.NoError(t, err)
	defer owner.Close(context.Background())
	_, err = pgstore.Migrate(ctx, owner, &pgstore.MigrateOpts{Schema: schema})
	pg := requirePgError(t, err, "42501")
	require.Contains(t, pg.Message, "CREATEROLE")
	require.Contains(t, pg.Hint, "CREATE ROLE "+reader+" NOLOGIN")
	var roles int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2, $3, $4)", reader, writer, snapshotter, adminRole).Scan(&roles))
	require.Zero(t, roles)
	var fn *string
	require.NoError(t, admin.QueryRow(ctx, fmt.Sprintf("SELECT to_regproc('%s.append_event')::text", schema)).Scan(&fn))
	require.Nil(t, fn, "nothing is applied: the migration is one transaction")

	require.Contains(t, pg.Hint, "GRANT "+snapshotter+" TO "+writer)
	require.Contains(t, pg.Hint, "CREATE ROLE "+adminRole+" NOLOGIN")
	require.Contains(t, pg.Hint, "GRANT "+keyholder+" TO "+writer)
	require.Contains(t, pg.Hint, "CREATE ROLE "+forgetter+" NOLOGIN")
	_, err = admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %[1]s NOLOGIN; CREATE ROLE %[2]s NOLOGIN; CREATE ROLE %[3]s NOLOGIN; GRANT %[3]s TO %[2]s; "+
		"CREATE ROLE %[4]s NOLOGIN; GRANT %[4]s TO %[2]s; CREATE ROLE %[5]s NOLOGIN; CREATE ROLE %[6]s NOLOGIN",
		reader, writer, snapshotter, keyholder, forgetter, adminRole))
	require.NoError(t, err)
	_, err = pgstore.Migrate(ctx, owner, &pgstore.MigrateOpts{Schema: schema})
	require.NoError(t, err)

	// The writer appends through functions that run as the owner, and
	// cannot write to the table itself; the owner cannot change events.
	tx, err := admin.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, "SET LOCAL ROLE "+writer)
	require.NoError(t, err)
	var version int64
	require.NoError(t, tx.QueryRow(ctx, fmt.Sprintf(`SELECT stream_version FROM %s.append_event('order-1', 'Noted', '\x80')`, schema)).Scan(&version))
	require.Equal(t, int64(1), version)
	var tableOwner string
	require.NoError(t, tx.QueryRow(ctx, fmt.Sprintf(
		`SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = '%s.events'::regclass`, schema)).Scan(&tableOwner))
	require.Equal(t, ownerCfg.User, tableOwner)
	require.NoError(t, tx.Commit(ctx))

	_, err = owner.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.streams (stream_id, version, transaction_id) VALUES ('x-1', 0, '1')`, schema))
	require.NoError(t, err, "the owner may write to the tables")
	_, err = owner.Exec(ctx, fmt.Sprintf(`DELETE FROM %s.events`, schema))
	requirePgError(t, err, "PE005")
}

// TestRolesDown migrates down to 0 and up again: nothing of es is left in
// the schema, a role granted to a login is kept, an unused one is dropped,
// a role another database's installation uses is kept with its grants
// there, and migrating up again restores the same grants.
func TestRolesDown(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	createLogin(t, b.ctx, b.pool, b.schema+"_member", b.reader)

	conn, err := pgx.Connect(b.ctx, pgtest.ConnString(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	down := &pgstore.MigrateOpts{Schema: b.schema, Direction: pgstore.MigrateDown}
	res, err := pgstore.Migrate(b.ctx, conn, down)
	require.NoError(t, err)
	require.Zero(t, res.ToVersion)
	require.False(t, res.CodeInstalled)
	require.NotEmpty(t, res.Steps)

	exists := func(role string) bool {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n))
		return n == 1
	}
	require.True(t, exists(b.reader), "a role granted to a login is kept")
	require.False(t, exists(b.writer), "an unused role is dropped")
	require.False(t, exists(b.admin), "an unused role is dropped (migration 006)")
	require.False(t, exists(b.keyholder), "an unused role is dropped (migration 007)")
	require.False(t, exists(b.forgetter), "an unused role is dropped (migration 007)")
	var objects int
	require.NoError(t, b.pool.QueryRow(b.ctx, `
		SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace AND relname <> 'schema_version')
		     + (SELECT count(*) FROM pg_proc WHERE pronamespace = $1::regnamespace)`, b.schema).Scan(&objects))
	require.Zero(t, objects, "objects of es left in the schema after migrating down to 0")

	_, err = pgstore.Migrate(b.ctx, conn, &pgstore.MigrateOpts{Schema: b.schema})
	require.NoError(t, err)
	require.True(t, exists(b.writer))
	require.Equal(t, b.fns, schemaFunctions(t, b.ctx, b.pool, b.schema), "up again: the same grants")
	requirePgError(t, b.asRole(b.reader, `SELECT %[1]s.append_event('order-1', 'Noted', '\x80')`, ""), "42501")

	// Another database installs the same schema name: it shares the roles,
	// so migrating down here keeps them, and the other database's grants.
	other := connect(t, b.ctx, pgtest.NewDatabase(t))
	_, err = pgstore.Migrate(b.ctx, other, &pgstore.MigrateOpts{Schema: b.schema})
	require.NoError(t, err)
	_, err = pgstore.Migrate(b.ctx, conn, down)
	require.NoError(t, err)
	require.True(t, exists(b.writer), "a role another database uses is kept")
	require.True(t, exists(b.keyholder), "a role another database uses is kept (migration 007)")
	otherFns := schemaFunctions(t, b.ctx, other, b.schema)
	i := slices.IndexFunc(otherFns, func(f schemaFunction) bool { return f.Name == "append_event" })
	require.GreaterOrEqual(t, i, 0)
	require.Contains(t, otherFns[i].Executors, b.writer)
	require.True(t, otherFns[i].SecDef)
}

// TestRolesArchivePartitions: the archive's partitions (archive_events
// creates them) are as immutable as the archive and readable only through
// it; only the admin may detach the oldest, and the detached table is the
// owner's alone, also after the code package is installed again.
func TestRolesArchivePartitions(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	for range 5 { // a transaction, so a key, each
		_, err := b.pool.Exec(b.ctx, fmt.Sprintf(`SELECT %s.append_event('order-1', 'Noted', '\x80')`, b.schema))
		require.NoError(t, err)
	}
	// Every event but the last, in partitions of two; an archive step
	// moves only what no running transaction (another test's) may still
	// precede: polled, with a deadline.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := b.pool.Exec(b.ctx, fmt.Sprintf(`SELECT %s.archive_events('18446744073709551615', 9223372036854775807, 1000, 2)`, b.schema))
		require.NoError(t, err)
		var left int
		require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT count(*) FROM %s.events`, b.schema)).Scan(&left))
		if left == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d events left to archive", left)
		time.Sleep(10 * time.Millisecond)
	}
	rows, err := b.pool.Query(b.ctx, fmt.Sprintf(`SELECT partition_name FROM %s.archive_partitions()`, b.schema))
	require.NoError(t, err)
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(parts), 2)

	for _, part := range parts {
		for _, q := range []string{`UPDATE %[1]s.` + part + ` SET event_type = 'Changed'`,
			`DELETE FROM %[1]s.` + part, `TRUNCATE %[1]s.` + part} {
			requirePgError(t, b.asRole("", q, ""), "PE005", q)
		}
		for _, role := range []string{b.reader, b.writer, b.admin} {
			requirePgError(t, b.asRole(role, `SELECT count(*) FROM %[1]s.`+part, ""), "42501", role+" reading "+part)
		}
	}
	require.NoError(t, b.asRole(b.reader, `SELECT count(*) FROM %[1]s.events_archive`, ""))

	detach := `SELECT %[1]s.detach_archive_partition('` + parts[0] + `')`
	for _, role := range []string{b.reader, b.writer, b.snapshotter, b.keyholder, b.forgetter} {
		requirePgError(t, b.asRole(role, detach, ""), "42501", role)
	}
	require.NoError(t, b.asRole(b.admin, detach, ""), "the admin detaches (rolled back)")
	_, err = b.pool.Exec(b.ctx, fmt.Sprintf(detach, b.schema))
	require.NoError(t, err)
	_, err = pgstore.Migrate(b.ctx, b.pool, &pgstore.MigrateOpts{Schema: b.schema})
	require.NoError(t, err)
	var grants int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM pg_class AS c, aclexplode(c.relacl) AS a
		WHERE c.oid = ($1 || '.' || $2)::regclass AND a.grantee <> c.relowner`, b.schema, parts[0]).Scan(&grants))
	require.Zero(t, grants, "grants on the detached %s", parts[0])
	requirePgError(t, b.asRole("", `DELETE FROM %[1]s.`+parts[0], ""), "PE005", "the detached table stays immutable")
}
