package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// A full scan of events_view (schema/code/views.sql), which decodes every
// event's msgpack data to jsonb with try_msgpack_to_jsonb, to filter on a
// field of the data.
const (
	// The issue: scanning 100,000 events through the view must finish in
	// seconds, not minutes.
	targetViewScanMaxSeconds = 60
	viewBenchSchema          = "es_views"
	viewBenchEvents          = 100_000
	viewBenchBatch           = 1000 // events per append call
	viewBenchType            = "bench.OrderPlaced"
)

type viewBenchLine struct {
	SKU        string
	Qty        int
	PriceCents int64
}

// viewBenchOrder is a typical event of about 200 bytes once encoded by the
// project's codec: a UUID, strings, integers, a time and two nested lines.
type viewBenchOrder struct {
	OrderID    uuid.UUID
	CustomerID string
	Channel    string
	Currency   string
	TotalCents int64
	PlacedAt   time.Time
	Lines      []viewBenchLine
}

var viewBenchChannels = []string{"web", "app", "store", "phone"}

// BenchmarkViews runs on the benchmark server (see bench_test.go), in a
// schema of its own holding 100,000 events of about 200 bytes appended in
// calls of 1,000 through Store.Append:
//
//   - ScanFilterOnData: SELECT count(*) FROM events_view WHERE
//     data->>'Channel' = 'store' (every event decoded), in seconds, against
//     the target; and two comparisons measured in the same rounds: the same
//     filter on the table with msgpack_to_jsonb (the strict decoder: the
//     cost of try_'s exception block) and on a table holding the same
//     events as JSON text (convert_from(data, 'UTF8')::jsonb: what a store
//     keeping JSON would pay). Parallel query is off on every side (the
//     view cannot run in parallel: try_msgpack_to_jsonb is PARALLEL
//     RESTRICTED), so the figures compare the per-row work.
//
// An operation is one full scan on each side; each run makes at least 3
// rounds (one scan per side each, the order rotating) and reports medians.
func BenchmarkViews(b *testing.B) {
	env := newBenchEnv(b)
	ctx := context.Background()
	s := pgx.Identifier{viewBenchSchema}.Sanitize()

	conn, err := pgx.ConnectConfig(ctx, env.pool.Config().ConnConfig.Copy())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{Schema: viewBenchSchema}); err != nil {
		b.Fatal(err)
	}
	store, err := pgstore.New(env.pool, &pgstore.Config{Schema: viewBenchSchema})
	if err != nil {
		b.Fatal(err)
	}
	reg := es.NewRegistry()
	if err := es.Register[viewBenchOrder](reg, viewBenchType); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	placed := time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC)
	for call := range viewBenchEvents / viewBenchBatch {
		batch := make([]es.NewEvent, viewBenchBatch)
		for i := range batch {
			n := call*viewBenchBatch + i
			ev, err := reg.NewEvent(viewBenchOrder{
				OrderID:    uuid.New(),
				CustomerID: fmt.Sprintf("customer-%05d", n%20000),
				Channel:    viewBenchChannels[n%len(viewBenchChannels)],
				Currency:   "EUR",
				TotalCents: int64(1000 + n%9000),
				PlacedAt:   placed.Add(time.Duration(n) * time.Second),
				Lines: []viewBenchLine{
					{SKU: fmt.Sprintf("sku-%04d", n%500), Qty: 1 + n%3, PriceCents: 1299},
					{SKU: fmt.Sprintf("sku-%04d", (n+7)%500), Qty: 1, PriceCents: 499},
				},
			}, &es.Metadata{CorrelationID: uuid.NewString()})
			if err != nil {
				b.Fatal(err)
			}
			batch[i] = ev
		}
		if _, err := store.Append(ctx, fmt.Sprintf("order-v%d", call), es.NoStream, batch); err != nil {
			b.Fatal(err)
		}
	}
	// The JSON side: the same events as JSON text, rendered by the decoder
	// itself so that both hold the same values.
	for _, q := range []string{
		`CREATE TABLE %[1]s.json_events AS
		 SELECT global_position, convert_to(%[1]s.msgpack_to_jsonb(data)::text, 'UTF8') AS data FROM %[1]s.events`,
		`VACUUM ANALYZE %[1]s.events`,
		`VACUUM ANALYZE %[1]s.json_events`,
	} {
		if _, err := conn.Exec(ctx, fmt.Sprintf(q, s)); err != nil {
			b.Fatal(err)
		}
	}
	var msgpackBytes, jsonBytes float64
	if err := conn.QueryRow(ctx, fmt.Sprintf(`
		SELECT (SELECT avg(octet_length(data)) FROM %[1]s.events), (SELECT avg(octet_length(data)) FROM %[1]s.json_events)`, s)).
		Scan(&msgpackBytes, &jsonBytes); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d events (msgpack %.0f bytes, JSON %.0f bytes on average) in %d appends in %v",
		viewBenchEvents, msgpackBytes, jsonBytes, viewBenchEvents/viewBenchBatch, time.Since(start).Round(time.Millisecond))

	b.Run("ScanFilterOnData", func(b *testing.B) {
		pool := newBenchPool(b, env.pool.Config().ConnString(), map[string]string{"max_parallel_workers_per_gather": "0"})
		scan := func(query string) func(context.Context, int) (int, error) {
			return func(ctx context.Context, n int) (int, error) {
				for range n {
					var count int64
					if err := pool.QueryRow(ctx, query, "store").Scan(&count); err != nil {
						return 0, err
					}
					if count != viewBenchEvents/int64(len(viewBenchChannels)) {
						return 0, fmt.Errorf("%s: counted %d events", query, count)
					}
				}
				return n, nil
			}
		}
		sides := []side{
			{"view", scan(fmt.Sprintf(`SELECT count(*) FROM %[1]s.events_view WHERE data->>'Channel' = $1`, s))},
			{"table_msgpack_to_jsonb", scan(fmt.Sprintf(`SELECT count(*) FROM %[1]s.events WHERE %[1]s.msgpack_to_jsonb(data)->>'Channel' = $1`, s))},
			{"json_text", scan(fmt.Sprintf(`SELECT count(*) FROM %[1]s.json_events WHERE convert_from(data, 'UTF8')::jsonb->>'Channel' = $1`, s))},
		}
		b.StopTimer()
		for _, sd := range sides { // warm-up: statements prepared, pages cached
			if _, err := sd.run(ctx, 1); err != nil {
				b.Fatalf("%s (warm-up): %v", sd.name, err)
			}
		}
		b.StartTimer()
		perOp := interleave(ctx, b, max(3, b.N), 1, sides...)
		b.StopTimer()

		view, strict, js := median(perOp[0]), median(perOp[1]), median(perOp[2])
		b.ReportMetric(view, "ns/op")
		b.ReportMetric(view/1e9, "view_s")
		b.ReportMetric(strict/1e9, "msgpack_to_jsonb_s")
		b.ReportMetric(js/1e9, "json_s")
		b.ReportMetric(viewBenchEvents*1e9/view, "view_ev/s")
		b.ReportMetric(median(ratios(perOp[0], perOp[1])), "view_x_strict")
		b.ReportMetric(median(ratios(perOp[0], perOp[2])), "view_x_json")
		reportRatio(b, "x_view_scan_s", view/1e9, targetViewScanMaxSeconds, true)
	})
}
