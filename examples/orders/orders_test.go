package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/estest"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/pgstore"
)

func TestMain(m *testing.M) { pgtest.MainCheckingLeaks(m) }

var (
	orderID = uuid.MustParse("0190c1d2-0000-7000-8000-000000000001")
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	created = OrderCreated{OrderID: orderID, CustomerID: "cust-1", CreatedAt: t0}
	book    = ItemAdded{SKU: "BOOK-1", Quantity: 2, PriceCents: 1250}
	mug     = ItemAdded{SKU: "MUG-7", Quantity: 1, PriceCents: 800}
	placed  = OrderPlaced{TotalCents: 3300, PlacedAt: t0}
	shipped = OrderShipped{Carrier: "DHL", ShippedAt: t0}
)

func TestCreate(t *testing.T) {
	o := estest.Given(t, NewOrder).
		When(func(o *Order) error { return o.Create(orderID, "cust-1", t0) }).
		Then(created)
	require.Equal(t, orderID.String(), o.ID())
	require.Equal(t, StatusOpen, o.Status)

	estest.Given(t, NewOrder, created).
		When(func(o *Order) error { return o.Create(orderID, "cust-1", t0) }).
		ThenError(ErrAlreadyCreated)
}

func TestAddItem(t *testing.T) {
	o := estest.Given(t, NewOrder, created, book).
		When(func(o *Order) error { return o.AddItem("MUG-7", 1, 800) }).
		Then(mug)
	require.Equal(t, []Line{{"BOOK-1", 2, 1250}, {"MUG-7", 1, 800}}, o.Lines)
	require.Equal(t, int64(3300), o.Total())

	estest.Given(t, NewOrder, created).
		When(func(o *Order) error { return o.AddItem("BOOK-1", 0, 1250) }).
		ThenError(ErrInvalidItem)
	estest.Given(t, NewOrder).
		When(func(o *Order) error { return o.AddItem("BOOK-1", 1, 1250) }).
		ThenError(ErrNotCreated)
	estest.Given(t, NewOrder, created, book, placed).
		When(func(o *Order) error { return o.AddItem("MUG-7", 1, 800) }).
		ThenError(ErrNotOpen)
}

func TestRemoveItem(t *testing.T) {
	o := estest.Given(t, NewOrder, created, book, mug).
		When(func(o *Order) error { return o.RemoveItem("BOOK-1") }).
		Then(ItemRemoved{SKU: "BOOK-1"})
	require.Equal(t, []Line{{"MUG-7", 1, 800}}, o.Lines)
}

func TestRemoveMissingItem(t *testing.T) {
	estest.Given(t, NewOrder, created, book).
		When(func(o *Order) error { return o.RemoveItem("HAT-9") }).
		ThenError(ErrItemNotInOrder)
	// An item that was added and removed again is missing too.
	estest.Given(t, NewOrder, created, book, ItemRemoved{SKU: "BOOK-1"}).
		When(func(o *Order) error { return o.RemoveItem("BOOK-1") }).
		ThenError(ErrItemNotInOrder)
}

func TestPlaceEmpty(t *testing.T) {
	estest.Given(t, NewOrder, created).
		When(func(o *Order) error { return o.Place(t0) }).
		ThenError(ErrEmptyOrder)
	estest.Given(t, NewOrder, created, book, ItemRemoved{SKU: "BOOK-1"}).
		When(func(o *Order) error { return o.Place(t0) }).
		ThenError(ErrEmptyOrder)
}

func TestPlace(t *testing.T) {
	o := estest.Given(t, NewOrder, created, book, mug).
		When(func(o *Order) error { return o.Place(t0) }).
		Then(placed)
	require.Equal(t, StatusPlaced, o.Status)
	require.Equal(t, int64(3), o.StoredVersion()) // the 3 given events
	require.Equal(t, int64(4), o.Version())

	estest.Given(t, NewOrder, created, book, placed).
		When(func(o *Order) error { return o.Place(t0) }).
		ThenError(ErrNotOpen)
}

func TestShipUnplaced(t *testing.T) {
	estest.Given(t, NewOrder, created, book).
		When(func(o *Order) error { return o.Ship("DHL", t0) }).
		ThenError(ErrNotPlaced)
	estest.Given(t, NewOrder, created, book, OrderCancelled{Reason: "x", CancelledAt: t0}).
		When(func(o *Order) error { return o.Ship("DHL", t0) }).
		ThenError(ErrNotPlaced)
	estest.Given(t, NewOrder).
		When(func(o *Order) error { return o.Ship("DHL", t0) }).
		ThenError(ErrNotCreated)
}

func TestShip(t *testing.T) {
	o := estest.Given(t, NewOrder, created, book, placed).
		When(func(o *Order) error { return o.Ship("DHL", t0) }).
		Then(shipped)
	require.Equal(t, StatusShipped, o.Status)

	estest.Given(t, NewOrder, created, book, placed, shipped).
		When(func(o *Order) error { return o.Ship("DHL", t0) }).
		ThenError(ErrAlreadyShipped)
}

func TestCancel(t *testing.T) {
	cancelled := OrderCancelled{Reason: "changed mind", CancelledAt: t0}
	estest.Given(t, NewOrder, created).
		When(func(o *Order) error { return o.Cancel("changed mind", t0) }).
		Then(cancelled)
	o := estest.Given(t, NewOrder, created, book, placed).
		When(func(o *Order) error { return o.Cancel("changed mind", t0) }).
		Then(cancelled)
	require.Equal(t, StatusCancelled, o.Status)
}

