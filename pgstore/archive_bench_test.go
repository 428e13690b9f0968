package pgstore_test

// Benchmarks of the archive (schema/code/archive.sql): what having most of
// the log in events_archive costs the appends and the reads, against the
// same log with nothing archived, on the benchmark cluster of
// bench_test.go, rounds interleaved.

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

const (
	// Having most of the log archived costs an operation at most this
	// much more time than the same log with nothing archived.
	targetArchiveMaxX = 1.1

	archiveStreams   = 1000
	archivePerStream = 200 // 200,000 events in each schema, then the fixture

	// archivePartitionSize makes the archived side's archive 21
	// partitions (issue 15 §3): every read and every append's id probe
	// goes through all of them.
	archivePartitionSize = 10_000
)

// archiveEnv is two schemas holding the same log, one with nothing
// archived (plain) and one with all of it archived but the read fixture's
// second half.
type archiveEnv struct {
	plain, archived *pgstore.Store
	fixture         string // a stream of readSize events, on both sides of the cut
}

// BenchmarkArchive runs, on two schemas that hold the same 201,000-event
// log, one with all of it but the last 500 events in events_archive, in 21
// partitions of 10,000 events:
//
//   - Append1Event8Writers: 8 writers appending one event at a time;
//   - ReadStream1000Events: reading a 1,000-event stream whose first half
//     is archived;
//   - ReadAll: reading the whole log through Store.ReadAll;
//
// each reported as x_archived, the time ratio archived/plain (at most 1.1).
func BenchmarkArchive(b *testing.B) {
	env := newBenchEnv(b)
	a := env.newArchiveEnv(b)
	b.Run("Append1Event8Writers", func(b *testing.B) { a.benchAppend(b, env) })
	b.Run("ReadStream1000Events", a.benchReadStream)
	b.Run("ReadAll", a.benchReadAll)
}

// newArchiveEnv migrates and seeds the two schemas, writes the read
// fixture in both, then archives all but the fixture's second half in one.
func (env *benchEnv) newArchiveEnv(b *testing.B) *archiveEnv {
	b.Helper()
	ctx := context.Background()
	a := &archiveEnv{fixture: "read-fixture"}
	for i, schema := range []string{"es_plain", "es_archived"} {
		if _, err := pgstore.Migrate(ctx, env.pool, &pgstore.MigrateOpts{Schema: schema}); err != nil {
			b.Fatal(err)
		}
		store, err := pgstore.New(env.pool, &pgstore.Config{Schema: schema})
		if err != nil {
			b.Fatal(err)
		}
		s := pgx.Identifier{schema}.Sanitize()
		env.seedInterleaved(ctx, b, schema, "order-a", archiveStreams, archivePerStream)
		events := make([]es.NewEvent, batchSize)
		for i := range events {
			events[i] = es.NewEvent{Type: eventType, Data: eventData, Metadata: eventMetadata}
		}
		for v := int64(0); v < readSize; v += batchSize {
			if _, err := store.Append(ctx, a.fixture, es.Exactly(v), events); err != nil {
				b.Fatal(err)
			}
		}
		if i == 1 {
			// The cut: the fixture's version 501. Everything before it
			// (the seed, and the fixture's first half) is archived.
			var tx uint64
			var global int64
			if err := env.pool.QueryRow(ctx, fmt.Sprintf(`
				SELECT e.transaction_id, e.global_position FROM %s.events AS e
				 WHERE e.stream_id = $1 AND e.version = $2`, s), a.fixture, readSize/2+1).Scan(&tx, &global); err != nil {
				b.Fatal(err)
			}
			n, err := store.ArchiveEvents(ctx, es.NewPosition(tx, global),
				&es.ArchiveOpts{BatchSize: 50_000, PartitionSize: archivePartitionSize})
			if err != nil {
				b.Fatal(err)
			}
			if want := int64(archiveStreams*archivePerStream + readSize/2); n != want {
				b.Fatalf("%s: archived %d events, want %d", schema, n, want)
			}
			a.archived = store
		} else {
			a.plain = store
		}
		if _, err := env.pool.Exec(ctx, fmt.Sprintf("VACUUM ANALYZE %[1]s.events, %[1]s.events_archive, %[1]s.streams", s)); err != nil {
			b.Fatal(err)
		}
	}
	var parts int
	if err := env.pool.QueryRow(ctx, "SELECT count(*) FROM es_archived.archive_partitions()").Scan(&parts); err != nil {
		b.Fatal(err)
	}
	b.Logf("the archived side's archive: %d partitions", parts)
	return a
}

