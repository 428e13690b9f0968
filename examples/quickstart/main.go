// Command quickstart is a five-minute tour of es on PostgreSQL: it installs
// the schema, appends events, reads them back from Go and from SQL, shows a
// version conflict and an idempotent retry, and reads the global log.
//
// It connects to DATABASE_URL, or starts a throwaway PostgreSQL server from
// the local binaries (as the test harness does) when DATABASE_URL is unset.
//
//	make demo
//	DATABASE_URL=postgres://... go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		fmt.Println("DATABASE_URL is not set: starting a throwaway PostgreSQL server...")
		cluster, err := pgtest.StartCluster(nil)
		if err != nil {
			return fmt.Errorf("starting PostgreSQL (set DATABASE_URL to use your own): %w", err)
		}
		defer cluster.Remove()
		url = cluster.ConnString("postgres")
	}

	// 1. Install the schema (idempotent: already-applied migrations are skipped).
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{Schema: "quickstart"}); err != nil {
		return err
	}
	fmt.Println("schema \"quickstart\" migrated")

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := pgstore.New(pool, &pgstore.Config{Schema: "quickstart"})
	if err != nil {
		return err
	}

	// 2. Append: a new stream (NoStream), then more events at version 2.
	stream := "order-" + uuid.NewString()[:8]
	res, err := store.Append(ctx, stream, es.NoStream, []es.NewEvent{
		{Type: "OrderCreated", Data: []byte{0x80}},
		{Type: "ItemAdded", Data: []byte{0x80}},
	})
	if err != nil {
		return err
	}
	fmt.Printf("appended to %s: now at version %d, last position %s\n", stream, res.StreamVersion, res.LastPosition)

	placed := es.NewEvent{ID: uuid.Must(uuid.NewV7()), Type: "OrderPlaced", Data: []byte{0x80}}
	res, err = store.Append(ctx, stream, es.Exactly(2), []es.NewEvent{placed})
	if err != nil {
		return err
	}
	fmt.Printf("placed at version %d\n", res.StreamVersion)

	// 3. A stale writer still believes the stream is at version 2.
	_, err = store.Append(ctx, stream, es.Exactly(2), []es.NewEvent{{Type: "OrderCancelled", Data: []byte{0x80}}})
	var conflict *es.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Printf("conflict, as expected: expected %s, actual %d\n", conflict.Expected, conflict.Actual)
	} else {
		return fmt.Errorf("wanted a version conflict, got %v", err)
	}

	// 4. Retrying the append of "placed" (same event id) is idempotent.
	again, err := store.Append(ctx, stream, es.Exactly(2), []es.NewEvent{placed})
	if err != nil {
		return err
	}
	fmt.Printf("retry of the same append returns the original result: version %d, position %s\n", again.StreamVersion, again.LastPosition)

	// 5. Read the stream from Go.
	fmt.Println("the stream, read from Go:")
	for ev, err := range store.ReadStream(ctx, stream, nil) {
		if err != nil {
			return err
		}
		fmt.Printf("  v%d %-14s at %s\n", ev.Version, ev.Type, ev.Position)
	}

	// 6. The same events from SQL.
	fmt.Println("the stream, read with SQL (SELECT version, event_type FROM quickstart.read_stream($1)):")
	rows, err := pool.Query(ctx, "SELECT version, event_type FROM quickstart.read_stream($1)", stream)
	if err != nil {
		return err
	}
	for rows.Next() {
		var v int64
		var typ string
		if err := rows.Scan(&v, &typ); err != nil {
			return err
		}
		fmt.Printf("  v%d %s\n", v, typ)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// 7. The global log of the "order" category.
	n := 0
	for _, err := range store.ReadAll(ctx, &es.ReadAllOpts{Categories: []string{"order"}}) {
		if err != nil {
			return err
		}
		n++
	}
	fmt.Printf("the global log holds %d events in category \"order\"\n", n)
	return nil
}
