package integration_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// repoPath returns the absolute path of a file or directory of the module,
// given relative to its root. go test runs in the package directory.
func repoPath(t testing.TB, rel string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", rel))
	require.NoError(t, err)
	_, err = os.Stat(path)
	require.NoError(t, err, "%s not found from %s", rel, mustGetwd(t))
	return path
}

func mustGetwd(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return wd
}

// testTimeout bounds a test, or a parallel subtest, that waits on the
// database. It is generous on purpose: on a busy machine a test can take
// many times as long as on a quiet one, and the bound is only there to stop
// a test that hangs.
const testTimeout = 5 * time.Minute

// testContext returns a context for t that ends after d, or with t.
//
// Call it in the test or subtest that uses the context, after t.Parallel.
// Never create a context, a deadline, a timer or a time.Now() budget in a
// test and use it in its parallel subtests (directly, through a closure or
// through a bundle): a parallel subtest starts only once its parent's
// function has returned and a slot under -parallel is free, possibly
// minutes later on a busy machine, when the parent's deadline may have
// passed. Each subtest makes its own. (internal/testguard checks this rule
// on every package's tests.)
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection closed at cleanup.
func connect(t testing.TB, ctx context.Context, connString string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// migratedDatabase returns the connection string of a fresh database with
// the es schema installed by pgstore.Migrate under the name "es".
func migratedDatabase(t testing.TB, ctx context.Context) string {
	t.Helper()
	connString := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, connString)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	return connString
}

// clientEnv is our environment for a client program (psql, tern), without
// tern's variables that would make it read another config or migrations.
// The PG* variables stay: connection strings name the host and database,
// and a password may come from PGPASSWORD.
func clientEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "TERN_")
	})
	return append(env, extra...)
}

// psqlPath returns the psql of the PostgreSQL binaries pgtest uses, or skips.
func psqlPath(t testing.TB) string {
	t.Helper()
	if dir, err := pgtest.BinDir(); err == nil {
		if path := filepath.Join(dir, "psql"); isExecutable(path) {
			return path
		}
	}
	if path, err := exec.LookPath("psql"); err == nil {
		return path
	}
	t.Skip("psql not found next to the PostgreSQL server binaries nor on PATH")
	return ""
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

// psql runs psql on connString with args and returns its combined output
// and error. It never reads ~/.psqlrc and stops at the first error.
func psql(t testing.TB, ctx context.Context, connString string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, psqlPath(t),
		append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", connString}, args...)...)
	cmd.Env = clientEnv("PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// waitFor polls cond until it returns true, failing the test when ctx
// ends first. Use it where the read_all horizon (the oldest transaction
// running anywhere in the cluster, possibly another test's) may hold a
// result back: on a busy machine another test may hold it for a long
// while, so the only bound is ctx, the test's generous deadline.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	_, ok := ctx.Deadline()
	require.True(t, ok, "waitFor %s: the context has no deadline", what)
	for !cond() {
		select {
		case <-ctx.Done():
			require.FailNowf(t, "timed out", "waiting until %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
