// Command orders is a tour of es through a small order domain: an Order
// aggregate (domain.go) with its events and rules, stored through an
// es.Repository. It runs every command, shows rules refusing bad ones, a
// version conflict between two clerks and how Repository.Update's retry
// resolves it, and prints the stored stream from Go and from SQL. On
// PostgreSQL, a transactional subscription (projection.go) keeps an
// order_details read model up to date meanwhile; the tour ends by showing it.
//
// It connects to DATABASE_URL, or starts a throwaway PostgreSQL server from
// the local binaries (as the test harness does) when DATABASE_URL is unset,
// or, when neither works, runs on the in-memory store.
//
//	DATABASE_URL=postgres://... go run ./examples/orders
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/pgstore"
)

// schema is the PostgreSQL schema the demo installs es into.
const schema = "orders_demo"

func main() {
	ctx := context.Background()
	store, db, cleanup := connect(ctx, os.Stdout)
	defer cleanup()
	if err := run(ctx, os.Stdout, store, db); err != nil {
		cleanup()
		log.Fatal(err)
	}
}

// connect returns the store to run on: PostgreSQL at DATABASE_URL, or a
// throwaway PostgreSQL server, with the schema migrated; or, when that
// fails, the in-memory store (with a nil pool). cleanup releases what was
// started; it may be called more than once.
func connect(ctx context.Context, w io.Writer) (es.Store, *pgxpool.Pool, func()) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		cleanups = nil
	}
	fallback := func(err error) (es.Store, *pgxpool.Pool, func()) {
		cleanup()
		// One line, however long and multi-line the error is.
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if len(msg) > 160 {
			msg = msg[:157] + "..."
		}
		fmt.Fprintf(w, "no PostgreSQL available (%s): running on the in-memory store instead\n", msg)
		return memstore.New(nil), nil, func() {}
	}

	url := os.Getenv("DATABASE_URL")
	where := "PostgreSQL at DATABASE_URL"
	if url == "" {
		cluster, err := pgtest.StartCluster(nil)
		if err != nil {
			return fallback(fmt.Errorf("DATABASE_URL is unset and starting a throwaway server failed: %w", err))
		}
		cleanups = append(cleanups, func() { _ = cluster.Remove() })
		url = cluster.ConnString("postgres")
		where = "a throwaway PostgreSQL server (DATABASE_URL is unset)"
	}

	// Install es into its own schema; already-applied migrations are skipped.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return fallback(fmt.Errorf("%s: %w", where, err))
	}
	_, err = pgstore.Migrate(cctx, conn, &pgstore.MigrateOpts{Schema: schema})
	_ = conn.Close(ctx)
	if err != nil {
		return fallback(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fallback(err)
	}
	cleanups = append(cleanups, pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema,
		Subscriptions: pgstore.SubscriptionConfig{PollInterval: 200 * time.Millisecond}})
	if err != nil {
		return fallback(err)
	}
	fmt.Fprintf(w, "store: %s, schema %q migrated\n", where, schema)
	return store, pool, cleanup
}

