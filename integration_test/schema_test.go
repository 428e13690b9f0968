package integration_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// catalogQueries describe every object of a schema ($1) as text lines:
// relations, columns, constraints, indexes, triggers, sequences, types,
// functions (with their full definition), views, privileges and comments.
// tern's version table is left out: only migrations have it.
var catalogQueries = []string{
	`SELECT format('schema comment=%s acl=%s', obj_description(n.oid, 'pg_namespace'), n.nspacl)
	   FROM pg_namespace n WHERE n.nspname = $1`,
	`SELECT format('relation %s kind=%s persistence=%s rls=%s acl=%s comment=%s',
	               c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relacl,
	               obj_description(c.oid, 'pg_class'))
	   FROM pg_class c
	  WHERE c.relnamespace = $1::regnamespace AND c.relname <> 'schema_version'`,
	`SELECT format('column %s.%s #%s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
	               c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, co.collname, a.attacl,
	               col_description(c.oid, a.attnum))
	   FROM pg_attribute a
	   JOIN pg_class c ON c.oid = a.attrelid
	   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	   LEFT JOIN pg_collation co ON co.oid = a.attcollation
	  WHERE c.relnamespace = $1::regnamespace AND c.relname <> 'schema_version'
	    AND a.attnum > 0 AND NOT a.attisdropped`,
	`SELECT format('constraint %s.%s %s deferrable=%s deferred=%s comment=%s',
	               c.relname, con.conname, pg_get_constraintdef(con.oid), con.condeferrable, con.condeferred,
	               obj_description(con.oid, 'pg_constraint'))
	   FROM pg_constraint con
	   JOIN pg_class c ON c.oid = con.conrelid
	  WHERE con.connamespace = $1::regnamespace AND c.relname <> 'schema_version'`,
	`SELECT format('index %s', pg_get_indexdef(i.indexrelid))
	   FROM pg_index i
	   JOIN pg_class c ON c.oid = i.indrelid
	  WHERE c.relnamespace = $1::regnamespace AND c.relname <> 'schema_version'`,
	`SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
	   FROM pg_trigger t
	   JOIN pg_class c ON c.oid = t.tgrelid
	  WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal`,
	`SELECT format('sequence %s %s start=%s min=%s max=%s increment=%s cycle=%s cache=%s',
	               s.sequencename, s.data_type, s.start_value, s.min_value, s.max_value,
	               s.increment_by, s.cycle, s.cache_size)
	   FROM pg_sequences s WHERE s.schemaname = $1`,
	`SELECT format('type %s kind=%s', t.typname, t.typtype)
	   FROM pg_type t
	  WHERE t.typnamespace = $1::regnamespace AND t.typname NOT IN ('schema_version', '_schema_version')`,
	`SELECT format('function %s(%s) kind=%s acl=%s comment=%s definition=%s',
	               p.proname, pg_get_function_identity_arguments(p.oid), p.prokind, p.proacl,
	               obj_description(p.oid, 'pg_proc'),
	               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END)
	   FROM pg_proc p WHERE p.pronamespace = $1::regnamespace`,
	`SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
	   FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('v', 'm')`,
	`SELECT format('policy %s.%s %s', c.relname, p.polname, pg_get_expr(p.polqual, p.polrelid))
	   FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
	  WHERE c.relnamespace = $1::regnamespace`,
}

// catalogDump describes schema as sorted lines.
func catalogDump(t *testing.T, ctx context.Context, connString, schema string) []string {
	t.Helper()
	conn := connect(t, ctx, connString)
	var lines []string
	for _, q := range catalogQueries {
		rows, err := conn.Query(ctx, q, schema)
		require.NoError(t, err, q)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err, q)
		lines = append(lines, got...)
	}
	slices.Sort(lines)
	return lines
}

