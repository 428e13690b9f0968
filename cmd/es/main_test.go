package main_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// commandTimeout bounds one run of the binary: generous, for slow machines.
const commandTimeout = 2 * time.Minute

type testBundle struct {
	bin   string // the built es binary
	url   string // a fresh database's connection string
	pool  *pgxpool.Pool
	store *pgstore.Store
}

// setup builds the binary and creates a fresh database, migrated unless
// migrated is false.
func setup(t *testing.T, migrated bool) *testBundle {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	bin := filepath.Join(t.TempDir(), "es")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	if migrated {
		_, err := pgstore.Migrate(ctx, pool, nil)
		require.NoError(t, err)
	}
	store, err := pgstore.New(pool, nil)
	require.NoError(t, err)
	return &testBundle{bin: bin, url: url, pool: pool, store: store}
}

// command returns the binary's command with args, DATABASE_URL set to the
// test's database.
func (b *testBundle) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+b.url)
	return cmd
}

// es runs the binary to its end and returns its output and exit status.
func (b *testBundle) es(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := b.command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running es %q: %v", args, err)
	}
	code = cmd.ProcessState.ExitCode()
	t.Logf("es %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out.String(), errOut.String())
	return out.String(), errOut.String(), code
}

// ok runs the binary and requires exit status 0.
func (b *testBundle) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, code := b.es(t, args...)
	require.Equal(t, 0, code, "es %q failed: %s", args, stderr)
	return out
}

// exec runs SQL on the test's database.
func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	_, stderr, code := b.es(t)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "usage: es")
	_, stderr, code = b.es(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)
	out := b.ok(t, "help")
	require.Contains(t, out, "es migrate up|down|status")
}

func TestHelpHidesTheURL(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := b.command(ctx, "status", "-help")
	cmd.Env = append(cmd.Env, "DATABASE_URL=postgres://app:s3cret@db.invalid/app")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "usage: es status [--json]")
	require.NotContains(t, string(out), "s3cret")
}
