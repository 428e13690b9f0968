package pgtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

// serverCommand returns a command that runs program, one of the
// installation's server-side programs (pg_resetwal, pg_basebackup,
// pg_upgrade), as the server's OS user in directory dir: they refuse to run
// as root, and the files they write must belong to the server.
func (c *Cluster) serverCommand(ctx context.Context, dir, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, program), args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

// clientCommand returns a command that runs program, one of the
// installation's client programs (pg_dump, pg_dumpall, pg_restore, psql),
// as the test process's user. Its environment has no PG* variables, so
// only the connection string on its command line says where it connects.
func (c *Cluster) clientCommand(ctx context.Context, program string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, program), args...)
	cmd.Dir = c.dir
	cmd.Env = serverEnv()
	return cmd
}

// runCommand runs cmd and returns an error with its output when it fails.
func runCommand(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", filepath.Base(cmd.Path), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// connect opens a connection to database dbname of the running cluster as
// the superuser.
func (c *Cluster) connect(ctx context.Context, dbname string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.ConnString(dbname))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connecting to %s: %w", dbname, err)
	}
	return conn, nil
}

// exec runs statements, one at a time, on database dbname of the running
// cluster as the superuser, on a connection of its own.
func (c *Cluster) exec(ctx context.Context, dbname string, statements ...string) error {
	conn, err := c.connect(ctx, dbname)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range statements {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("pgtest: %s: %s: %w", dbname, sql, err)
		}
	}
	return nil
}

// databases returns the names of the cluster's databases, those that do
// not allow connections (template0) first.
func (c *Cluster) databases(ctx context.Context) ([]database, error) {
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname, datallowconn FROM pg_catalog.pg_database ORDER BY datallowconn, datname")
	if err != nil {
		return nil, fmt.Errorf("pgtest: listing databases: %w", err)
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[database])
	if err != nil {
		return nil, fmt.Errorf("pgtest: listing databases: %w", err)
	}
	return dbs, nil
}

type database struct {
	Name       string
	AllowsConn bool
}

// inEveryDatabase runs statements in every database of the running
// cluster, including those that do not allow connections (template0),
// which are opened for the purpose and closed again. Databases that do not
// allow connections come first, so that statements run last in the others
// see pg_database in its final state.
func (c *Cluster) inEveryDatabase(ctx context.Context, statements ...string) error {
	dbs, err := c.databases(ctx)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		name := pgx.Identifier{db.Name}.Sanitize()
		if !db.AllowsConn {
			if err := c.exec(ctx, "postgres", "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true"); err != nil {
				return err
			}
		}
		err := c.exec(ctx, db.Name, statements...)
		if !db.AllowsConn {
			if cerr := c.exec(ctx, "postgres", "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
