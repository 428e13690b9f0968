package pgtest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConcurrentConnString comes first and is not parallel itself, so its
// parallel subtests are the process's first users of the harness: they race
// to set up the server.
func TestConcurrentConnString(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	t.Run("group", func(t *testing.T) {
		for i := range 8 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				connString := pgtest.ConnString(t)
				conn := connect(t, connString)
				var one int
				require.NoError(t, conn.QueryRow(t.Context(), "SELECT 1").Scan(&one))
				require.Equal(t, 1, one)
				mu.Lock()
				seen = append(seen, connString)
				mu.Unlock()
			})
		}
	})
	if t.Skipped() || len(seen) == 0 {
		return
	}
	require.Len(t, seen, 8)
	for _, s := range seen {
		require.Equal(t, seen[0], s)
	}
}

func TestConnString(t *testing.T) {
	t.Parallel()

	connString := pgtest.ConnString(t)
	require.Equal(t, connString, pgtest.ConnString(t), "one database per process")

	conn := connect(t, connString)
	var version, database string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT version(), current_database()").Scan(&version, &database))
	require.Contains(t, version, "PostgreSQL")
	require.True(t, strings.HasPrefix(database, fmt.Sprintf("es_test_%d_", os.Getpid())), database)
}

func TestPool(t *testing.T) {
	t.Parallel()

	pool := pgtest.Pool(t)
	var database string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&database))
	require.Equal(t, databaseOf(t, pgtest.ConnString(t)), database)
}

func TestAdminConnString(t *testing.T) {
	t.Parallel()

	conn := connect(t, pgtest.AdminConnString(t))
	var database, superuser string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database(), current_setting('is_superuser')").Scan(&database, &superuser))
	require.Equal(t, "postgres", database)
	if os.Getenv(pgtest.EnvDatabaseURL) == "" {
		require.Equal(t, "on", superuser)
	}
}

func TestNewDatabase(t *testing.T) {
	t.Parallel()

	shared := databaseOf(t, pgtest.ConnString(t))
	var names []string
	var leftOpen *pgx.Conn
	t.Run("create", func(t *testing.T) {
		a := pgtest.NewDatabase(t)
		b := pgtest.NewDatabase(t)
		require.NotEqual(t, a, b)

		for _, connString := range []string{a, b} {
			conn, err := pgx.Connect(t.Context(), connString)
			require.NoError(t, err)
			var name string
			var tables int
			require.NoError(t, conn.QueryRow(t.Context(),
				"SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')").Scan(&name, &tables))
			require.Zero(t, tables, "a new database is empty")
			_, err = conn.Exec(t.Context(), "CREATE TABLE t (id int)")
			require.NoError(t, err)
			names = append(names, name)
			if leftOpen == nil {
				leftOpen = conn // the drop must terminate this connection
			} else {
				require.NoError(t, conn.Close(t.Context()))
			}
		}
		require.NotEqual(t, names[0], names[1])
		require.NotContains(t, names, shared)
	})
	if leftOpen != nil {
		_ = leftOpen.Close(context.Background()) // terminated by the drop
	}
	require.Len(t, names, 2)

	admin := connect(t, pgtest.AdminConnString(t))
	var remaining int
	require.NoError(t, admin.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&remaining))
	require.Zero(t, remaining, "databases are dropped at cleanup")
}

func TestCluster(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	c, err := pgtest.StartCluster(&pgtest.ClusterOptions{Settings: map[string]string{"fsync": "on"}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Remove()) })
	ctx := t.Context()
	connString := c.ConnString("postgres")

	conn := connect(t, connString)
	settings := map[string]string{}
	for _, name := range []string{"fsync", "full_page_writes", "synchronous_commit", "max_connections", "shared_buffers", "listen_addresses"} {
		var v string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v))
		settings[name] = v
	}
	require.Equal(t, map[string]string{
		"fsync":              "on", // overridden
		"full_page_writes":   "off",
		"synchronous_commit": "on",
		"max_connections":    "300",
		"shared_buffers":     "128MB",
		"listen_addresses":   "",
	}, settings)

	_, err = conn.Exec(ctx, "CREATE TABLE kept (id int PRIMARY KEY, v text)")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO kept VALUES (1, 'survives a crash')")
	require.NoError(t, err)
	var dataDir string
	var backend int
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('data_directory'), pg_backend_pid()").Scan(&dataDir, &backend))
	postmaster := postmasterPID(t, dataDir)
	require.Error(t, c.Start(), "starting a running cluster")

	// Crash.
	require.NoError(t, c.Kill())
	require.False(t, processAlive(postmaster), "postmaster is gone")
	require.False(t, processAlive(backend), "backend is gone")
	_, err = conn.Exec(ctx, "SELECT 1")
	require.Error(t, err, "the old connection is dead")
	requireNoConnect(t, connString)

	// Crash recovery keeps the committed row.
	require.NoError(t, c.Start())
	require.Equal(t, "survives a crash", value(t, connString))

	// A clean stop and start keep it too.
	require.NoError(t, c.Stop())
	requireNoConnect(t, connString)
	require.NoError(t, c.Stop(), "stopping a stopped cluster")
	require.NoError(t, c.Start())
	require.Equal(t, "survives a crash", value(t, connString))

	dir := filepath.Dir(filepath.Dir(dataDir))
	if filepath.Base(dataDir) == "data" {
		dir = filepath.Dir(dataDir)
	}
	require.NoError(t, c.Remove())
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "Remove deletes the directory")
	require.Error(t, c.Start(), "starting a removed cluster")
}

func TestClusterStartFailure(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	c, err := pgtest.StartCluster(&pgtest.ClusterOptions{Settings: map[string]string{"shared_buffers": "lots"}})
	require.Nil(t, c)
	require.ErrorContains(t, err, "server log")
	require.ErrorContains(t, err, `invalid value for parameter "shared_buffers"`, "the error shows the log")
}

