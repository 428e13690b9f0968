package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// These tests cover events_view and streams_view (schema/code/views.sql):
// what they show, that the README's example queries return what it says,
// that filters reach the indexes and that msgpack is decoded only for the
// rows a query returns.

type viewLine struct {
	SKU string
	Qty int
}

type viewOrderPlaced struct {
	OrderID    uuid.UUID
	CustomerID string
	Total      int64
	At         time.Time
	Lines      []viewLine
	Tags       map[string]int
	Note       *string
}

// viewBundle is a fresh schema with a store and a registry.
type viewBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
	store  *pgstore.Store
	reg    *es.Registry
}

func setupViews(t *testing.T) *viewBundle {
	t.Helper()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	reg := es.NewRegistry()
	require.NoError(t, es.Register[viewOrderPlaced](reg, "OrderPlaced"))
	return &viewBundle{ctx: testContext(t, testTimeout), pool: pool, schema: schema, store: store, reg: reg}
}

// q replaces the schema name es in a query from the documentation by the
// bundle's schema.
func (b *viewBundle) q(sql string) string {
	return strings.ReplaceAll(sql, "es.", b.schema+".")
}

// jsonOf unmarshals a jsonb value scanned as text.
func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(s), &v), s)
	return v
}

func TestEventsView(t *testing.T) {
	t.Parallel()
	b := setupViews(t)

	orderID := uuid.MustParse("0b6e7a4c-3f8d-4e52-9a1b-6f0d2c8e7a11")
	correlation := uuid.New().String()
	causation := uuid.New().String()
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.FixedZone("CET", 3600))
	ev, err := b.reg.NewEvent(viewOrderPlaced{
		OrderID: orderID, CustomerID: "customer-20417", Total: 12990, At: at,
		Lines: []viewLine{{SKU: "sku-1", Qty: 2}, {SKU: "sku-2", Qty: 1}},
		Tags:  map[string]int{"gift": 1},
	}, &es.Metadata{CorrelationID: correlation, CausationID: causation, Headers: map[string]string{"source": "web"}})
	require.NoError(t, err)
	ev.ID = uuid.Must(uuid.NewV7())
	// The server's clock before the append and after the read bracket
	// recorded_at, however slow the machine.
	serverNow := func() time.Time {
		var now time.Time
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT clock_timestamp()").Scan(&now))
		return now
	}
	beforeAppend := serverNow()
	res, err := b.store.Append(b.ctx, "order-1", es.NoStream, []es.NewEvent{ev})
	require.NoError(t, err)

	var (
		position, streamID, category, eventType string
		version                                 int64
		data, metadata                          string
		corr, caus                              *string
		eventID                                 uuid.UUID
		recorded                                time.Time
		rawData                                 []byte
	)
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(`
		SELECT position, stream_id, category, version, event_type, event_id, data::text, metadata::text,
		       correlation_id, causation_id, recorded_at, data_msgpack
		  FROM %s.events_view WHERE stream_id = $1`, b.schema), "order-1").
		Scan(&position, &streamID, &category, &version, &eventType, &eventID, &data, &metadata, &corr, &caus, &recorded, &rawData))
	require.Equal(t, res.LastPosition.String(), position)
	require.Equal(t, "order-1", streamID)
	require.Equal(t, "order", category)
	require.Equal(t, int64(1), version)
	require.Equal(t, "OrderPlaced", eventType)
	require.Equal(t, ev.ID, eventID)
	require.Equal(t, ev.Data, rawData)
	require.WithinRange(t, recorded, beforeAppend, serverNow())
	// UUIDs as canonical strings, times as RFC 3339 in UTC, nested values
	// as JSON arrays and objects, a nil pointer as null.
	require.Equal(t, map[string]any{
		"OrderID":    orderID.String(),
		"CustomerID": "customer-20417",
		"Total":      12990.0,
		"At":         "2026-03-04T04:06:07.1234567Z",
		"Lines":      []any{map[string]any{"SKU": "sku-1", "Qty": 2.0}, map[string]any{"SKU": "sku-2", "Qty": 1.0}},
		"Tags":       map[string]any{"gift": 1.0},
		"Note":       nil,
	}, jsonOf(t, data))
	require.Equal(t, map[string]any{
		"correlation_id": correlation, "causation_id": causation, "headers": map[string]any{"source": "web"},
	}, jsonOf(t, metadata))
	require.NotNil(t, corr)
	require.Equal(t, correlation, *corr)
	require.NotNil(t, caus)
	require.Equal(t, causation, *caus)

	// Without metadata: NULL metadata and ids. A malformed event reads as
	// NULL data instead of failing the query; a msgpack nil is the jsonb
	// null, not SQL NULL, so data IS NULL finds exactly the malformed rows.
	_, err = b.pool.Exec(b.ctx, fmt.Sprintf(`
		SELECT %[1]s.append_event('order-1', 'Noted', '\xc0'::bytea);
		SELECT %[1]s.append_event('order-1', 'Broken', '\xc1'::bytea, '\x81'::bytea)`, b.schema))
	require.NoError(t, err)
	rows, err := b.pool.Query(b.ctx, fmt.Sprintf(`
		SELECT version, data IS NULL, data::text, metadata::text, correlation_id, data_msgpack
		  FROM %s.events_view WHERE stream_id = 'order-1' AND version > 1 ORDER BY version`, b.schema))
	require.NoError(t, err)
	type row struct {
		Version  int64
		Null     bool
		Data     *string
		Metadata *string
		Corr     *string
		Raw      []byte
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	jsonNull := "null"
	require.Equal(t, []row{
		{Version: 2, Null: false, Data: &jsonNull, Raw: []byte{0xc0}},
		{Version: 3, Null: true, Raw: []byte{0xc1}},
	}, got)
	var malformed []int64
	rows, err = b.pool.Query(b.ctx, fmt.Sprintf(`SELECT version FROM %s.events_view WHERE data IS NULL`, b.schema))
	require.NoError(t, err)
	malformed, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{3}, malformed)
}