func TestCancelAfterShip(t *testing.T) {
	estest.Given(t, NewOrder, created, book, placed, shipped).
		When(func(o *Order) error { return o.Cancel("too late", t0) }).
		ThenError(ErrAlreadyShipped)
}

func TestCancelTwice(t *testing.T) {
	estest.Given(t, NewOrder, created, OrderCancelled{Reason: "first", CancelledAt: t0}).
		When(func(o *Order) error { return o.Cancel("second", t0) }).
		ThenError(ErrAlreadyCancelled)
}

func TestApplyUnknownEvent(t *testing.T) {
	require.Error(t, NewOrder().Apply(struct{}{}))
}

// TestEventsRoundTrip checks that every event survives the registry's
// encoding unchanged.
func TestEventsRoundTrip(t *testing.T) {
	r := es.NewRegistry()
	require.NoError(t, registerEvents(r))
	for _, ev := range []any{created, book, ItemRemoved{SKU: "BOOK-1"}, placed, shipped, OrderCancelled{Reason: "r", CancelledAt: t0}} {
		name, data, err := r.Encode(ev)
		require.NoError(t, err)
		got, err := r.Decode(es.Event{Type: name, Data: data})
		require.NoError(t, err)
		require.Equal(t, ev, got)
	}
}

// TestRun runs the whole tour on the in-memory store and checks its key
// lines.
func TestRun(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, &out, memstore.New(nil), nil))
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"-> version 1",
		"RemoveItem(PEN-3)              -> version 5",
		`RemoveItem("HAT-9")            -> refused: order: item not in order`,
		"Save (correlation checkout-1)  -> stored at version 5, 0 pending",
		"Place()                        -> refused: order: has no items",
		`Ship("DHL")                    -> refused: order: not placed`,
		`Cancel("again")                -> refused: order: already cancelled`,
		"Clerks A and B both load the order at version 5",
		"-> conflict: expected version 5, actual 6 (1 event still pending)",
		"attempt 1: loaded at version 6",
		"attempt 2: loaded at version 7",
		"saved at version 8 after 2 attempts",
		"Place()                        -> version 9, total 51.00",
		`Ship("DHL")                    -> version 10`,
		`Cancel("changed mind")         -> refused: order: already shipped`,
		"v1  OrderCreated   customer cust-42  [correlation checkout-1]",
		"v8  ItemAdded      1 x WRAP-1 at 2.50  [correlation clerk-b]",
		"v10 OrderShipped   with DHL  [correlation fulfil-1]",
		"(in-memory store: no SQL to show)",
	} {
		require.Contains(t, got, want)
	}
	require.Less(t, strings.Count(got, "\n"), 50, "the output should stay compact")
}

// TestConnectFallback checks that an unreachable DATABASE_URL falls back to
// the in-memory store with a one-line notice.
func TestConnectFallback(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nowhere?connect_timeout=5")
	var out strings.Builder
	store, db, cleanup := connect(context.Background(), &out)
	defer cleanup()
	require.Nil(t, db)
	require.IsType(t, &memstore.Store{}, store)
	require.Equal(t, 1, strings.Count(out.String(), "\n"), "one line: %q", out.String())
	require.Contains(t, out.String(), "running on the in-memory store instead")
}

// TestRunPostgres runs the whole tour on PostgreSQL (a fresh database) and
// checks the SQL view of the stream and the order_details read model that
// the transactional subscription kept.
func TestRunPostgres(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.NewDatabase(t))
	// Generous: the tour is many round trips, slow on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	store, db, cleanup := connect(ctx, &out)
	defer cleanup()
	require.NotNil(t, db, out.String())
	require.IsType(t, &pgstore.Store{}, store)
	require.NoError(t, run(ctx, &out, store, db))
	got := out.String()
	t.Log("\n" + got)
	for _, want := range []string{
		"saved at version 8 after 2 attempts",
		"6. The same stream with SQL",
		"    1 | OrderCreated   | checkout-1  | {",
		"| fulfil-1    | {",
		"7. The order_details read model",
		"   cust-42  | shipped   |     6 |  51.00 | DHL     | 10",
		"   cust-7   | cancelled |     0 |   0.00 |         | 2",
	} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, "projection stopped")

	// Each event applied once: the lines add up to the events.
	var lines, qty int
	require.NoError(t, db.QueryRow(ctx, "SELECT count(*), sum(quantity) FROM "+schema+".order_detail_lines").Scan(&lines, &qty))
	require.Equal(t, 4, lines, "BOOK-1, MUG-7, CARD-2, WRAP-1")
	require.Equal(t, 6, qty)
	// The projection ran as a consumer group: each order's stream was
	// handled by its partition, whose checkpoint is past the stream's
	// last event.
	pg := store.(*pgstore.Store)
	for _, customer := range []string{"cust-42", "cust-7"} {
		var stream string
		var tx uint64
		var global int64
		require.NoError(t, db.QueryRow(ctx, `SELECT e.stream_id, e.transaction_id, e.global_position
			FROM `+schema+`.order_details AS d JOIN `+schema+`.events AS e ON e.stream_id = 'order-' || d.order_id
			WHERE d.customer_id = $1 ORDER BY e.version DESC LIMIT 1`, customer).Scan(&stream, &tx, &global))
		last := es.NewPosition(tx, global)
		part := es.PartitionName(projectionName, es.StreamPartition(stream, projectionPartitions), projectionPartitions)
		pos, ok, err := pg.Checkpoint(ctx, part)
		require.NoError(t, err)
		require.True(t, ok, "partition %s has a checkpoint", part)
		require.False(t, pos.Before(last), "partition %s is past the last event of %s", part, stream)
	}
}
