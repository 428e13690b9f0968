package pgstore_test

import (
	"context"
	"fmt"

	"github.com/pgevent/es/internal/exampletb"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

// Migrate installs the es schema from the migrations embedded in the
// binary, on the pool the application already has, and reports each step;
// a second call has nothing to apply (it installs the functions again), and
// migrating down to version 0 removes everything it installed but the
// version table, which records version 0. Here the
// schema is "tenant1", a second installation next to the "es" that
// pgstoretest installed.
func ExampleMigrate() {
	t, done := exampletb.New() // in a test: the test's t
	defer done()
	pool := pgstoretest.Pool(t, nil) // a database of its own, schema "es" installed
	ctx := context.Background()

	res, err := pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{Schema: "tenant1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range res.Steps {
		fmt.Println(step.Direction, step.Version, step.Name)
	}
	fmt.Printf("%s: version %d -> %d, functions installed: %v\n", res.Schema, res.FromVersion, res.ToVersion, res.CodeInstalled)

	res, err = pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{Schema: "tenant1"})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("again: %d steps, version %d -> %d, functions installed: %v\n", len(res.Steps), res.FromVersion, res.ToVersion, res.CodeInstalled)

	res, err = pgstore.Migrate(ctx, pool, &pgstore.MigrateOpts{Schema: "tenant1", Direction: pgstore.MigrateDown})
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range res.Steps {
		fmt.Println(step.Direction, step.Version, step.Name)
	}
	var tables []string
	if err := pool.QueryRow(ctx, "SELECT array_agg(tablename ORDER BY tablename) FROM pg_tables WHERE schemaname = 'tenant1'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("down: version %d -> %d, tables left: %v\n", res.FromVersion, res.ToVersion, tables)
	// Output:
	// up 1 001_tables.sql
	// up 2 002_keys_leases.sql
	// up 3 003_subscription_status.sql
	// up 4 004_parked_events.sql
	// up 5 005_consumer_groups.sql
	// up 6 006_stream_lifecycle.sql
	// up 7 007_subject_keys.sql
	// up 8 008_event_schema_versions.sql
	// up 9 009_subscription_replicas.sql
	// up 10 010_archive_partitions.sql
	// tenant1: version 0 -> 10, functions installed: true
	// again: 0 steps, version 10 -> 10, functions installed: true
	// down 10 010_archive_partitions.sql
	// down 9 009_subscription_replicas.sql
	// down 8 008_event_schema_versions.sql
	// down 7 007_subject_keys.sql
	// down 6 006_stream_lifecycle.sql
	// down 5 005_consumer_groups.sql
	// down 4 004_parked_events.sql
	// down 3 003_subscription_status.sql
	// down 2 002_keys_leases.sql
	// down 1 001_tables.sql
	// down: version 10 -> 0, tables left: [schema_version]
}