func TestBinDir(t *testing.T) {
	t.Parallel()
	requireBinaries(t)

	dir, err := pgtest.BinDir()
	require.NoError(t, err)
	for _, name := range []string{"initdb", "postgres"} {
		_, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err, name)
	}
}

// TestMainCleansUp runs this test binary again, with TestHelperProcess
// using the harness, and checks that nothing is left once it exits: after a
// normal exit Main drops the database or removes the cluster; after a panic
// in a test the throwaway server shuts itself down.
func TestMainCleansUp(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("checks processes through /proc")
	}
	external := os.Getenv(pgtest.EnvDatabaseURL) != ""
	if !external {
		requireBinaries(t)
	}

	for _, mode := range []string{"exit", "panic"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=10m")
			cmd.Env = append(os.Environ(), "PGTEST_HELPER="+mode)
			out, err := cmd.CombinedOutput()
			if mode == "exit" {
				require.NoError(t, err, "%s", out)
			} else {
				require.Error(t, err, "%s", out)
				require.Contains(t, string(out), "helper panics")
			}
			report := parseReport(t, out)

			if external {
				if mode == "panic" { // leftovers are expected: drop them
					admin := connect(t, pgtest.AdminConnString(t))
					_, err := admin.Exec(t.Context(), "DROP DATABASE IF EXISTS "+pgx.Identifier{report["DATABASE"]}.Sanitize()+" WITH (FORCE)")
					require.NoError(t, err)
					return
				}
				admin := connect(t, pgtest.AdminConnString(t))
				var n int
				require.NoError(t, admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", report["DATABASE"]).Scan(&n))
				require.Zero(t, n, "Main drops the database")
				return
			}

			pid, err := strconv.Atoi(report["POSTMASTER"])
			require.NoError(t, err)
			dir := filepath.Dir(report["DATA"])
			require.True(t, strings.HasPrefix(filepath.Base(dir), "es-pg-"), dir)
			if mode == "exit" {
				require.False(t, processAlive(pid), "Main stops the server")
				_, err := os.Stat(dir)
				require.ErrorIs(t, err, os.ErrNotExist, "Main removes the directory")
				return
			}
			require.Eventually(t, func() bool { return !processAlive(pid) }, 5*time.Minute, 10*time.Millisecond,
				"the server shuts down when the test process dies")
			require.NoError(t, os.RemoveAll(dir))
		})
	}
}

// TestHelperProcess is run by TestMainCleansUp in a child process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("PGTEST_HELPER")
	if mode == "" {
		return
	}
	conn := connect(t, pgtest.ConnString(t))
	var database string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&database))
	fmt.Printf("PGTEST_DATABASE=%s\n", database)
	if os.Getenv(pgtest.EnvDatabaseURL) == "" {
		var dataDir string
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_setting('data_directory')").Scan(&dataDir))
		fmt.Printf("PGTEST_DATA=%s\n", dataDir)
		fmt.Printf("PGTEST_POSTMASTER=%d\n", postmasterPID(t, dataDir))
	}
	if os.Getenv("PGTEST_HELPER_SCHEMA") != "" {
		_, schema := pgtest.NewSchema(t)
		fmt.Printf("PGTEST_SCHEMA=%s\n", schema)
	}
	if mode == "panic" {
		panic("helper panics")
	}
}

// TestExternalServerDropsRoles runs a child test process against this
// process's server as an external one (ES_TEST_DATABASE_URL): the roles the
// child's schema migration created are gone when it ends, with its
// database.
func TestExternalServerDropsRoles(t *testing.T) {
	t.Parallel()
	admin := connect(t, pgtest.AdminConnString(t))
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER=exit", "PGTEST_HELPER_SCHEMA=1",
		pgtest.EnvDatabaseURL+"="+pgtest.AdminConnString(t))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	report := parseReport(t, out)
	schema := report["SCHEMA"]
	require.NotEmpty(t, schema, "%s", out)

	var databases, roles int
	require.NoError(t, admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = $1", report["DATABASE"]).Scan(&databases))
	require.Zero(t, databases, "the child's database is dropped")
	require.NoError(t, admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)",
		schema+"_reader", schema+"_writer").Scan(&roles))
	require.Zero(t, roles, "the child's schema roles are dropped")
}

func parseReport(t *testing.T, out []byte) map[string]string {
	t.Helper()
	report := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && strings.HasPrefix(k, "PGTEST_") {
			report[strings.TrimPrefix(k, "PGTEST_")] = v
		}
	}
	require.NotEmpty(t, report["DATABASE"], "%s", out)
	return report
}

// requireBinaries skips t when there are no PostgreSQL binaries, or fails
// it when ES_REQUIRE_POSTGRES is set.
func requireBinaries(t *testing.T) {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		if required, _ := strconv.ParseBool(os.Getenv(pgtest.EnvRequirePostgres)); required {
			t.Fatal(err)
		}
		t.Skipf("%v: SKIPPING", err)
	}
}

func connect(t *testing.T, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func databaseOf(t *testing.T, connString string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	require.NoError(t, err)
	return cfg.Database
}

func requireNoConnect(t *testing.T, connString string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err == nil {
		_ = conn.Close(ctx)
	}
	require.Error(t, err, "the server is down")
}

func value(t *testing.T, connString string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), connString)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var v string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT v FROM kept WHERE id = 1").Scan(&v))
	return v
}

func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	require.NoError(t, err)
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	require.NoError(t, err)
	return pid
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return false
	}
	state := data[i+2]
	return state != 'Z' && state != 'X'
}