// run is the tour. db, when not nil, is the PostgreSQL pool behind store,
// used to show the events with SQL.
func run(ctx context.Context, w io.Writer, store es.Store, db *pgxpool.Pool) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }

	// The registry maps stable event names to the Go event types.
	registry := es.NewRegistry()
	if err := registerEvents(registry); err != nil {
		return err
	}
	// The repository loads and saves *Order aggregates in streams named
	// "order-<id>" (the category is the lower-cased type name).
	repo, err := es.NewRepository(store, registry, NewOrder, nil)
	if err != nil {
		return err
	}
	now := time.Now()

	// On PostgreSQL, the order_details read model follows the events from
	// the start, through a transactional consumer group (projection.go).
	if pg, ok := store.(*pgstore.Store); ok && db != nil {
		stop, err := startProjection(ctx, pg, db, registry)
		if err != nil {
			return err
		}
		defer func() {
			if err := stop(); err != nil {
				p("projection stopped: %v", err)
			}
		}()
	}

	// 1. Commands record events on the aggregate in memory; Save appends
	// them. Metadata set on the context is attached to every saved event.
	id := uuid.Must(uuid.NewV7())
	order := repo.New(id.String())
	p("1. Order %s: each command records one event (version = events so far)", order.ID())
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{`Create(customer "cust-42")`, func() error { return order.Create(id, "cust-42", now) }},
		{"AddItem(BOOK-1, 2 x 12.50)", func() error { return order.AddItem("BOOK-1", 2, 1250) }},
		{"AddItem(MUG-7, 1 x 8.00)", func() error { return order.AddItem("MUG-7", 1, 800) }},
		{"AddItem(PEN-3, 5 x 1.20)", func() error { return order.AddItem("PEN-3", 5, 120) }},
		{"RemoveItem(PEN-3)", func() error { return order.RemoveItem("PEN-3") }},
	} {
		if err := c.do(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		p("   %-30s -> version %d", c.name, order.Version())
	}
	if err := refused(p, `RemoveItem("HAT-9")`, order.RemoveItem("HAT-9"), ErrItemNotInOrder); err != nil {
		return err
	}
	// The metadata on the context goes with every event of the save.
	checkout := es.WithMetadata(ctx, es.Metadata{CorrelationID: "checkout-1"})
	if _, err := repo.Save(checkout, order); err != nil {
		return err
	}
	p("   %-30s -> stored at version %d, %d pending", "Save (correlation checkout-1)", order.StoredVersion(), len(order.Pending()))

	// 2. The rules refuse commands that make no sense; nothing is recorded.
	id2 := uuid.Must(uuid.NewV7())
	empty := repo.New(id2.String())
	if err := empty.Create(id2, "cust-7", now); err != nil {
		return err
	}
	p("2. A second order, created but empty: the rules refuse bad commands, recording nothing")
	if err := refused(p, "Place()", empty.Place(now), ErrEmptyOrder); err != nil {
		return err
	}
	if err := refused(p, `Ship("DHL")`, empty.Ship("DHL", now), ErrNotPlaced); err != nil {
		return err
	}
	if err := empty.Cancel("customer left", now); err != nil {
		return err
	}
	p("   %-30s -> version %d", `Cancel("customer left")`, empty.Version())
	if err := refused(p, `Cancel("again")`, empty.Cancel("again", now), ErrAlreadyCancelled); err != nil {
		return err
	}
	emptySaved, err := repo.Save(ctx, empty)
	if err != nil {
		return err
	}
	p("   %-30s -> stored at version %d", "Save", empty.StoredVersion())

	// 3. Two clerks load the same order at the same version. The first save
	// wins; the second is refused, because its expected version is stale.
	clerkA, err := repo.Load(ctx, id.String())
	if err != nil {
		return err
	}
	clerkB, err := repo.Load(ctx, id.String())
	if err != nil {
		return err
	}
	p("3. Clerks A and B both load the order at version %d", clerkA.Version())
	if err := clerkA.AddItem("CARD-2", 1, 300); err != nil {
		return err
	}
	asA := es.WithMetadata(ctx, es.Metadata{CorrelationID: "clerk-a"})
	asB := es.WithMetadata(ctx, es.Metadata{CorrelationID: "clerk-b"})
	if _, err := repo.Save(asA, clerkA); err != nil {
		return err
	}
	p("   %-30s -> stored at version %d", "A: AddItem(CARD-2) + Save", clerkA.StoredVersion())
	if err := clerkB.AddItem("WRAP-1", 1, 250); err != nil {
		return err
	}
	_, err = repo.Save(asB, clerkB)
	var conflict *es.VersionConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("clerk B's save: want a version conflict, got %v", err)
	}
	p("   %-30s -> conflict: expected version %s, actual %d (%d event still pending)",
		"B: AddItem(WRAP-1) + Save", conflict.Expected, conflict.Actual, len(clerkB.Pending()))

	// Update loads, runs the command and saves, and on a conflict starts
	// again from a fresh load. To show a retry, clerk A saves once more
	// while B's first attempt is running.
	p("   B redoes it with repo.Update(id, AddItem(WRAP-1)):")
	attempt := 0
	updated, _, err := repo.Update(asB, id.String(), func(o *Order) error {
		attempt++
		p("     attempt %d: loaded at version %d", attempt, o.Version())
		if attempt == 1 {
			a, err := repo.Load(ctx, id.String())
			if err != nil {
				return err
			}
			if err := a.AddItem("BOOK-1", 1, 1250); err != nil {
				return err
			}
			if _, err := repo.Save(asA, a); err != nil {
				return err
			}
			p("     (meanwhile A adds another BOOK-1: stored at version %d)", a.StoredVersion())
		}
		return o.AddItem("WRAP-1", 1, 250)
	})
	if err != nil {
		return err
	}
	p("     saved at version %d after %d attempts", updated.StoredVersion(), attempt)

	// 4. Place and ship; a shipped order cannot be cancelled.
	p("4. Place, ship, and try to cancel (each through repo.Update):")
	fulfil := es.WithMetadata(ctx, es.Metadata{CorrelationID: "fulfil-1"})
	placed, _, err := repo.Update(fulfil, id.String(), func(o *Order) error { return o.Place(now) })
	if err != nil {
		return err
	}
	p("   %-30s -> version %d, total %s", "Place()", placed.StoredVersion(), money(placed.TotalCents))
	shipped, shippedAt, err := repo.Update(fulfil, id.String(), func(o *Order) error { return o.Ship("DHL", now) })
	if err != nil {
		return err
	}
	p("   %-30s -> version %d", `Ship("DHL")`, shipped.StoredVersion())
	_, _, err = repo.Update(fulfil, id.String(), func(o *Order) error { return o.Cancel("changed mind", now) })
	if err := refused(p, `Cancel("changed mind")`, err, ErrAlreadyShipped); err != nil {
		return err
	}

	// 5. The stored stream, read back and decoded into the event structs.
	stream := repo.StreamID(id.String())
	p("5. Stream %s, read with ReadStream and decoded by the registry:", stream)
	for ev, err := range store.ReadStream(ctx, stream, nil) {
		if err != nil {
			return err
		}
		event, err := registry.Decode(ev)
		if err != nil {
			return err
		}
		md, err := ev.Meta()
		if err != nil {
			return err
		}
		corr := ""
		if md.CorrelationID != "" {
			corr = "  [correlation " + md.CorrelationID + "]"
		}
		p("   v%-2d %-14s %s%s", ev.Version, ev.Type, describe(event), corr)
	}

	// 6. The same events are plain rows in PostgreSQL.
	if db == nil {
		p("6. (in-memory store: no SQL to show)")
		return nil
	}
	// events_view decodes the msgpack data and metadata to jsonb.
	query := "SELECT version, event_type, correlation_id, data::text FROM " + schema +
		".events_view WHERE stream_id = $1 ORDER BY version"
	p("6. The same stream with SQL: %s", query)
	rows, err := db.Query(ctx, query, stream)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			version       int64
			typ           string
			correlationID *string
			data          string
		)
		if err := rows.Scan(&version, &typ, &correlationID, &data); err != nil {
			return err
		}
		p("   %2d | %-14s | %-11s | %s", version, typ, deref(correlationID), data)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	// 7. The read model, kept by the projection's consumer group while the
	// tour ran. Read your writes: wait until the projection has handled
	// each order's last save (WaitFor on a group waits for the partition
	// of the saved stream, which handles that stream's events in order),
	// then query.
	p("7. The order_details read model (a transactional consumer group of %d partitions on %d workers",
		projectionPartitions, projectionWorkers)
	p("   applied each event once), read after WaitFor(%q, the position of each order's last save):", projectionName)
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, saved := range []es.AppendResult{shippedAt, emptySaved} {
		if err := store.(es.Subscriber).WaitFor(wait, projectionName, saved.LastPosition); err != nil {
			return fmt.Errorf("waiting for the read model: %w", err)
		}
	}
	return showReadModel(ctx, w, db, []string{id.String(), id2.String()})
}

// refused prints that the command name was refused with err, or returns an
// error when err is not the expected refusal.
func refused(p func(string, ...any), name string, err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%s: want the error %q, got %v", name, want, err)
	}
	p("   %-30s -> refused: %v", name, err)
	return nil
}

// describe shows a decoded event in a line.
func describe(event any) string {
	switch e := event.(type) {
	case OrderCreated:
		return fmt.Sprintf("customer %s", e.CustomerID)
	case ItemAdded:
		return fmt.Sprintf("%d x %s at %s", e.Quantity, e.SKU, money(e.PriceCents))
	case ItemRemoved:
		return e.SKU
	case OrderPlaced:
		return "total " + money(e.TotalCents)
	case OrderShipped:
		return "with " + e.Carrier
	case OrderCancelled:
		return "because " + e.Reason
	default:
		return fmt.Sprintf("%+v", event)
	}
}

// money formats cents as units with two decimals.
func money(cents int64) string {
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

// deref returns *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
