// Package pgstoretest gives an application's tests a fresh PostgreSQL
// database with the es schema installed, the way es tests itself.
//
// Call [Main] from the package's TestMain, then ask for a database in each
// test with [Store], [Pool] or [ConnString]:
//
//	func TestMain(m *testing.M) { pgstoretest.Main(m) }
//
//	func TestPlaceOrder(t *testing.T) {
//		t.Parallel()
//		store := pgstoretest.Store(t, nil) // a database of its own, schema "es" migrated
//		orders, err := es.NewRepository(store, registry, newOrder, nil)
//		require.NoError(t, err)
//		...
//	}
//
// Each call creates a database of its own (from template0, named
// es_test_<pid>_<random>), installs the es schema in it with
// [pgstore.Migrate] (schema "es", or [Opts.Schema] / [pgstore.Config.Schema]),
// and drops it, with every connection to it, in t.Cleanup. Tests that each
// take their own database can run in parallel.
//
// # Where the server comes from
//
// The first test that asks for a database picks a server, once per test
// process:
//
//   - ES_TEST_DATABASE_URL set (a postgres:// URL or a keyword/value
//     string): that server. Its user needs CREATEDB, and CREATEROLE unless
//     the roles the es schema grants to (<schema>_reader, <schema>_writer,
//     <schema>_snapshotter, <schema>_keyholder, <schema>_forgetter) exist
//     already; they are cluster-wide, so they are created when missing
//     and left in place. The es schema needs PostgreSQL 14 or newer.
//   - otherwise, when PostgreSQL server binaries are installed (pg_config
//     --bindir, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, or initdb on
//     PATH): a throwaway cluster in a temporary directory, listening only
//     on a unix socket there, stopped and removed by [Main] (when the test
//     process runs as root, the server runs as the "postgres" OS user).
//   - otherwise each test that asks for a database is skipped with a loud
//     message, and [Main] skips the package's examples (they cannot skip
//     themselves).
//
// ES_REQUIRE_POSTGRES=1 (set it in CI) turns every such skip into a
// failure.
//
// # The global log in parallel tests
//
// The databases share one server, and the global log's horizon is the
// server's: ReadAll and subscriptions show an event once every transaction
// that was running anywhere on the server when it was appended has ended
// (see the README's "Ordering"). Another test's open transaction, in its own
// database, can hold an event back for a while, so a test that reads the
// global log right after appending waits for what it expects (polls with a
// generous deadline, or lets a subscription deliver it) rather than reading
// once. Stream reads (ReadStream, Load, repositories) are not affected.
//
// This is the harness es runs its own tests on; [Main] is required, since
// it removes what the test process created once the tests have run.
package pgstoretest
