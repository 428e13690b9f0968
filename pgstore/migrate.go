package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/pgevent/es/schema"
)

// DefaultSchema is the schema the store lives in unless configured otherwise.
const DefaultSchema = "es"

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,49}$`)

// validSchema checks a schema name: a lower-case SQL identifier of at most 50
// bytes, so that "<schema>_events" is a valid channel name.
func validSchema(s string) error {
	if !schemaName.MatchString(s) {
		return fmt.Errorf("pgstore: schema name %q must match %s", s, schemaName)
	}
	return nil
}

// MigrateDirection says whether [Migrate] goes up or down.
type MigrateDirection int

const (
	// MigrateUp applies migrations up to MigrateOpts.TargetVersion (the
	// latest when 0) and installs the code package.
	MigrateUp MigrateDirection = iota
	// MigrateDown reverts migrations down to MigrateOpts.TargetVersion; down
	// to 0 removes everything es installed in the schema.
	MigrateDown
)

// MigrateOpts configures [Migrate]. A nil *MigrateOpts migrates schema "es"
// up to the latest version.
type MigrateOpts struct {
	// Schema is the schema to install into; it is created if missing.
	// Defaults to "es".
	Schema string
	// VersionTable is the table in which tern records the applied version.
	// Defaults to "<schema>.schema_version".
	VersionTable string
	// Direction is MigrateUp or MigrateDown. Defaults to MigrateUp.
	Direction MigrateDirection
	// TargetVersion is the migration version to reach: going up, 0 means the
	// latest; going down, 0 means none (everything removed). Defaults to 0.
	TargetVersion int32
	// OnStep, when set, is called before each migration step runs, with the
	// step's version, name and direction ("up" or "down"), for progress
	// output. Defaults to nil.
	OnStep func(version int32, name, direction string)
}

// MigrateResult reports what [Migrate] did.
type MigrateResult struct {
	// Schema is the schema migrated.
	Schema string
	// FromVersion and ToVersion are the schema's migration versions before
	// and after.
	FromVersion, ToVersion int32
	// Steps are the migration steps applied, in order.
	Steps []MigrateStep
	// CodeInstalled reports whether the code package (functions, views,
	// privileges) was installed: always after migrating up.
	CodeInstalled bool
}

// MigrateStep is one migration step [Migrate] applied.
type MigrateStep struct {
	// Version is the migration's version (its file's number).
	Version int32
	// Name is the migration's file name.
	Name string
	// Direction is "up" or "down".
	Direction string
}

// Migrate brings the es schema to the latest version, or up or down to
// opts.TargetVersion: it creates the schema when missing, runs the embedded
// tern migrations of package [schema] (the tables) and then installs its
// code package (functions, triggers, views, roles, privileges), all in one
// transaction: a failure leaves the schema as it was. db is a *pgx.Conn or a
// *pgxpool.Pool (one connection is acquired for the duration).
//
// The code package is installed on every call, so upgrading es updates its
// functions even when no migration is new. Concurrent calls for one schema
// wait for each other (a transaction-level advisory lock on the schema's
// name); a call that PostgreSQL aborts to break a deadlock with a
// migration in another database of the cluster (they share the roles) is
// run again, up to three times.
func Migrate[DB *pgx.Conn | *pgxpool.Pool](ctx context.Context, db DB, opts *MigrateOpts) (*MigrateResult, error) {
	switch d := any(db).(type) {
	case *pgx.Conn:
		return migrateConn(ctx, d, opts)
	case *pgxpool.Pool:
		c, err := d.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("pgstore: migrating: %w", err)
		}
		defer c.Release()
		return migrateConn(ctx, c.Conn(), opts)
	}
	panic("unreachable")
}

// migrateAttempts bounds how often a migration that lost a deadlock is
// run again.
const migrateAttempts = 3

// migrateConn runs the migration, again when PostgreSQL aborted it to
// break a deadlock: installations in other databases of the cluster share
// its roles (cluster-wide objects), so one migrating down (dropping a role
// it created) and one installing (granting to that role) can lock the two
// roles in opposite orders. The migration is one transaction: running it
// again is safe (OnStep reports the steps of each attempt).
func migrateConn(ctx context.Context, conn *pgx.Conn, opts *MigrateOpts) (*MigrateResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := migrateOnce(ctx, conn, opts)
		var pg *pgconn.PgError
		if attempt < migrateAttempts && errors.As(err, &pg) && pg.Code == pgerrcode.DeadlockDetected && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

func migrateOnce(ctx context.Context, conn *pgx.Conn, opts *MigrateOpts) (*MigrateResult, error) {
	var o MigrateOpts
	if opts != nil {
		o = *opts
	}
	o.Schema = cmp.Or(o.Schema, DefaultSchema)
	if err := validSchema(o.Schema); err != nil {
		return nil, err
	}
	o.VersionTable = cmp.Or(o.VersionTable, o.Schema+".schema_version")
	if o.Direction != MigrateUp && o.Direction != MigrateDown {
		return nil, fmt.Errorf("pgstore: unknown migrate direction %d", o.Direction)
	}
	if o.TargetVersion < 0 {
		return nil, fmt.Errorf("pgstore: target version %d is negative", o.TargetVersion)
	}
	res := &MigrateResult{Schema: o.Schema}
	wrap := func(what string, err error) (*MigrateResult, error) {
		return nil, fmt.Errorf("pgstore: migrating schema %s: %s: %w", o.Schema, what, err)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return wrap("beginning", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// One migration of a schema at a time; the version table lives in the
	// schema, which must exist first.
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))",
		"es_migrate:"+o.Schema); err != nil {
		return wrap("locking", err)
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{o.Schema}.Sanitize()); err != nil {
		return wrap("creating the schema", err)
	}
	// The migrator runs on the connection, inside tx: its own transactions
	// are disabled so that everything commits (or not) together.
	m, err := migrate.NewMigratorEx(ctx, conn, o.VersionTable, &migrate.MigratorOptions{DisableTx: true})
	if err != nil {
		return wrap("preparing migrations", err)
	}
	data := map[string]any{"schema": o.Schema}
	m.Data = data
	if err := m.LoadMigrations(schema.Migrations()); err != nil {
		return wrap("loading migrations", err)
	}
	m.OnStart = func(version int32, name, direction, _ string) {
		res.Steps = append(res.Steps, MigrateStep{Version: version, Name: name, Direction: direction})
		if o.OnStep != nil {
			o.OnStep(version, name, direction)
		}
	}
	if res.FromVersion, err = m.GetCurrentVersion(ctx); err != nil {
		return wrap("reading the version", err)
	}
	target := o.TargetVersion
	latest := int32(len(m.Migrations))
	switch {
	case o.Direction == MigrateUp && target == 0:
		target = latest
	case o.Direction == MigrateUp && target < res.FromVersion:
		return nil, fmt.Errorf("pgstore: migrating schema %s up: it is at version %d, above %d", o.Schema, res.FromVersion, target)
	case o.Direction == MigrateDown && target > res.FromVersion:
		return nil, fmt.Errorf("pgstore: migrating schema %s down: it is at version %d, below %d", o.Schema, res.FromVersion, target)
	}
	if err := m.MigrateTo(ctx, target); err != nil {
		return wrap("migrating", err)
	}
	res.ToVersion = target

	if target > 0 {
		code, err := migrate.LoadCodePackage(schema.Code())
		if err != nil {
			return wrap("loading the code package", err)
		}
		sql, err := code.Eval(data)
		if err != nil {
			return wrap("evaluating the code package", err)
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return wrap("installing the code package", err)
		}
		res.CodeInstalled = true
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("committing", err)
	}
	return res, nil
}
