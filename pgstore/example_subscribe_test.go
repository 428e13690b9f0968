package pgstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/exampletb"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

// A subscription hands the events of the global log to its handler in
// order, here only the order events, and saves how far it got (its
// checkpoint). Subscribe runs until its context ends: in a service, at
// shutdown; here, once the handler has seen the three order events. It
// then saves the checkpoint and returns nil.
func ExampleStore_Subscribe() {
	t, done := exampletb.New() // in a test: the test's t
	defer done()
	store := pgstoretest.Store(t, nil) // a database of its own, schema "es" installed
	// Five minutes at most, should the events never come.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for _, a := range []struct {
		stream string
		types  []string
	}{
		{"order-1", []string{"OrderPlaced", "OrderPaid"}},
		{"invoice-1", []string{"InvoiceIssued"}},
		{"order-2", []string{"OrderPlaced"}},
	} {
		var events []es.NewEvent
		for _, typ := range a.types {
			events = append(events, es.NewEvent{Type: typ})
		}
		if _, err := store.Append(ctx, a.stream, es.NoStream, events); err != nil {
			t.Fatal(err)
		}
	}

	var last es.Position
	handled := 0
	err := store.Subscribe(ctx, "emails", func(ctx context.Context, e es.Event) error {
		fmt.Println(e.StreamID, e.Version, e.Type)
		last = e.Position
		if handled++; handled == 3 {
			cancel()
		}
		return nil
	}, &es.SubscribeOpts{Categories: []string{"order"}})
	fmt.Println("stopped:", err)

	checkpoint, ok, err := store.Checkpoint(context.Background(), "emails")
	fmt.Println("checkpoint saved:", ok, "at the last event handled:", checkpoint == last, err)
	// Output:
	// order-1 1 OrderPlaced
	// order-1 2 OrderPaid
	// order-2 1 OrderPlaced
	// stopped: <nil>
	// checkpoint saved: true at the last event handled: true <nil>
}

// A transactional handler keeps a read model in the same database: what it
// writes with tx commits together with the subscription's checkpoint, so
// each event's effect is applied exactly once, whatever crashes. Here the
// subscription runs in a goroutine, as in a service, and is stopped once
// it has handled the last append (WaitFor).
func ExampleStore_SubscribeTx() {
	t, done := exampletb.New() // in a test: the test's t
	defer done()
	pool := pgstoretest.Pool(t, nil) // a database of its own, schema "es" installed
	store, err := pgstore.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Five minutes at most, should the events never come.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	_, err = pool.Exec(ctx, "CREATE TABLE order_items (order_id text PRIMARY KEY, items int NOT NULL)")
	if err != nil {
		t.Fatal(err)
	}
	var last es.Position
	for _, o := range []struct {
		stream string
		items  int
	}{{"order-1", 2}, {"order-2", 1}} {
		events := make([]es.NewEvent, o.items)
		for i := range events {
			events[i] = es.NewEvent{Type: "ItemAdded"}
		}
		res, err := store.Append(ctx, o.stream, es.NoStream, events)
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}

	stopped := make(chan error, 1)
	go func() {
		stopped <- store.SubscribeTx(ctx, "order-items", func(ctx context.Context, tx es.Tx, e es.Event) error {
			_, err := pgstore.PgxTx(tx).Exec(ctx, `INSERT INTO order_items AS o VALUES ($1, 1)
				ON CONFLICT (order_id) DO UPDATE SET items = o.items + 1`, e.StreamID)
			return err
		}, &es.SubscribeOpts{EventTypes: []string{"ItemAdded"}})
	}()

	// Read your writes: wait until the subscription has handled the last
	// append, then stop it.
	if err := store.WaitFor(ctx, "order-items", last); err != nil {
		t.Fatal(err)
	}
	cancel()
	fmt.Println("stopped:", <-stopped)

	rows, err := pool.Query(context.Background(), "SELECT order_id, items FROM order_items ORDER BY order_id")
	if err != nil {
		t.Fatal(err)
	}
	var orderID string
	var items int
	_, err = pgx.ForEachRow(rows, []any{&orderID, &items}, func() error {
		fmt.Println(orderID, items)
		return nil
	})
	fmt.Println(err)
	// Output:
	// stopped: <nil>
	// order-1 2
	// order-2 1
	// <nil>
}
