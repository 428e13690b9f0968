package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// The order_details read model: one row per order (its customer, status,
// item count and total) and one per order line, kept up to date by a
// transactional subscription. Each event's changes commit in the same
// transaction as the subscription's checkpoint, so after any crash every
// event has been applied exactly once.

// projectionName is the subscription's name: its checkpoint and its lock.
const projectionName = "order-details"

// readModelSQL creates the read-model tables (in the demo's own schema, next
// to es's tables but not part of them).
const readModelSQL = `
CREATE TABLE IF NOT EXISTS ` + schema + `.order_details (
    order_id    text PRIMARY KEY,
    customer_id text NOT NULL,
    status      text NOT NULL,
    item_count  int NOT NULL DEFAULT 0,
    total_cents bigint NOT NULL DEFAULT 0,
    carrier     text,
    version     bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ` + schema + `.order_detail_lines (
    order_id    text NOT NULL,
    sku         text NOT NULL,
    quantity    int NOT NULL,
    price_cents bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
)`

// projection keeps order_details from the order events.
type projection struct {
	registry *es.Registry
}

// apply is the subscription's handler: it applies one event to the read
// model in tx, the transaction in which the checkpoint advances.
func (p *projection) apply(ctx context.Context, etx es.Tx, e es.Event) error {
	tx := pgstore.PgxTx(etx)
	if e.Category() != "order" {
		return nil
	}
	event, err := p.registry.Decode(e)
	if err != nil {
		return err
	}
	id := e.StreamID[len("order-"):]
	exec := func(sql string, args ...any) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	}
	var errs []error
	switch ev := event.(type) {
	case OrderCreated:
		errs = append(errs, exec(`INSERT INTO `+schema+`.order_details (order_id, customer_id, status, version)
			VALUES ($1, $2, $3, $4)`, id, ev.CustomerID, string(StatusOpen), e.Version))
	case ItemAdded:
		errs = append(errs, exec(`INSERT INTO `+schema+`.order_detail_lines AS l VALUES ($1, $2, $3, $4)
			ON CONFLICT (order_id, sku) DO UPDATE SET quantity = l.quantity + excluded.quantity`,
			id, ev.SKU, ev.Quantity, ev.PriceCents))
	case ItemRemoved:
		errs = append(errs, exec(`DELETE FROM `+schema+`.order_detail_lines WHERE order_id = $1 AND sku = $2`, id, ev.SKU))
	case OrderPlaced:
		errs = append(errs, exec(`UPDATE `+schema+`.order_details SET status = $2 WHERE order_id = $1`, id, string(StatusPlaced)))
	case OrderShipped:
		errs = append(errs, exec(`UPDATE `+schema+`.order_details SET status = $2, carrier = $3 WHERE order_id = $1`,
			id, string(StatusShipped), ev.Carrier))
	case OrderCancelled:
		errs = append(errs, exec(`UPDATE `+schema+`.order_details SET status = $2 WHERE order_id = $1`, id, string(StatusCancelled)))
	}
	// The totals follow the lines; the version says how far the row is.
	errs = append(errs, exec(`UPDATE `+schema+`.order_details AS d
		   SET item_count = coalesce(l.items, 0), total_cents = coalesce(l.total, 0), version = $2
		  FROM (SELECT sum(quantity) AS items, sum(quantity * price_cents) AS total
		          FROM `+schema+`.order_detail_lines WHERE order_id = $1) AS l
		 WHERE d.order_id = $1`, id, e.Version))
	return errors.Join(errs...)
}

// projectionWorkers and projectionPartitions shape the projection's
// consumer group: its subscription runs as 4 partitions (each order's
// stream in one of them, its events in order), shared by 2 workers. Here
// both run in this process; in production each would be a process of its
// own, and a worker that stops or dies hands its partitions to the others.
const (
	projectionWorkers    = 2
	projectionPartitions = 4
)

// startProjection creates the read-model tables and runs the projection's
// consumer group until the returned stop function is called; stop returns
// the workers' errors, if any failed.
func startProjection(ctx context.Context, store *pgstore.Store, db *pgxpool.Pool, registry *es.Registry) (stop func() error, err error) {
	if _, err := db.Exec(ctx, readModelSQL); err != nil {
		return nil, fmt.Errorf("creating the read model: %w", err)
	}
	p := &projection{registry: registry}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, projectionWorkers)
	for range projectionWorkers {
		go func() {
			done <- store.SubscribeTx(ctx, projectionName, p.apply, &es.SubscribeOpts{
				Categories: []string{"order"},
				Partitions: projectionPartitions,
			})
		}()
	}
	return func() error {
		cancel()
		var errs []error
		for range projectionWorkers {
			errs = append(errs, <-done)
		}
		return errors.Join(errs...)
	}, nil
}

// showReadModel prints the read model's rows of the orders.
func showReadModel(ctx context.Context, w io.Writer, db *pgxpool.Pool, order []string) error {
	query := `SELECT order_id, customer_id, status, item_count, total_cents, coalesce(carrier, ''), version
		FROM ` + schema + `.order_details WHERE order_id = ANY($1)`
	fmt.Fprintf(w, "   customer | status    | items | total  | carrier | version\n")
	for _, id := range order {
		var (
			oid, customer, status, carrier string
			items                          int
			total, version                 int64
		)
		if err := db.QueryRow(ctx, query+" AND order_id = $2", order, id).
			Scan(&oid, &customer, &status, &items, &total, &carrier, &version); err != nil {
			return err
		}
		fmt.Fprintf(w, "   %-8s | %-9s | %5d | %6s | %-7s | %d\n", customer, status, items, money(total), carrier, version)
	}
	return nil
}
