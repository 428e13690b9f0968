package pgtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Dump writes database dbname of the running cluster to file with pg_dump
// in its custom format (pg_dump -Fc), as the superuser: what a user does
// to move a database to another server. The dump holds the database's
// schemas, data and privileges, but not the roles they are granted to
// (roles belong to the cluster: see [Cluster.CopyRoles]).
func (c *Cluster) Dump(ctx context.Context, dbname, file string) error {
	return runCommand(c.clientCommand(ctx, "pg_dump", "-Fc", "--no-password", "-f", file, "-d", c.ConnString(dbname)))
}

// Restore creates database dbname on the running cluster (empty, from
// template0) and restores into it a dump written by [Cluster.Dump], with
// pg_restore in one transaction, stopping at the first error. Objects keep
// their owners and privileges, so every role the dump names (owners,
// grantees such as <schema>_reader and <schema>_writer) must exist:
// restore them first with [Cluster.CopyRoles]; otherwise the restore fails
// (role ... does not exist) and the database stays empty.
func (c *Cluster) Restore(ctx context.Context, file, dbname string) error {
	if err := c.exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize()+" TEMPLATE template0"); err != nil {
		return err
	}
	return runCommand(c.clientCommand(ctx, "pg_restore", "--exit-on-error", "--single-transaction", "--no-password",
		"-d", c.ConnString(dbname), file))
}

// CopyRoles copies the roles of cluster from (both running) into c: the
// output of pg_dumpall --roles-only on from, run with psql on c in one
// transaction, stopping at the first error. That is the documented way to
// carry roles, their attributes and memberships to a new cluster before
// pg_restore. A role that exists in c already (the bootstrap superuser
// postgres, at least) is not created again but gets from's attributes
// (pg_dumpall writes CREATE ROLE, then ALTER ROLE ... WITH ...; the CREATE
// ROLE of an existing role is left out, where plain psql would report an
// error and go on).
func (c *Cluster) CopyRoles(ctx context.Context, from *Cluster) error {
	cmd := from.clientCommand(ctx, "pg_dumpall", "--roles-only", "--no-password", "-d", from.ConnString("postgres"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	script, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("pgtest: pg_dumpall: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}

	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT rolname FROM pg_catalog.pg_roles")
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("pgtest: listing roles: %w", err)
	}
	existing := map[string]bool{}
	for _, name := range names {
		existing[name] = true
	}

	psql := c.clientCommand(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
		"-d", c.ConnString("postgres"), "-f", "-")
	script, err = withoutCreateRoles(script, existing)
	if err != nil {
		return err
	}
	psql.Stdin = bytes.NewReader(script)
	return runCommand(psql)
}

// withoutCreateRoles returns a pg_dumpall script without the lines
// "CREATE ROLE <name>;" of the roles in existing.
func withoutCreateRoles(script []byte, existing map[string]bool) ([]byte, error) {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(script))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "CREATE ROLE "); ok && strings.HasSuffix(name, ";") {
			if existing[unquoteIdent(strings.TrimSuffix(name, ";"))] {
				continue
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pgtest: reading pg_dumpall's output: %w", err)
	}
	return out.Bytes(), nil
}

// unquoteIdent reads an SQL identifier as pg_dumpall writes it: in double
// quotes (doubled inside) when it needs them, else as is.
func unquoteIdent(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}