// The example queries of the README section "Querying events in SQL", with
// the data they describe.
const (
	exampleStreamEvents = `
SELECT version, event_type, data, recorded_at
  FROM es.events_view
 WHERE stream_id = 'order-42'
 ORDER BY version;`
	exampleTypePredicate = `
SELECT stream_id, version, data->>'CustomerID' AS customer, (data->>'Total')::bigint AS total
  FROM es.events_view
 WHERE event_type = 'OrderPlaced' AND (data->>'Total')::bigint > 10000
 ORDER BY transaction_id, global_position;`
	exampleTypeContains = `
SELECT stream_id, version
  FROM es.events_view
 WHERE event_type = 'OrderPlaced' AND data @> '{"CustomerID": "customer-7"}'
 ORDER BY transaction_id, global_position;`
	examplePerType = `
SELECT event_type, count(*) AS events
  FROM es.events_view
 GROUP BY event_type
 ORDER BY events DESC, event_type;`
	exampleCorrelated = `
SELECT stream_id, version, event_type, causation_id
  FROM es.events_view
 WHERE correlation_id = '5f1c7d2e-8a44-4b0e-b6c3-1e9d0a7f4b22'
 ORDER BY transaction_id, global_position;`
	exampleIndexes = `
CREATE INDEX order_placed_customer_idx ON es.events
    ((es.try_msgpack_to_jsonb(data) ->> 'CustomerID'))
 WHERE event_type = 'OrderPlaced';

CREATE INDEX events_correlation_idx ON es.events
    ((es.try_msgpack_to_jsonb(metadata) ->> 'correlation_id'));`
	exampleStreams = `
SELECT stream_id, version, updated_at
  FROM es.streams_view
 WHERE category = 'order'
 ORDER BY updated_at DESC
 LIMIT 10;`
)

