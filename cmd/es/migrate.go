package main

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"

	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/schema"
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	f := e.flags("migrate", "migrate up|down|status [--to N]")
	to := f.Int("to", -1, "the version to reach: up defaults to the latest; down needs it (0 removes everything)")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 1, "up, down or status"); err != nil {
		return err
	}
	opts := &pgstore.MigrateOpts{
		Schema: e.schema,
		OnStep: func(version int32, name, direction string) {
			fmt.Fprintf(e.stdout, "%s %d %s\n", direction, version, name)
		},
	}
	switch args[0] {
	case "up":
		if *to >= 0 {
			opts.TargetVersion = int32(*to)
		}
		if *to == 0 {
			return fmt.Errorf("%w: --to 0 with up: give a version of at least 1, or none for the latest", errUsage)
		}
	case "down":
		if *to < 0 {
			return fmt.Errorf("%w: migrate down needs --to N (--to 0 removes the schema's tables and their events)", errUsage)
		}
		opts.Direction, opts.TargetVersion = pgstore.MigrateDown, int32(*to)
	case "status":
		return migrateStatus(ctx, e)
	default:
		return fmt.Errorf("%w: want up, down or status, got %q", errUsage, args[0])
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := pgstore.Migrate(ctx, pool, opts)
	if err != nil {
		return err
	}
	if len(res.Steps) == 0 {
		fmt.Fprintf(e.stdout, "schema %s: already at version %d\n", res.Schema, res.ToVersion)
	} else {
		fmt.Fprintf(e.stdout, "schema %s: version %d -> %d\n", res.Schema, res.FromVersion, res.ToVersion)
	}
	if res.CodeInstalled {
		fmt.Fprintf(e.stdout, "functions, views and privileges installed\n")
	}
	return nil
}

// migrations lists the embedded migration files, in order.
func migrations() ([]string, error) {
	names, err := fs.Glob(schema.Migrations(), "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = path.Base(n)
	}
	return names, nil
}

func migrateStatus(ctx context.Context, e *env) error {
	files, err := migrations()
	if err != nil {
		return err
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := schemaVersion(ctx, pool, e.schema)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "schema %s: version %d, latest %d\n", e.schema, v, len(files))
	for i, n := range files {
		state := "applied"
		if int32(i) >= v {
			state = "pending"
		}
		fmt.Fprintf(e.stdout, "  %-8s %d %s\n", state, i+1, n)
	}
	return nil
}
