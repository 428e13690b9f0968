package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Terminate ends the server backends whose process ids pidQuery returns
// (a query of one int column, with args), as pg_terminate_backend does
// for an administrator, waiting up to a minute for each to exit (a busy
// machine may take seconds). It returns how many it ended. The connections of those backends see their
// server go away, as after a network failure or a server restart.
func Terminate(t testing.TB, ctx context.Context, pidQuery string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, AdminConnString(t))
	if err != nil {
		t.Fatalf("pgtest: connecting as administrator: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FILTER (WHERE pg_terminate_backend(q.pid, 60000)) FROM ("+
		pidQuery+") AS q(pid) WHERE q.pid <> pg_backend_pid()", args...).Scan(&n)
	if err != nil {
		t.Fatalf("pgtest: terminating backends: %v", err)
	}
	return n
}