// TestEventsViewExamplesDocumented checks that the example queries run by
// TestEventsViewExamples are the ones README.md shows.
func TestEventsViewExamplesDocumented(t *testing.T) {
	t.Parallel()
	var docs strings.Builder
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	docs.Write(b)
	// Compared line by line without the indentation (the documentation
	// indents the index statements, inside a list item).
	normalize := func(s string) string {
		var lines []string
		for line := range strings.Lines(s) {
			lines = append(lines, strings.TrimSpace(line))
		}
		return strings.Join(lines, "\n")
	}
	text := normalize(docs.String())
	for _, q := range []string{exampleStreamEvents, exampleTypePredicate, exampleTypeContains, examplePerType,
		exampleCorrelated, exampleStreams, exampleIndexes} {
		require.Contains(t, text, normalize(strings.TrimSpace(q)), "the documentation does not show this query")
	}
}

type viewItemAdded struct {
	SKU string
	Qty int
}

func TestEventsViewExamples(t *testing.T) {
	t.Parallel()
	b := setupViews(t)
	require.NoError(t, es.Register[viewItemAdded](b.reg, "ItemAdded"))

	correlation := "5f1c7d2e-8a44-4b0e-b6c3-1e9d0a7f4b22"
	appendEvents := func(stream string, md *es.Metadata, events ...any) {
		t.Helper()
		batch := make([]es.NewEvent, len(events))
		for i, e := range events {
			var err error
			batch[i], err = b.reg.NewEvent(e, md)
			require.NoError(t, err)
		}
		_, err := b.store.Append(b.ctx, stream, es.Any, batch)
		require.NoError(t, err)
	}
	placed := func(customer string, total int64) viewOrderPlaced {
		return viewOrderPlaced{OrderID: uuid.New(), CustomerID: customer, Total: total, At: time.Now()}
	}
	request := &es.Metadata{CorrelationID: correlation, CausationID: "cmd-1"}
	appendEvents("order-42", request, placed("customer-7", 12990), viewItemAdded{SKU: "sku-1", Qty: 2})
	appendEvents("order-43", &es.Metadata{CorrelationID: uuid.New().String()}, placed("customer-8", 990))
	appendEvents("order-44", nil, placed("customer-7", 25000))
	appendEvents("invoice-42", &es.Metadata{CorrelationID: correlation, CausationID: "order-42/1"}, viewItemAdded{SKU: "fee", Qty: 1})
	appendEvents("order-42", nil, viewItemAdded{SKU: "sku-2", Qty: 1})

	query := func(sql string) [][]any {
		t.Helper()
		rows, err := b.pool.Query(b.ctx, b.q(sql))
		require.NoError(t, err, sql)
		var out [][]any
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			out = append(out, vals)
		}
		require.NoError(t, rows.Err(), sql)
		return out
	}

	t.Run("StreamEvents", func(t *testing.T) {
		got := query(exampleStreamEvents)
		require.Len(t, got, 3)
		for i, r := range got {
			require.Equal(t, int64(i+1), r[0])
		}
		require.Equal(t, []any{"OrderPlaced", "ItemAdded", "ItemAdded"}, []any{got[0][1], got[1][1], got[2][1]})
		require.Equal(t, map[string]any{"SKU": "sku-2", "Qty": 1.0}, got[2][2])
		require.Equal(t, "customer-7", got[0][2].(map[string]any)["CustomerID"])
	})
	t.Run("TypePredicate", func(t *testing.T) {
		require.Equal(t, [][]any{
			{"order-42", int64(1), "customer-7", int64(12990)},
			{"order-44", int64(1), "customer-7", int64(25000)},
		}, query(exampleTypePredicate))
		require.Equal(t, [][]any{{"order-42", int64(1)}, {"order-44", int64(1)}}, query(exampleTypeContains))
	})
	t.Run("PerType", func(t *testing.T) {
		require.Equal(t, [][]any{{"ItemAdded", int64(3)}, {"OrderPlaced", int64(3)}}, query(examplePerType))
	})
	t.Run("Correlated", func(t *testing.T) {
		require.Equal(t, [][]any{
			{"order-42", int64(1), "OrderPlaced", "cmd-1"},
			{"order-42", int64(2), "ItemAdded", "cmd-1"},
			{"invoice-42", int64(1), "ItemAdded", "order-42/1"},
		}, query(exampleCorrelated))
	})
	t.Run("Streams", func(t *testing.T) {
		got := query(exampleStreams)
		require.Len(t, got, 3)
		require.Equal(t, []any{"order-42", int64(3)}, got[0][:2], "order-42 was appended to last")
		streams := []any{got[0][0], got[1][0], got[2][0]}
		require.ElementsMatch(t, []any{"order-42", "order-43", "order-44"}, streams)
	})
}

