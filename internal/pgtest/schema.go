package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es/pgstore"
)

// NewSchema installs the es schema under a fresh, unique name in the test
// process's database (with pgstore.Migrate) and returns a pool on that
// database and the schema's name. Each test that calls it gets its own
// tables, global log, notification channel and roles (<schema>_reader and
// <schema>_writer; on an ES_TEST_DATABASE_URL server they are dropped when
// the test process ends). The pool is closed at t.Cleanup.
func NewSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	connStr := ConnString(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("pgtest: naming schema: %v", err)
	}
	schema := "t_" + hex.EncodeToString(b[:])

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, connStr)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	serverFor(t).noteSchemaRoles(schema) // before migrating: a failed migration may have created them
	if _, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{Schema: schema}); err != nil {
		t.Fatalf("pgtest: migrating schema %s: %v", schema, err)
	}

	config, err := pgxpool.ParseConfig(connStr)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	config.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, config)
	if err != nil {
		t.Fatalf("pgtest: opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, schema
}

// Store returns a pgstore.Store on a schema of its own (see [NewSchema]).
func Store(t testing.TB) *pgstore.Store {
	t.Helper()
	pool, schema := NewSchema(t)
	s, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return s
}