// benchAppend: 8 writers, one event per append, on each side.
func (a *archiveEnv) benchAppend(b *testing.B, env *benchEnv) {
	ctx := context.Background()
	appendTo := func(store *pgstore.Store) func(context.Context, *writer) error {
		return func(ctx context.Context, w *writer) error { return w.appendOne(ctx, store) }
	}
	a.compare(ctx, b, 20*benchWriters,
		side{"plain", concurrently(env.newWriters(benchWriters), appendTo(a.plain))},
		side{"archived", concurrently(env.newWriters(benchWriters), appendTo(a.archived))},
		"append_ev/s", 1)
}

// benchReadStream: the fixture stream, half archived on one side.
func (a *archiveEnv) benchReadStream(b *testing.B) {
	read := func(store *pgstore.Store) func(context.Context) error {
		return func(ctx context.Context) error {
			n := 0
			for e, err := range store.ReadStream(ctx, a.fixture, nil) {
				if err != nil {
					return err
				}
				if n++; e.Version != int64(n) {
					return fmt.Errorf("version %d at %d", e.Version, n)
				}
			}
			if n != readSize {
				return fmt.Errorf("read %d events, want %d", n, readSize)
			}
			return nil
		}
	}
	a.compare(context.Background(), b, 20,
		side{"plain", sequential(read(a.plain))},
		side{"archived", sequential(read(a.archived))},
		"read_ev/s", readSize)
}

// benchReadAll: the whole log, almost all archived on one side.
func (a *archiveEnv) benchReadAll(b *testing.B) {
	want := archiveStreams*archivePerStream + readSize
	read := func(store *pgstore.Store) func(context.Context) error {
		return func(ctx context.Context) error {
			n := 0
			var last es.Position
			for e, err := range store.ReadAll(ctx, nil) {
				if err != nil {
					return err
				}
				if !last.Before(e.Position) {
					return fmt.Errorf("position %s after %s", e.Position, last)
				}
				last = e.Position
				n++
			}
			if n < want {
				return fmt.Errorf("read %d events, want at least %d", n, want)
			}
			return nil
		}
	}
	a.compare(context.Background(), b, 1,
		side{"plain", sequential(read(a.plain))},
		side{"archived", sequential(read(a.archived))},
		"read_ev/s", want)
}

// compare runs the two sides interleaved after warmup operations of each,
// and reports their throughputs (unit, perOp events an operation) and
// x_archived, the time ratio archived/plain.
func (a *archiveEnv) compare(ctx context.Context, b *testing.B, warmup int, plain, archived side, unit string, perOp int) {
	b.Helper()
	b.StopTimer()
	for _, sd := range []side{plain, archived} {
		if _, err := sd.run(ctx, warmup); err != nil {
			b.Fatalf("%s (warm-up): %v", sd.name, err)
		}
	}
	rounds := min(benchRounds, b.N)
	b.StartTimer()
	t := interleave(ctx, b, rounds, max(1, b.N/rounds), plain, archived)
	b.StopTimer()
	b.ReportMetric(float64(perOp)*1e9/median(t[0]), "plain_"+unit)
	b.ReportMetric(float64(perOp)*1e9/median(t[1]), "archived_"+unit)
	reportRatio(b, "x_archived", median(ratios(t[1], t[0])), targetArchiveMaxX, true)
}