// planNodes returns every node of an EXPLAIN (FORMAT JSON) plan, depth first.
func planNodes(plan map[string]any) []map[string]any {
	nodes := []map[string]any{plan}
	if subs, ok := plan["Plans"].([]any); ok {
		for _, s := range subs {
			nodes = append(nodes, planNodes(s.(map[string]any))...)
		}
	}
	return nodes
}

func TestEventsViewPlans(t *testing.T) {
	t.Parallel()
	b := setupViews(t)

	// 40 streams of 50 events in 8 categories.
	const streams, perStream = 40, 50
	batch := make([]es.NewEvent, perStream)
	for i := range batch {
		var err error
		batch[i], err = b.reg.NewEvent(viewOrderPlaced{OrderID: uuid.New(), CustomerID: fmt.Sprint("customer-", i), Total: int64(i)},
			&es.Metadata{CorrelationID: uuid.NewString()})
		require.NoError(t, err)
	}
	for s := range streams {
		_, err := b.store.Append(b.ctx, fmt.Sprintf("cat%d-%d", s%8, s), es.NoStream, batch)
		require.NoError(t, err)
	}
	_, err := b.pool.Exec(b.ctx, fmt.Sprintf("ANALYZE %[1]s.events, %[1]s.streams", b.schema))
	require.NoError(t, err)

	// explain returns the plan's nodes and runs the query, returning how
	// many rows it returned and how many times each decoder ran.
	explain := func(sql string, args ...any) (nodes []map[string]any, rowCount int, decoded int64) {
		t.Helper()
		tx, err := b.pool.Begin(b.ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.WithoutCancel(b.ctx)) }()
		// The plan the filter permits, not the cheapest for these few rows.
		_, err = tx.Exec(b.ctx, "SET LOCAL enable_seqscan = off; SET LOCAL track_functions = 'pl'")
		require.NoError(t, err)
		var out string
		require.NoError(t, tx.QueryRow(b.ctx, "EXPLAIN (FORMAT JSON, VERBOSE) "+sql, args...).Scan(&out))
		var plans []map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &plans))
		nodes = planNodes(plans[0]["Plan"].(map[string]any))

		// Calls of the schema's PL/pgSQL functions, by function. The
		// backend's counts not yet reported include earlier transactions':
		// take the difference. The decoders may call each other (try_
		// calls msgpack_to_jsonb): the most-called function counts the
		// decodes.
		calls := func() map[string]int64 {
			rows, err := tx.Query(b.ctx, `
				SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE schemaname = $1`, b.schema)
			require.NoError(t, err)
			m := map[string]int64{}
			var name string
			var n int64
			_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error { m[name] += n; return nil })
			require.NoError(t, err)
			return m
		}
		before := calls()
		rows, err := tx.Query(b.ctx, sql, args...)
		require.NoError(t, err)
		for rows.Next() {
			rowCount++
		}
		require.NoError(t, rows.Err())
		for name, n := range calls() {
			decoded = max(decoded, n-before[name])
		}
		return nodes, rowCount, decoded
	}
	indexUsed := func(nodes []map[string]any) []string {
		var names []string
		for _, n := range nodes {
			if name, ok := n["Index Name"].(string); ok {
				names = append(names, name)
			}
		}
		return names
	}

	// withArchive names the indexes a read of the view uses: the view
	// reads events and events_archive (all_events), but nothing is
	// archived here, and the archive, a partitioned table without
	// partitions yet, is left out of the plan.
	withArchive := func(index string) []string {
		return []string{index}
	}
	view := b.schema + ".events_view"
	t.Run("Stream", func(t *testing.T) {
		nodes, n, decoded := explain("SELECT * FROM "+view+" WHERE stream_id = $1 ORDER BY version LIMIT 5", "cat3-11")
		require.ElementsMatch(t, withArchive("events_stream_version_key"), indexUsed(nodes))
		require.Equal(t, 5, n)
		require.Equal(t, int64(5*4), decoded, "data, metadata and the two ids: 4 decodes per returned row")
	})
	t.Run("StreamAllColumnsButJSON", func(t *testing.T) {
		nodes, n, decoded := explain("SELECT stream_id, version, event_id, position FROM "+view+" WHERE stream_id = $1", "cat3-11")
		require.Contains(t, indexUsed(nodes), "events_stream_version_key")
		require.Equal(t, perStream, n)
		require.Zero(t, decoded, "columns that are not named are not computed")
	})
	t.Run("Category", func(t *testing.T) {
		nodes, n, decoded := explain("SELECT data FROM "+view+" WHERE category = $1", "cat5")
		require.ElementsMatch(t, withArchive("events_category_idx"), indexUsed(nodes))
		require.Equal(t, 5*perStream, n)
		require.Equal(t, int64(5*perStream), decoded)
	})
	t.Run("CategoryInOrder", func(t *testing.T) {
		// The category index or the primary key (both give this order),
		// on events (the archive has no partition to read).
		nodes, n, decoded := explain("SELECT data FROM "+view+" WHERE category = $1 ORDER BY transaction_id, global_position LIMIT 7", "cat5")
		require.Len(t, indexUsed(nodes), 1)
		require.Equal(t, 7, n)
		require.Equal(t, int64(7), decoded)
	})
	t.Run("CategorySortedElsewhere", func(t *testing.T) {
		// A sort the index does not give: the decode waits until after
		// the sort and the limit.
		_, n, decoded := explain("SELECT data FROM "+view+" WHERE category = $1 ORDER BY version DESC, global_position LIMIT 3", "cat5")
		require.Equal(t, 3, n)
		require.Equal(t, int64(3), decoded)
	})
	t.Run("EventID", func(t *testing.T) {
		var id uuid.UUID
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT event_id FROM "+view+" WHERE stream_id = 'cat1-9' AND version = 7").Scan(&id))
		nodes, n, decoded := explain("SELECT data, metadata FROM "+view+" WHERE event_id = $1", id)
		require.ElementsMatch(t, withArchive("events_event_id_key"), indexUsed(nodes))
		require.Equal(t, 1, n)
		require.Equal(t, int64(2), decoded)
	})
	t.Run("Position", func(t *testing.T) {
		nodes, n, _ := explain("SELECT event_type FROM " + view + " WHERE (transaction_id, global_position) > ('0', 1000) ORDER BY transaction_id, global_position LIMIT 10")
		require.ElementsMatch(t, withArchive("events_pkey"), indexUsed(nodes))
		require.Equal(t, 10, n)
	})
	t.Run("CountByType", func(t *testing.T) {
		_, n, decoded := explain("SELECT event_type, count(*) FROM " + view + " GROUP BY event_type")
		require.Equal(t, 1, n)
		require.Zero(t, decoded)
	})
	t.Run("DataPredicate", func(t *testing.T) {
		// A predicate on data decodes every row the plain filters leave.
		_, n, decoded := explain("SELECT stream_id FROM "+view+" WHERE stream_id = $1 AND (data->>'Total')::int < 10", "cat2-2")
		require.Equal(t, 10, n)
		require.Equal(t, int64(perStream), decoded)
	})
	t.Run("ExpressionIndexes", func(t *testing.T) {
		// The README's expression indexes serve queries on the view (last:
		// they change the plans of the queries above).
		_, err := b.pool.Exec(b.ctx, b.q(exampleIndexes))
		require.NoError(t, err)
		var corr string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT correlation_id FROM "+view+" WHERE stream_id = 'cat4-12' AND version = 3").Scan(&corr))
		nodes, n, _ := explain("SELECT stream_id, version FROM "+view+" WHERE correlation_id = $1", corr)
		require.Equal(t, []string{"events_correlation_idx"}, indexUsed(nodes))
		require.Equal(t, streams, n, "every stream got the same batch, with the same metadata")
		nodes, n, _ = explain("SELECT stream_id, version FROM " + view + " WHERE event_type = 'OrderPlaced' AND data->>'CustomerID' = 'customer-7'")
		require.Equal(t, []string{"order_placed_customer_idx"}, indexUsed(nodes))
		require.Equal(t, streams, n)
		// Appends maintain them (the append runs with its pinned search_path).
		_, err = b.store.Append(b.ctx, "cat0-new", es.NoStream, batch[:2])
		require.NoError(t, err)
		_, n, _ = explain("SELECT stream_id FROM " + view + " WHERE event_type = 'OrderPlaced' AND data->>'CustomerID' = 'customer-1'")
		require.Equal(t, streams+1, n)
	})
}

