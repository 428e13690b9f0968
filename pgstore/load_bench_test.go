package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
)

// Load of an aggregate from PostgreSQL: read + decode + apply with
// es.Repository.Load against the same work done by hand.
const (
	// Repository.Load of 1,000 events: time at most 1.5x a raw SELECT plus
	// msgpack decode and Apply.
	targetLoadMaxXRaw = 1.5
	// The same load in absolute terms: median under 10 ms.
	targetLoadMaxMs = 10
	loadSize        = 1000
)

// Events of the benchmark aggregate: small structs, as an order's lines.
type (
	loadOrderOpened struct {
		OrderID  string
		Customer string
	}
	loadLineAdded struct {
		SKU   string
		Qty   int
		Price int64
	}
)

const (
	loadOpenedType = "bench.OrderOpened"
	loadLineType   = "bench.LineAdded"
)

// loadOrder is the benchmark aggregate.
type loadOrder struct {
	es.AggregateBase
	Customer string
	Lines    int
	Qty      int
	Total    int64
}

func (o *loadOrder) Apply(event any) error {
	switch e := event.(type) {
	case loadOrderOpened:
		o.Customer = e.Customer
	case loadLineAdded:
		o.Lines++
		o.Qty += e.Qty
		o.Total += int64(e.Qty) * e.Price
	default:
		return fmt.Errorf("loadOrder: unknown event %T", event)
	}
	return nil
}

// BenchmarkLoad: es.Repository.Load of an aggregate with 1,000 small events
// (one OrderOpened, 999 LineAdded) against a raw pgx SELECT of the same rows
// (SELECT event_type, data ... WHERE stream_id = $1 ORDER BY version),
// each decoded with msgpack.Unmarshal into the same struct and applied to
// the same aggregate. Both sides run interleaved in rounds on the
// benchmark server (see bench_test.go); an operation is one load of the
// whole aggregate (each side's time is per operation, although the
// reported ns/op is the subject's alone). Besides the ratio it reports the absolute median against
// its own target (load_ms, under 10 ms) and each side's allocations per
// load (allocs/op from b.ReportAllocs counts every side together), and
// two diagnostics that are not targets: read_stream_us/op (Store.ReadStream
// of the same stream, without decode or Apply) and raw_registry_us/op (the
// raw SELECT decoded with es.Registry.Decode rather than msgpack.Unmarshal).
func BenchmarkLoad(b *testing.B) {
	env := newBenchEnv(b)
	b.Run("Aggregate1000Events", env.benchLoad)
}

