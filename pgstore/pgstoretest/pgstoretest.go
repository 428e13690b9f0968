package pgstoretest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// Opts configures the database of [ConnString] and [Pool]. A nil *Opts
// installs schema "es".
type Opts struct {
	// Schema is the schema the es schema is installed in, as
	// pgstore.MigrateOpts.Schema; a store on it needs the same
	// pgstore.Config.Schema. Defaults to "es".
	Schema string
}

// Main runs the package's tests (m.Run), then removes what they created
// (the throwaway cluster, or the databases left on the ES_TEST_DATABASE_URL
// server), and exits with the tests' exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgstoretest.Main(m) }
func Main(m *testing.M) { pgtest.Main(m) }

// ConnString creates a database of its own for t with the es schema
// migrated, and returns its connection string. The database is dropped,
// with every connection to it, in t.Cleanup.
//
// When no PostgreSQL can be found it skips t with a loud message, or fails
// t when ES_REQUIRE_POSTGRES=1. It is safe to call from parallel tests.
func ConnString(t testing.TB, opts *Opts) string {
	t.Helper()
	connString := pgtest.NewDatabase(t)
	pool := open(t, connString)
	defer pool.Close()
	migrate(t, pool, opts)
	return connString
}

// Pool is [ConnString]'s database opened with pgxpool's defaults; the pool
// is closed in t.Cleanup, before the database is dropped.
func Pool(t testing.TB, opts *Opts) *pgxpool.Pool {
	t.Helper()
	pool := open(t, pgtest.NewDatabase(t))
	t.Cleanup(pool.Close)
	migrate(t, pool, opts)
	return pool
}

// Store returns a store on a [Pool] whose schema is config.Schema ("es"
// when config or its Schema is unset). config is used as given otherwise.
func Store(t testing.TB, config *pgstore.Config) *pgstore.Store {
	t.Helper()
	var schema string
	if config != nil {
		schema = config.Schema
	}
	store, err := pgstore.New(Pool(t, &Opts{Schema: schema}), config)
	if err != nil {
		t.Fatalf("pgstoretest: %v", err)
	}
	return store
}

func open(t testing.TB, connString string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), connString)
	if err != nil {
		t.Fatalf("pgstoretest: opening a pool: %v", err)
	}
	return pool
}

func migrate(t testing.TB, pool *pgxpool.Pool, opts *Opts) {
	t.Helper()
	var o pgstore.MigrateOpts
	if opts != nil {
		o.Schema = opts.Schema
	}
	if _, err := pgstore.Migrate(context.Background(), pool, &o); err != nil {
		t.Fatalf("pgstoretest: %v", err)
	}
}
