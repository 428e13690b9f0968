package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// ternModule is the tern CLI the migrations are checked against.
const ternModule = "github.com/jackc/tern/v2@v2.3.4"

// ternTimeout bounds a test that runs the tern CLI: each call is a go run
// (the first one may build tern), slow on a busy machine.
const ternTimeout = 10 * time.Minute

// tern runs the real tern CLI (go run, which needs the module proxy or a
// module cache holding tern) in a directory of its own, so no stray
// tern.conf is read.
func tern(t *testing.T, ctx context.Context, dir string, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to run the tern CLI: ", err)
	}
	cmd := exec.CommandContext(ctx, goBin, append([]string{"run", ternModule}, args...)...)
	cmd.Dir = dir
	cmd.Env = clientEnv()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "tern %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// requireInstalled checks that schema holds the es tables and functions.
func requireInstalled(t *testing.T, ctx context.Context, conn *pgx.Conn, schema string) {
	t.Helper()
	for _, table := range []string{"streams", "events", "snapshots", "checkpoints"} {
		var name *string
		require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass($1)::text", schema+"."+table).Scan(&name))
		require.NotNil(t, name, "table %s.%s", schema, table)
	}
	for _, fn := range []string{
		"append(text, bigint, uuid[], text[], bytea[], bytea[], int[])",
		"append_event(text, text, bytea, bytea, bigint, uuid, int)",
		"read_stream(text, bigint, int)",
		"read_stream_backward(text, bigint, int)",
		"read_all(xid8, bigint, int, text[], text[])",
		"stream_info(text)",
	} {
		var name *string
		require.NoError(t, conn.QueryRow(ctx, "SELECT to_regprocedure($1)::text", schema+"."+fn).Scan(&name))
		require.NotNil(t, name, "function %s.%s", schema, fn)
	}
}

// requireAppendWorks appends an event with plain SQL to a new stream of
// schema and reads it back.
func requireAppendWorks(t *testing.T, ctx context.Context, conn *pgx.Conn, schema string) {
	t.Helper()
	var version, position int64
	require.NoError(t, conn.QueryRow(ctx, fmt.Sprintf(
		`SELECT stream_version, last_position FROM %s.append_event('order-1', 'OrderPlaced', '\x80'::bytea)`, schema)).
		Scan(&version, &position))
	require.Equal(t, int64(1), version)
	require.Equal(t, int64(1), position)
	// read_all shows it once no older transaction of the cluster runs.
	var streamID, eventType string
	waitFor(t, ctx, "read_all returns the event", func() bool {
		err := conn.QueryRow(ctx, fmt.Sprintf("SELECT stream_id, event_type FROM %s.read_all()", schema)).
			Scan(&streamID, &eventType)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	})
	require.Equal(t, "order-1", streamID)
	require.Equal(t, "OrderPlaced", eventType)
}

// migrationCount is the number of migration files, the version tern reaches.
func migrationCount(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9][0-9]_*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return int64(len(files))
}

// ternInstall installs schema with the tern CLI as the README says: create
// the schema (it holds tern's version table), run the migrations, install
// the code package, with a config file naming the schema and its version
// table. It returns the config file's directory.
func ternInstall(t *testing.T, ctx context.Context, connString, schema string) string {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, schema+".conf")
	require.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(
		"[database]\nversion_table = %[1]s.schema_version\n\n[data]\nschema = %[1]s\n", schema)), 0o644))
	conn := connect(t, ctx, connString)
	_, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	tern(t, ctx, dir, "migrate", "-m", repoPath(t, "schema/migrations"), "--config", config, "--conn-string", connString)
	tern(t, ctx, dir, "code", "install", repoPath(t, "schema/code"), "--config", config, "--conn-string", connString)
	return dir
}

func TestTernCLI(t *testing.T) {
	t.Parallel()
	migrations := repoPath(t, "schema/migrations")
	wantVersion := migrationCount(t, migrations)

	t.Run("DefaultSchema", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, ternTimeout)
		connString := pgtest.NewDatabase(t)
		dir := ternInstall(t, ctx, connString, "es")
		config := filepath.Join(dir, "es.conf")

		conn := connect(t, ctx, connString)
		var version int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM es.schema_version").Scan(&version))
		require.Equal(t, wantVersion, version)
		requireInstalled(t, ctx, conn, "es")
		requireAppendWorks(t, ctx, conn, "es")

		// Migrating and installing the code again is a no-op for the data,
		// and tern can migrate all the way down.
		tern(t, ctx, dir, "migrate", "-m", migrations, "--config", config, "--conn-string", connString)
		tern(t, ctx, dir, "code", "install", repoPath(t, "schema/code"), "--config", config, "--conn-string", connString)
		requireInstalled(t, ctx, conn, "es")
		var events int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM es.events").Scan(&events))
		require.Equal(t, 1, events, "the second install must not have touched the data")
		tern(t, ctx, dir, "migrate", "-m", migrations, "--config", config, "--conn-string", connString, "-d", "0")
		var objects int
		require.NoError(t, conn.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'es'::regnamespace AND relname <> 'schema_version')
			     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'es'::regnamespace)`).Scan(&objects))
		require.Zero(t, objects, "objects left in schema es after migrating down to 0")
	})

	// Two installations side by side in one database, each with its own
	// version table: the second is installed in full, and the first is
	// untouched by it.
	t.Run("TwoSchemasSideBySide", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, ternTimeout)
		connString := pgtest.NewDatabase(t)
		ternInstall(t, ctx, connString, "es")
		ternInstall(t, ctx, connString, "tenant1")
		conn := connect(t, ctx, connString)
		for _, schema := range []string{"es", "tenant1"} {
			var version int64
			require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+schema+".schema_version").Scan(&version))
			require.Equal(t, wantVersion, version, schema)
			requireInstalled(t, ctx, conn, schema)
		}
		requireAppendWorks(t, ctx, conn, "tenant1")
		requireAppendWorks(t, ctx, conn, "es")
	})
}
