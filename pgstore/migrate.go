package pgstore

import (
	"cmp"
	"context"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/pgevent/es/migrations"
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

// MigrateOpts configures [Migrate]. A nil *MigrateOpts uses every default.
type MigrateOpts struct {
	// Schema is the schema to install into; it is created if missing.
	// Defaults to "es".
	Schema string
	// VersionTable is the table in which tern records the applied version.
	// Defaults to "<schema>.schema_version".
	VersionTable string
	// TargetVersion migrates up or down to this version. Defaults to 0,
	// meaning the latest.
	TargetVersion int32
}

// Migrate brings the es schema up to date (or to opts.TargetVersion) by
// running the embedded migrations of package migrations through tern's
// migrate package, with the schema name as template data. It takes tern's
// advisory lock, so concurrent calls are safe.
func Migrate(ctx context.Context, conn *pgx.Conn, opts *MigrateOpts) error {
	if opts == nil {
		opts = &MigrateOpts{}
	}
	schema := cmp.Or(opts.Schema, DefaultSchema)
	if err := validSchema(schema); err != nil {
		return err
	}
	versionTable := cmp.Or(opts.VersionTable, schema+".schema_version")

	// The version table lives in the schema, which must exist first.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("pgstore: creating schema %s: %w", schema, err)
	}
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("pgstore: preparing migrations: %w", err)
	}
	m.Data["schema"] = schema
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("pgstore: loading migrations: %w", err)
	}
	if opts.TargetVersion > 0 {
		err = m.MigrateTo(ctx, opts.TargetVersion)
	} else {
		err = m.Migrate(ctx)
	}
	if err != nil {
		return fmt.Errorf("pgstore: migrating schema %s: %w", schema, err)
	}
	return nil
}
