package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/schema"
)

// Migrate on the pool an application has: all the way up, reporting each
// step (also to OnStep), nothing to do the second time, then all the way
// down to 0, which leaves only tern's version table.
func TestMigratePool(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	name := freshSchemaName(t)
	names := migrationNames(t)
	latest := int32(len(names))
	t.Cleanup(func() { // the roles are cluster-wide: remove them even if the test fails
		_, _ = pgstore.Migrate(context.Background(), pool, &pgstore.MigrateOpts{Schema: name, Direction: pgstore.MigrateDown})
	})

	var onStep []pgstore.MigrateStep
	res, err := pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{
		Schema: name,
		OnStep: func(version int32, name, direction string) {
			onStep = append(onStep, pgstore.MigrateStep{Version: version, Name: name, Direction: direction})
		},
	})
	require.NoError(t, err)
	var up []pgstore.MigrateStep
	for i, n := range names {
		up = append(up, pgstore.MigrateStep{Version: int32(i + 1), Name: n, Direction: "up"})
	}
	require.Equal(t, &pgstore.MigrateResult{Schema: name, FromVersion: 0, ToVersion: latest, Steps: up, CodeInstalled: true}, res)
	require.Equal(t, up, onStep, "OnStep hears of each step")
	functions, tables := esObjects(t, pool, name)
	require.Positive(t, functions)
	require.Positive(t, tables)

	store, err := pgstore.New(pool, &pgstore.Config{Schema: name})
	require.NoError(t, err)
	_, err = store.Append(ctx, "order-1", es.NoStream, []es.NewEvent{{Type: "OrderPlaced"}})
	require.NoError(t, err, "the installed schema works")

	res, err = pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{Schema: name})
	require.NoError(t, err)
	require.Equal(t, &pgstore.MigrateResult{Schema: name, FromVersion: latest, ToVersion: latest, CodeInstalled: true}, res,
		"nothing to apply; the code package is installed again")

	res, err = pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{Schema: name, Direction: pgstore.MigrateDown})
	require.NoError(t, err)
	var down []pgstore.MigrateStep
	for i := len(up) - 1; i >= 0; i-- {
		down = append(down, pgstore.MigrateStep{Version: up[i].Version, Name: up[i].Name, Direction: "down"})
	}
	require.Equal(t, &pgstore.MigrateResult{Schema: name, FromVersion: latest, ToVersion: 0, Steps: down}, res)
	functions, tables = esObjects(t, pool, name)
	require.Zero(t, functions, "down to 0 removes every function")
	require.Zero(t, tables, "down to 0 removes every table but tern's version table")
	var roles int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", name+"\\_%").Scan(&roles))
	require.Zero(t, roles, "down to 0 drops the schema's roles")
}

// Migrate on a connection, one version at a time, and the refusals.
func TestMigrateConnStepwise(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, pgtest.ConnString(t))
	require.NoError(t, err)
	name := freshSchemaName(t)
	names := migrationNames(t)
	latest := int32(len(names))
	t.Cleanup(func() { // the roles are cluster-wide: remove them even if the test fails
		_, _ = pgstore.Migrate(context.Background(), conn, &pgstore.MigrateOpts{Schema: name, Direction: pgstore.MigrateDown})
		_ = conn.Close(context.Background())
	})

	for v := int32(1); v <= latest; v++ {
		res, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{Schema: name, TargetVersion: v})
		require.NoError(t, err)
		require.Equal(t, &pgstore.MigrateResult{Schema: name, FromVersion: v - 1, ToVersion: v, CodeInstalled: true,
			Steps: []pgstore.MigrateStep{{Version: v, Name: names[v-1], Direction: "up"}}}, res)
	}

	type refusal struct {
		opts *pgstore.MigrateOpts
		want string
	}
	refusals := []refusal{
		{&pgstore.MigrateOpts{Schema: name, Direction: pgstore.MigrateDown, TargetVersion: latest + 1}, "below"},
		{&pgstore.MigrateOpts{Schema: name, TargetVersion: -1}, "negative"},
		{&pgstore.MigrateOpts{Schema: name, Direction: pgstore.MigrateDirection(7)}, "direction"},
		{&pgstore.MigrateOpts{Schema: "Not-A-Schema"}, "must match"},
	}
	if latest > 1 { // up to 0 means up to the latest
		refusals = append(refusals, refusal{&pgstore.MigrateOpts{Schema: name, TargetVersion: latest - 1}, "above"})
	}
	for _, c := range refusals {
		_, err := pgstore.Migrate(ctx, conn, c.opts)
		require.Error(t, err, "%+v", c.opts)
		require.Contains(t, err.Error(), c.want, "%+v", c.opts)
	}
	functions, tables := esObjects(t, conn, name)
	require.Positive(t, functions, "a refused call leaves the schema as it was")
	require.Positive(t, tables)
	var version int32
	require.NoError(t, conn.QueryRow(ctx, "SELECT version FROM "+pgx.Identifier{name, "schema_version"}.Sanitize()).Scan(&version))
	require.Equal(t, latest, version)
}

// migrationNames returns the embedded migrations' file names, in order.
func migrationNames(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(schema.Migrations(), "*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	slices.Sort(names)
	return names
}

// freshSchemaName returns a schema name no other test uses: the roles an
// installation creates are named after its schema, and are cluster-wide.
func freshSchemaName(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "m_" + hex.EncodeToString(b[:])
}

// esObjects counts the functions and the tables (tern's version table
// aside) in schema name.
func esObjects[DB *pgx.Conn | *pgxpool.Pool](t *testing.T, db DB, name string) (functions, tables int) {
	t.Helper()
	const q = `SELECT (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1),
	                  (SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_version')`
	var row pgx.Row
	switch d := any(db).(type) {
	case *pgx.Conn:
		row = d.QueryRow(t.Context(), q, name)
	case *pgxpool.Pool:
		row = d.QueryRow(t.Context(), q, name)
	}
	require.NoError(t, row.Scan(&functions, &tables))
	return functions, tables
}