// installWithTern installs schema es with the tern CLI (migrations, then the
// code package) into a fresh database, and returns its connection string.
func installWithTern(t *testing.T, ctx context.Context) string {
	t.Helper()
	connString := pgtest.NewDatabase(t)
	ternInstall(t, ctx, connString, "es")
	return connString
}

// TestSchemaMigrateEqualsTernCLI proves that pgstore.Migrate and the tern
// CLI (migrations, then the code package) build the same schema.
func TestSchemaMigrateEqualsTernCLI(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, ternTimeout)
	migrated := migratedDatabase(t, ctx)
	installed := installWithTern(t, ctx)

	fromMigrations := catalogDump(t, ctx, migrated, "es")
	fromInstall := catalogDump(t, ctx, installed, "es")
	require.NotEmpty(t, fromMigrations)
	for _, want := range []string{"relation events ", "function append(", "trigger CREATE TRIGGER events_immutable", "index CREATE UNIQUE INDEX events_event_id_key"} {
		require.True(t, slices.ContainsFunc(fromMigrations, func(line string) bool { return strings.HasPrefix(line, want) }),
			"the dump has no line starting with %q", want)
	}
	require.Equal(t, fromMigrations, fromInstall, "pgstore.Migrate and the tern CLI build different schemas")

	if pgDump, ok := pgDumpPath(); ok {
		t.Run("PgDump", func(t *testing.T) {
			a := schemaOnlyDump(t, ctx, pgDump, migrated)
			b := schemaOnlyDump(t, ctx, pgDump, installed)
			require.Contains(t, a, "CREATE TABLE es.events")
			require.Equal(t, a, b, "pg_dump --schema-only of the two schemas differs")
		})
	}

	// The comparison notices a difference: an extra column, a changed
	// function.
	conn := connect(t, ctx, installed)
	_, err := conn.Exec(ctx, "ALTER TABLE es.streams ADD COLUMN extra int")
	require.NoError(t, err)
	changed := catalogDump(t, ctx, installed, "es")
	require.NotEqual(t, fromMigrations, changed)
	require.True(t, slices.ContainsFunc(changed, func(line string) bool { return strings.HasPrefix(line, "column streams.extra ") }))

	_, err = conn.Exec(ctx, "ALTER TABLE es.streams DROP COLUMN extra")
	require.NoError(t, err)
	require.Equal(t, fromMigrations, catalogDump(t, ctx, installed, "es"), "dropping the column again restores equality")

	_, err = conn.Exec(ctx, "ALTER FUNCTION es.stream_info(text) COST 200")
	require.NoError(t, err)
	require.NotEqual(t, fromMigrations, catalogDump(t, ctx, installed, "es"), "a changed function must be noticed")
}

// pgDumpPath returns the pg_dump next to the server binaries pgtest uses.
func pgDumpPath() (string, bool) {
	dir, err := pgtest.BinDir()
	if err != nil {
		return "", false
	}
	path := filepath.Join(dir, "pg_dump")
	return path, isExecutable(path)
}

// schemaOnlyDump returns pg_dump's schema-only output for schema es, without
// comments, SET lines, the random \restrict keys and tern's version table.
func schemaOnlyDump(t *testing.T, ctx context.Context, pgDump, connString string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, pgDump, "--schema-only", "--schema=es", "--exclude-table=es.schema_version",
		"--no-owner", "--no-privileges", "-d", connString)
	cmd.Env = clientEnv()
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "server version mismatch") {
		t.Skip("pg_dump cannot dump this server: ", string(ee.Stderr))
	}
	require.NoError(t, err, "pg_dump: %s", out)
	var kept []string
	for line := range strings.Lines(string(out)) {
		switch {
		case strings.HasPrefix(line, "--"), strings.HasPrefix(line, "SET "),
			strings.HasPrefix(line, `\restrict `), strings.HasPrefix(line, `\unrestrict `), // random per dump
			strings.HasPrefix(line, "SELECT pg_catalog.set_config"), strings.TrimSpace(line) == "":
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "")
}