func (env *benchEnv) benchLoad(b *testing.B) {
	ctx := context.Background()

	registry := es.NewRegistry()
	if err := es.Register[loadOrderOpened](registry, loadOpenedType); err != nil {
		b.Fatal(err)
	}
	if err := es.Register[loadLineAdded](registry, loadLineType); err != nil {
		b.Fatal(err)
	}
	repo, err := es.NewRepository(env.store, registry, func() *loadOrder { return &loadOrder{} }, nil)
	if err != nil {
		b.Fatal(err)
	}

	// The fixture: one aggregate of loadSize events, saved in one append
	// by the first run of this function (go test runs it once per b.N).
	const id = "load-fixture"
	agg := repo.New(id)
	if err := es.Record(agg, loadOrderOpened{OrderID: id, Customer: "customer-20417"}); err != nil {
		b.Fatal(err)
	}
	for i := range loadSize - 1 {
		if err := es.Record(agg, loadLineAdded{SKU: fmt.Sprintf("sku-%04d", i%500), Qty: 1 + i%3, Price: 1299}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := repo.Save(ctx, agg); err != nil && !errors.Is(err, es.ErrWrongVersion) {
		b.Fatal(err)
	}
	want := *agg
	stream := repo.StreamID(id)
	rawSelect := "SELECT event_type, data FROM " + benchSchema + ".events WHERE stream_id = $1 ORDER BY version"

	check := func(o *loadOrder) error {
		if o.StoredVersion() != loadSize || o.Lines != want.Lines || o.Total != want.Total || o.Customer != want.Customer {
			return fmt.Errorf("loaded version %d, %d lines, total %d; want %d, %d, %d",
				o.StoredVersion(), o.Lines, o.Total, loadSize, want.Lines, want.Total)
		}
		return nil
	}
	load := func(ctx context.Context) error {
		o, err := repo.Load(ctx, id)
		if err != nil {
			return err
		}
		return check(o)
	}
	loadRaw := func(ctx context.Context) error {
		rows, err := env.pool.Query(ctx, rawSelect, stream)
		if err != nil {
			return err
		}
		defer rows.Close()
		o := &loadOrder{}
		o.SetID(id)
		var (
			typ  string
			data []byte
		)
		for rows.Next() {
			if err := rows.Scan(&typ, &data); err != nil {
				return err
			}
			var event any
			switch typ {
			case loadOpenedType:
				var e loadOrderOpened
				err = msgpack.Unmarshal(data, &e)
				event = e
			case loadLineType:
				var e loadLineAdded
				err = msgpack.Unmarshal(data, &e)
				event = e
			default:
				err = fmt.Errorf("unknown event type %q", typ)
			}
			if err != nil {
				return err
			}
			if err := o.Apply(event); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// The raw side counts the events instead of tracking versions.
		if o.Lines != want.Lines || o.Total != want.Total || o.Customer != want.Customer {
			return fmt.Errorf("raw load: %d lines, total %d; want %d, %d", o.Lines, o.Total, want.Lines, want.Total)
		}
		return nil
	}

	// Diagnostics, to tell where a gap comes from: the store's read alone
	// (no decode, no Apply), and the raw SELECT decoded with the registry
	// instead of msgpack.Unmarshal.
	readOnly := func(ctx context.Context) error {
		n := 0
		for _, err := range env.store.ReadStream(ctx, stream, nil) {
			if err != nil {
				return err
			}
			n++
		}
		if n != loadSize {
			return fmt.Errorf("read %d events, want %d", n, loadSize)
		}
		return nil
	}
	rawRegistry := func(ctx context.Context) error {
		rows, err := env.pool.Query(ctx, rawSelect, stream)
		if err != nil {
			return err
		}
		defer rows.Close()
		o := &loadOrder{}
		var e es.Event
		for rows.Next() {
			if err := rows.Scan(&e.Type, &e.Data); err != nil {
				return err
			}
			event, err := registry.Decode(e)
			if err != nil {
				return err
			}
			if err := o.Apply(event); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if o.Lines != want.Lines || o.Total != want.Total {
			return fmt.Errorf("raw registry load: %d lines, total %d; want %d, %d", o.Lines, o.Total, want.Lines, want.Total)
		}
		return nil
	}

	sides := []side{
		{"load", sequential(load)},
		{"raw", sequential(loadRaw)},
		{"read_stream", sequential(readOnly)},
		{"raw_registry", sequential(rawRegistry)},
	}
	b.ReportAllocs()
	rounds, n := env.prepare(ctx, b, 20, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	ld, raw := median(perOp[0]), median(perOp[1])
	b.ReportMetric(ld, "ns/op")
	b.ReportMetric(ld/1e3, "load_us/op")
	b.ReportMetric(raw/1e3, "raw_us/op")
	b.ReportMetric(median(perOp[2])/1e3, "read_stream_us/op")
	b.ReportMetric(median(perOp[3])/1e3, "raw_registry_us/op")
	b.ReportMetric(loadSize*1e9/ld, "load_ev/s")
	b.ReportMetric(allocsPerOp(ctx, b, load), "load_allocs/op")
	b.ReportMetric(allocsPerOp(ctx, b, loadRaw), "raw_allocs/op")
	reportRatio(b, "x_raw", median(ratios(perOp[0], perOp[1])), targetLoadMaxXRaw, true)
	reportRatio(b, "load_ms", ld/1e6, targetLoadMaxMs, true)
}

// allocsPerOp returns the heap allocations of one call of op, averaged over
// a few calls (allocs/op from b.ReportAllocs adds up both sides).
func allocsPerOp(ctx context.Context, b *testing.B, op func(context.Context) error) float64 {
	b.Helper()
	const runs = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / runs
}

// clientCPUPerOp returns the CPU time (microseconds) this process, the
// client, spends on one call of op, averaged over many calls: user and
// system time from getrusage, pgx's and the garbage collector's included,
// the server's (another process) not. On a machine where the client and
// the server share the cores, this is the client's part of the price of an
// operation under load.
func clientCPUPerOp(ctx context.Context, b *testing.B, op func(context.Context) error) float64 {
	b.Helper()
	const runs = 1000
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	for range runs {
		if err := op(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return float64((cpu() - before).Microseconds()) / runs
}