func TestStreamsView(t *testing.T) {
	t.Parallel()
	b := setupViews(t)

	ev := es.NewEvent{Type: "Noted", Data: []byte{0x80}}
	for i, stream := range []string{"order-1", "order-2", "cart-1", "nocategory"} {
		for range i + 1 {
			_, err := b.store.Append(b.ctx, stream, es.Any, []es.NewEvent{ev})
			require.NoError(t, err)
		}
	}
	_, err := b.pool.Exec(b.ctx, fmt.Sprintf(
		`INSERT INTO %s.snapshots (stream_id, version, schema_version, state) VALUES ('order-2', 2, 3, '\x80')`, b.schema))
	require.NoError(t, err)

	type streamRow struct {
		StreamID              string
		Category              string
		Version               int64
		EventCount            int64
		CreatedAt             time.Time
		UpdatedAt             time.Time
		TransactionID         uint64
		SnapshotVersion       *int64
		SnapshotSchemaVersion *int32
		Events                int64
		InfoVersion           int64
		InfoCreated           time.Time
		InfoUpdated           time.Time
		InfoTransactionID     uint64
	}
	rows, err := b.pool.Query(b.ctx, fmt.Sprintf(`
		SELECT v.stream_id, v.category, v.version, v.event_count, v.created_at, v.updated_at, v.transaction_id,
		       v.snapshot_version, v.snapshot_schema_version,
		       (SELECT count(*) FROM %[1]s.events AS e WHERE e.stream_id = v.stream_id),
		       i.version, i.created_at, i.updated_at, i.transaction_id
		  FROM %[1]s.streams_view AS v, %[1]s.stream_info(v.stream_id) AS i
		 ORDER BY v.stream_id`, b.schema))
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[streamRow])
	require.NoError(t, err)
	require.Len(t, got, 4)
	want := map[string]struct {
		category string
		version  int64
	}{"cart-1": {"cart", 3}, "nocategory": {"nocategory", 4}, "order-1": {"order", 1}, "order-2": {"order", 2}}
	for _, r := range got {
		w, ok := want[r.StreamID]
		require.True(t, ok, r.StreamID)
		require.Equal(t, w.category, r.Category, r.StreamID)
		require.Equal(t, w.version, r.Version, r.StreamID)
		require.Equal(t, r.InfoVersion, r.Version, r.StreamID)
		require.Equal(t, r.Events, r.EventCount, r.StreamID)
		require.Equal(t, r.InfoCreated, r.CreatedAt, r.StreamID)
		require.Equal(t, r.InfoUpdated, r.UpdatedAt, r.StreamID)
		require.Equal(t, r.InfoTransactionID, r.TransactionID, r.StreamID)
		require.False(t, r.UpdatedAt.Before(r.CreatedAt), r.StreamID)
		if r.StreamID == "order-2" {
			require.Equal(t, int64(2), *r.SnapshotVersion)
			require.Equal(t, int32(3), *r.SnapshotSchemaVersion)
		} else {
			require.Nil(t, r.SnapshotVersion, r.StreamID)
		}
	}
	// The last append moves updated_at.
	before := got[0].UpdatedAt
	_, err = b.store.Append(b.ctx, "cart-1", es.Exactly(3), []es.NewEvent{ev})
	require.NoError(t, err)
	var after time.Time
	var version int64
	require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(
		`SELECT updated_at, event_count FROM %s.streams_view WHERE stream_id = 'cart-1'`, b.schema)).Scan(&after, &version))
	require.True(t, after.After(before))
	require.Equal(t, int64(4), version)
}
