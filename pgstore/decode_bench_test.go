package pgstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
)

// msgpack_to_jsonb (schema/code/decode.sql) on a typical event against
// PostgreSQL's own JSON parser on the same event stored as JSON text.
const (
	// msgpack_to_jsonb of a ~200-byte event: time per call at most 10x
	// convert_from(json, 'UTF8')::jsonb of the same event as JSON text. It
	// serves ad-hoc queries and views, not the store's hot path.
	targetDecodeMaxXParse = 10
	decodeRows            = 500 // rows decoded by each query
	decodeEventType       = "bench.OrderPlaced"
)

// decodeBenchEvent is a typical event: a UUID, a few strings, an int, a
// float, a bool, a time and a small nested array and map, encoded by the
// project's codec (es.Registry) as a msgpack map of 9 entries.
type decodeBenchEvent struct {
	OrderID  uuid.UUID
	Customer string
	Email    string
	Amount   int64
	Price    float64
	Items    []string
	Express  bool
	PlacedAt time.Time
	Address  map[string]string
}

// BenchmarkDecode runs the decoder's benchmark on the benchmark server (see
// bench_test.go):
//
//   - MsgpackToJSONB: SELECT count(es.msgpack_to_jsonb(msgpack)) over 500
//     rows of typical ~200-byte events, against SELECT
//     count(convert_from(json, 'UTF8')::jsonb) over the same 500 events
//     stored as JSON text in the same table.
func BenchmarkDecode(b *testing.B) {
	env := newBenchEnv(b)
	sizes := decodeFixture(context.Background(), b, env)
	b.Run("MsgpackToJSONB", func(b *testing.B) { env.benchDecode(b, sizes) })
}

// decodeSizes are the fixture's mean encoded sizes in bytes.
type decodeSizes struct{ msgpack, json float64 }

// decodeFixture creates es.decode_bench with decodeRows events, each as
// msgpack (es.Registry) and as JSON text (encoding/json) in a bytea, and
// checks that msgpack_to_jsonb of the one equals the other parsed.
func decodeFixture(ctx context.Context, b *testing.B, env *benchEnv) decodeSizes {
	b.Helper()
	registry := es.NewRegistry()
	if err := es.Register[decodeBenchEvent](registry, decodeEventType); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	cities := []string{"Springfield", "Shelbyville", "Ogdenville", "North Haverbrook", "Capital City"}
	names := []string{"Jane Q. Example", "John Doe", "Ana Souza", "Élodie Martin", "Zoë Müller", "Kenji Sato"}
	base := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	rows := make([][]any, decodeRows)
	var sizes decodeSizes
	for i := range rows {
		var id uuid.UUID
		for j := range id {
			id[j] = byte(rng.UintN(256))
		}
		name := names[rng.IntN(len(names))]
		ev := decodeBenchEvent{
			OrderID:  id,
			Customer: name,
			Email:    fmt.Sprintf("customer%d@example.com", rng.IntN(100000)),
			Amount:   rng.Int64N(1_000_000),
			Price:    float64(rng.IntN(100000)) / 100,
			Items:    []string{fmt.Sprintf("sku-%d", rng.IntN(1000)), fmt.Sprintf("sku-%d", rng.IntN(1000)), "gift-wrap"},
			Express:  rng.IntN(2) == 0,
			PlacedAt: base.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))),
			Address:  map[string]string{"city": cities[rng.IntN(len(cities))], "zip": fmt.Sprintf("%05d", rng.IntN(100000))},
		}
		_, data, err := registry.Encode(ev)
		if err != nil {
			b.Fatal(err)
		}
		text, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = []any{i, data, text}
		sizes.msgpack += float64(len(data)) / decodeRows
		sizes.json += float64(len(text)) / decodeRows
	}

	s := pgx.Identifier{benchSchema}.Sanitize()
	if _, err := env.pool.Exec(ctx, fmt.Sprintf(`
		DROP TABLE IF EXISTS %[1]s.decode_bench;
		CREATE TABLE %[1]s.decode_bench (id int PRIMARY KEY, msgpack bytea NOT NULL, json bytea NOT NULL)`, s)); err != nil {
		b.Fatalf("creating the decode fixture: %v", err)
	}
	if _, err := env.pool.CopyFrom(ctx, pgx.Identifier{benchSchema, "decode_bench"},
		[]string{"id", "msgpack", "json"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatalf("filling the decode fixture: %v", err)
	}
	if _, err := env.pool.Exec(ctx, fmt.Sprintf("VACUUM ANALYZE %s.decode_bench", s)); err != nil {
		b.Fatal(err)
	}
	var differ int
	if err := env.pool.QueryRow(ctx, fmt.Sprintf(`
		SELECT count(*) FROM %[1]s.decode_bench
		 WHERE %[1]s.msgpack_to_jsonb(msgpack) IS DISTINCT FROM convert_from(json, 'UTF8')::jsonb`, s)).Scan(&differ); err != nil {
		b.Fatal(err)
	}
	if differ != 0 {
		b.Fatalf("msgpack_to_jsonb differs from the JSON text in %d of %d rows", differ, decodeRows)
	}
	return sizes
}

// benchDecode: msgpack_to_jsonb over the fixture's rows against
// convert_from(...)::jsonb over the same rows, and two diagnostics: a plain
// scan of the rows (the part of both that is not decoding) and
// try_msgpack_to_jsonb (what the events view pays: a subtransaction more
// per call). An operation is one query over decodeRows rows; the per-call
// figures divide by the rows.
func (env *benchEnv) benchDecode(b *testing.B, sizes decodeSizes) {
	ctx := context.Background()
	s := pgx.Identifier{benchSchema}.Sanitize()
	query := func(expr string) func(context.Context, int) (int, error) {
		sql := fmt.Sprintf("SELECT count(%s) FROM %s.decode_bench", expr, s)
		return sequential(func(ctx context.Context) error {
			var n int
			if err := env.pool.QueryRow(ctx, sql).Scan(&n); err != nil {
				return err
			}
			if n != decodeRows {
				return fmt.Errorf("%s: %d rows, want %d", sql, n, decodeRows)
			}
			return nil
		})
	}
	sides := []side{
		{"msgpack_to_jsonb", query(s + ".msgpack_to_jsonb(msgpack)")},
		{"convert_from_jsonb", query("convert_from(json, 'UTF8')::jsonb")},
		{"scan", query("length(msgpack) + length(json)")},
		{"try_msgpack_to_jsonb", query(s + ".try_msgpack_to_jsonb(msgpack)")},
	}
	rounds, n := env.prepare(ctx, b, 3, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	dec, parse, scan, tried := median(perOp[0]), median(perOp[1]), median(perOp[2]), median(perOp[3])
	b.ReportMetric(dec, "ns/op")
	b.ReportMetric(dec/decodeRows/1e3, "decode_us/call")
	b.ReportMetric(parse/decodeRows/1e3, "parse_us/call")
	b.ReportMetric(scan/decodeRows/1e3, "scan_us/row")
	b.ReportMetric(tried/decodeRows/1e3, "try_us/call")
	b.ReportMetric(sizes.msgpack, "msgpack_B")
	b.ReportMetric(sizes.json, "json_B")
	reportRatio(b, "x_decode_ratio", median(ratios(perOp[0], perOp[1])), targetDecodeMaxXParse, true)
}
