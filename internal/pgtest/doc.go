// Package pgtest gives tests a real PostgreSQL server.
//
// A test package opts in by calling [Main] from its TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and then asks for a database with [ConnString], [Pool] or [NewDatabase].
// [Main] is required: it removes what the test process created once the tests
// have run, and [ConnString] fails a test whose package does not call it.
//
// # Where the server comes from
//
// The first test that asks for a database picks a server, once per test
// process:
//
//   - ES_TEST_DATABASE_URL set (a postgres:// URL or a keyword/value string):
//     that server is used. The user needs the CREATEDB privilege (and
//     PostgreSQL 13 or newer for DROP DATABASE ... WITH (FORCE)). Every
//     database pgtest creates there is dropped by [Main].
//   - otherwise, when PostgreSQL binaries are found (see [BinDir]): a throwaway
//     cluster is initialised in a temporary directory, listening only on a unix
//     socket inside that directory, and stopped and deleted by [Main]. When the
//     test process runs as root, initdb and postgres run as the "postgres" OS
//     user, because initdb refuses to run as root.
//   - otherwise the test is skipped with a loud message.
//
// ES_REQUIRE_POSTGRES=1 (CI sets it) turns every skip into a failure: a
// missing PostgreSQL, or a throwaway cluster that did not start, fails the
// test instead.
//
// Examples cannot skip themselves: without PostgreSQL (and without
// ES_REQUIRE_POSTGRES=1), [Main] skips the package's examples, loudly.
//
// # Throwaway clusters
//
// [StartCluster] starts a cluster of its own, for tests that stop, crash
// ([Cluster.Kill]) and restart a server. Its defaults favour speed
// (fsync=off, full_page_writes=off) while keeping synchronous_commit=on, allow
// 300 connections for stress tests, and write the server log to a file in the
// cluster's directory; a failed start reports the log's tail.
//
// A cluster can start with its transaction counter far along
// ([ClusterOptions.NextXID]: late in epoch 0, or in epoch 1), and a test can
// move a database the ways users do:
//
//   - [Cluster.Dump] and [Cluster.Restore] (pg_dump -Fc, pg_restore into a
//     new database of another cluster), with [Cluster.CopyRoles]
//     (pg_dumpall --roles-only) first, since a dump names roles but does
//     not hold them;
//   - [Cluster.Upgrade] (pg_upgrade into a new cluster, same major version);
//   - [Cluster.StartReplica] (a streaming hot standby made with
//     pg_basebackup -R) and [Cluster.WaitReplayed] (wait until the replica
//     shows what the primary has committed).
//
// Every server listens only on a unix socket in its own temporary directory
// (pg_upgrade's temporary servers too), and each new cluster is removed by
// [Cluster.Remove], which the test registers with t.Cleanup.
//
// If the test process dies without running [Main]'s cleanup (a panic in a
// test, a -timeout), the kernel tells the postmaster to shut down immediately
// (on Linux), so no server outlives the process; the temporary directory may
// be left behind in os.TempDir as es-pg-*.
//
// While a cluster runs, one goroutine (in (*postmaster).supervise) waits for the
// postmaster; a goleak check that runs while a cluster is up should ignore it
// with goleak.IgnoreAnyFunction("github.com/pgevent/es/internal/pgtest.(*postmaster).supervise").
package pgtest
