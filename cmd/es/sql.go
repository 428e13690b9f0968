package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func pgxIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// schemaVersion returns the migration version recorded in
// <schema>.schema_version, 0 when the table does not exist.
func schemaVersion(ctx context.Context, pool *pgxpool.Pool, schema string) (int32, error) {
	var v int32
	err := pool.QueryRow(ctx, "SELECT version FROM "+pgxIdent(schema)+".schema_version").Scan(&v)
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg) && (pg.Code == "42P01" || pg.Code == "3F000"): // undefined_table, invalid_schema_name
		return 0, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return v, nil
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
