package pgstore_test

// Benchmarks of the store against raw SQL on the same server, in the same
// run. Each benchmark runs its subject and its baseline interleaved in
// rounds (the order rotating from round to round, so that drift and
// warm-up hit every side alike), takes the median of each side over the
// rounds, and reports the absolute figures, the ratio to the baseline, the
// target the ratio must meet (a metric named <ratio>_max or <ratio>_min) and
// whether it does (<ratio>_ok, 1 or 0). Nothing here asserts a time: a
// missed target is reported, not failed. scripts/bench (make bench) runs
// them and prints the summary; docs/benchmarks.md explains the figures.
//
// The server: a throwaway cluster of its own (pgtest.StartCluster) with
// durable settings (fsync=on, full_page_writes=on, synchronous_commit=on),
// because the test clusters run with fsync=off, which flatters
// commit-heavy paths. ES_BENCH_PG_SETTINGS="name=value,..." overrides
// settings. With ES_TEST_DATABASE_URL set, a fresh database on that server
// is used instead, with whatever settings it has. The settings in force are
// logged (go test -v shows them). Before the benchmarks, events and the
// baseline table get the same 100,000 rows, and every benchmark run starts
// with ANALYZE, so that both sides work on tables of some size with fresh
// statistics, as in a store that has been running for a while.

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// The targets (from the issue), each a ratio against a baseline measured in
// the same run.
const (
	// Append of one event, 1 writer: latency at most 1.25x a raw INSERT.
	targetAppendOneMaxXRaw = 1.25
	// Append of one event, 8 writers: throughput at least 0.75x raw
	// INSERTs, and at least 0.9x the same appends with es.notify=off.
	targetConcurrentMinXRaw       = 0.75
	targetConcurrentMinXNotifyOff = 0.9
	// Append of 100 events in one call: events/s at least 0.5x COPY.
	targetBatchMinXCopy = 0.5
	// ReadStream of 1,000 events: time at most 1.3x a raw SELECT.
	targetReadMaxXRaw = 1.3
)

const (
	benchSchema  = "es"
	benchWriters = 8   // concurrent writers in Append1Event8Writers
	benchRounds  = 40  // interleaved rounds per benchmark run
	batchSize    = 100 // events per call in Append100Events
	readSize     = 1000
	seedEvents   = 100_000 // events in the tables before the benchmarks start
	seedStreams  = 1_000
	eventType    = "OrderPlaced"
)

// durableSettings are the postgresql.conf settings of the benchmark
// cluster, over pgtest's defaults: PostgreSQL's own durable defaults for
// fsync, full_page_writes and synchronous_commit, and checkpoints spaced
// out so that none lands in the middle of a benchmark (each benchmark run
// starts with an explicit CHECKPOINT instead).
var durableSettings = map[string]string{
	"fsync":              "on",
	"full_page_writes":   "on",
	"synchronous_commit": "on",
	"max_connections":    "100",
	"shared_buffers":     "128MB",
	"max_wal_size":       "4GB",
	"checkpoint_timeout": "30min",
}

// reportedSettings are logged at the start, so that every result states
// the server it was measured on.
var reportedSettings = []string{
	"server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
	"shared_buffers", "max_wal_size", "checkpoint_timeout", "max_connections", "wal_level", "autovacuum",
}

// Event payloads: small msgpack maps, as an application would store.
var (
	eventData = msgpackMap(
		"order_id", "0b6e7a4c-3f8d-4e52-9a1b-6f0d2c8e7a11",
		"customer_id", "customer-20417",
		"total", "129.90 EUR",
		"channel", "web",
	)
	eventMetadata = msgpackMap(
		"correlation_id", "5f1c7d2e-8a44-4b0e-b6c3-1e9d0a7f4b22",
		"causation_id", "9c3a1b7e-2d5f-4e8a-a0c1-7b6e4d2f9a33",
	)
)

// BenchmarkStore runs the store's benchmarks on one server:
//
//   - Append1Event: Store.Append of one event, one writer, against a raw
//     single-row INSERT into a table shaped like events;
//   - Append1Event8Writers: the same with 8 concurrent writers on distinct
//     streams of one category, against raw INSERTs and against appends
//     with es.notify=off;
//   - Append100Events: Store.Append of 100 events in one call against a
//     COPY (pgx CopyFrom) of the same rows;
//   - ReadStream1000Events: Store.ReadStream of a 1,000-event stream into
//     memory against a raw SELECT of the same rows.
func BenchmarkStore(b *testing.B) {
	env := newBenchEnv(b)
	b.Run("Append1Event", env.benchAppendOne)
	b.Run("Append1Event8Writers", env.benchAppendConcurrent)
	b.Run("Append100Events", env.benchAppendBatch)
	b.Run("ReadStream1000Events", env.benchReadStream)
}

// benchEnv is the server and the pools the benchmarks share.
type benchEnv struct {
	pool     *pgxpool.Pool // es.notify as configured (on)
	poolOff  *pgxpool.Pool // es.notify=off
	store    *pgstore.Store
	storeOff *pgstore.Store
	gen      atomic.Int64 // makes stream ids unique per benchmark run

	readOnce   sync.Once
	readStream string
	readErr    error

	rawInsert string
	rawSelect string
	rawTable  pgx.Identifier

	// cluster is the throwaway benchmark cluster, nil on the server of
	// ES_TEST_DATABASE_URL (replica_bench_test.go starts standbys of it).
	cluster *pgtest.Cluster
}

func newBenchEnv(b *testing.B) *benchEnv {
	ctx := context.Background()

	var connString string
	var cluster *pgtest.Cluster
	if os.Getenv(pgtest.EnvDatabaseURL) != "" {
		connString = pgtest.NewDatabase(b)
		b.Logf("server: a fresh database on the %s server, with that server's settings", pgtest.EnvDatabaseURL)
	} else {
		if _, err := pgtest.BinDir(); err != nil {
			if ok, _ := strconv.ParseBool(os.Getenv(pgtest.EnvRequirePostgres)); ok {
				b.Fatal(err)
			}
			b.Skipf("%v: SKIPPING the benchmarks (set %s=1 to fail instead)", err, pgtest.EnvRequirePostgres)
		}
		settings, err := clusterSettings()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		c, err := pgtest.StartCluster(&pgtest.ClusterOptions{Settings: settings})
		if err != nil {
			b.Fatalf("starting the benchmark cluster: %v", err)
		}
		b.Cleanup(func() {
			if err := c.Remove(); err != nil {
				b.Errorf("removing the benchmark cluster: %v", err)
			}
		})
		connString, cluster = c.ConnString("postgres"), c
		b.Logf("server: a throwaway cluster of its own (pgtest.StartCluster, started in %v)", time.Since(start).Round(time.Millisecond))
	}

	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		b.Fatalf("connecting: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := pgstore.Migrate(ctx, conn, &pgstore.MigrateOpts{Schema: benchSchema}); err != nil {
		b.Fatal(err)
	}
	// The baseline table: the same columns, identity, generated category,
	// defaults, constraints and indexes as events (LIKE ... INCLUDING ALL
	// copies everything but the triggers: the immutability triggers fire
	// only on UPDATE, DELETE and TRUNCATE, never on INSERT). transaction_id
	// defaults to pg_current_xact_id() so that COPY fills it as the raw
	// INSERT does.
	s := pgx.Identifier{benchSchema}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`
		CREATE TABLE %[1]s.raw_events (LIKE %[1]s.events INCLUDING ALL);
		ALTER TABLE %[1]s.raw_events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id();`, s)); err != nil {
		b.Fatalf("creating the baseline table: %v", err)
	}
	b.Logf("settings: %s", serverSettings(ctx, b, conn))
	start := time.Now()
	if err := seed(ctx, conn); err != nil {
		b.Fatalf("seeding: %v", err)
	}
	b.Logf("seeded %d events in %d streams into events and raw_events in %v", seedEvents, seedStreams, time.Since(start).Round(time.Millisecond))

	env := &benchEnv{
		cluster:  cluster,
		rawTable: pgx.Identifier{benchSchema, "raw_events"},
		rawInsert: "INSERT INTO " + s + ".raw_events" +
			" (transaction_id, stream_id, version, event_id, event_type, data, metadata)" +
			" VALUES (pg_current_xact_id(), $1, $2, $3, $4, $5, $6)",
		rawSelect: "SELECT global_position, transaction_id, version, event_id, event_type, data, metadata, recorded_at" +
			" FROM " + s + ".events WHERE stream_id = $1 ORDER BY version",
	}
	env.pool = newBenchPool(b, connString, nil)
	env.poolOff = newBenchPool(b, connString, map[string]string{"es.notify": "off"})
	if env.store, err = pgstore.New(env.pool, &pgstore.Config{Schema: benchSchema}); err != nil {
		b.Fatal(err)
	}
	if env.storeOff, err = pgstore.New(env.poolOff, &pgstore.Config{Schema: benchSchema}); err != nil {
		b.Fatal(err)
	}
	var notify string
	if err := env.poolOff.QueryRow(ctx, "SELECT current_setting('es.notify', true)").Scan(&notify); err != nil || notify != "off" {
		b.Fatalf("es.notify on the notify-off pool: %q, %v", notify, err)
	}
	env.reportStatements(ctx, b)
	return env
}

// reportStatements logs, at the end, the statements that took the most
// server time, when pg_stat_statements is preloaded, e.g. with
// ES_BENCH_PG_SETTINGS="shared_preload_libraries=pg_stat_statements,
// pg_stat_statements.track=all,pg_stat_statements.track_planning=on"
// (track=all includes the statements run inside the es functions; plans
// counts how often each was planned).
func (env *benchEnv) reportStatements(ctx context.Context, b *testing.B) {
	var preload string
	if err := env.pool.QueryRow(ctx, "SHOW shared_preload_libraries").Scan(&preload); err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(preload, "pg_stat_statements") {
		return
	}
	if _, err := env.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		b.Fatal(err)
	}
	if _, err := env.pool.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		rows, err := env.pool.Query(ctx, `
			SELECT calls, plans, round(total_exec_time::numeric, 1), round((total_exec_time / calls)::numeric, 4),
			       round((total_plan_time / greatest(plans, 1))::numeric, 4),
			       regexp_replace(left(query, 110), '\s+', ' ', 'g')
			  FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time DESC LIMIT 20`)
		if err != nil {
			b.Errorf("pg_stat_statements: %v", err)
			return
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var (
				calls, plans          int64
				total, mean, planMean float64
				query                 string
			)
			if err := rows.Scan(&calls, &plans, &total, &mean, &planMean, &query); err != nil {
				b.Errorf("pg_stat_statements: %v", err)
				return
			}
			lines = append(lines, fmt.Sprintf("%9d calls %9d plans %10.1f ms %8.4f ms/call %8.4f ms/plan  %s",
				calls, plans, total, mean, planMean, query))
		}
		b.Logf("pg_stat_statements, top by total time:\n%s", strings.Join(lines, "\n"))
	})
}

// seed fills events (and streams) and raw_events with the same seedEvents
// rows, so that the benchmarks run against tables and indexes of some size
// rather than empty ones, and analyzes them as autovacuum would have.
func seed(ctx context.Context, conn *pgx.Conn) error {
	s := pgx.Identifier{benchSchema}.Sanitize()
	perStream := seedEvents / seedStreams
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %s.streams (stream_id, version, transaction_id)
			SELECT 'order-seed' || i, $1, pg_current_xact_id() FROM generate_series(1, $2) AS i`, s),
			perStream, seedStreams); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %s.events (transaction_id, stream_id, version, event_id, event_type, data, metadata)
			SELECT pg_current_xact_id(), 'order-seed' || i, v, gen_random_uuid(), $3, $4, $5
			  FROM generate_series(1, $2) AS i, generate_series(1, $1) AS v
			 ORDER BY v, i`, s),
			perStream, seedStreams, eventType, eventData, eventMetadata); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`
			INSERT INTO %[1]s.raw_events (transaction_id, stream_id, version, event_id, event_type, data, metadata)
			SELECT transaction_id, stream_id, version, event_id, event_type, data, metadata
			  FROM %[1]s.events ORDER BY global_position;
			ANALYZE %[1]s.streams, %[1]s.events, %[1]s.raw_events`, s)); err != nil {
			return err
		}
		return nil
	})
}

// clusterSettings returns durableSettings overridden by ES_BENCH_PG_SETTINGS.
func clusterSettings() (map[string]string, error) {
	settings := maps.Clone(durableSettings)
	extra := strings.TrimSpace(os.Getenv("ES_BENCH_PG_SETTINGS"))
	if extra == "" {
		return settings, nil
	}
	for kv := range strings.SplitSeq(extra, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("ES_BENCH_PG_SETTINGS: %q is not name=value", kv)
		}
		settings[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return settings, nil
}

func serverSettings(ctx context.Context, b *testing.B, conn *pgx.Conn) string {
	b.Helper()
	rows, err := conn.Query(ctx, "SELECT name, setting, coalesce(unit, '') FROM pg_settings WHERE name = ANY($1) ORDER BY name", reportedSettings)
	if err != nil {
		b.Fatal(err)
	}
	var parts []string
	for rows.Next() {
		var name, setting, unit string
		if err := rows.Scan(&name, &setting, &unit); err != nil {
			b.Fatal(err)
		}
		if unit != "" {
			setting += " (" + unit + ")"
		}
		parts = append(parts, name+"="+setting)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return strings.Join(parts, " ")
}

// newBenchPool returns a pool of benchWriters connections with the given
// runtime parameters, every connection opened in advance.
func newBenchPool(b *testing.B, connString string, params map[string]string) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchWriters
	cfg.MinConns = benchWriters
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	conns := make([]*pgxpool.Conn, 0, benchWriters)
	for range benchWriters {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return pool
}

// writer is one writer's stream, in events (through the store) and in the
// baseline table, with the version it has reached in each.
type writer struct {
	stream     string
	version    int64 // in events (in its own table on a raw side of BenchmarkWritePath)
	rawVersion int64 // in raw_events
}

// newWriters returns n writers on fresh streams of one category ("order").
func (env *benchEnv) newWriters(n int) []*writer {
	gen := env.gen.Add(1)
	ws := make([]*writer, n)
	for i := range ws {
		ws[i] = &writer{stream: fmt.Sprintf("order-r%dw%d", gen, i)}
	}
	return ws
}

// appendOne appends one event to w's stream through store, expecting the
// version the writer last saw (as a repository saving an aggregate does).
func (w *writer) appendOne(ctx context.Context, store *pgstore.Store) error {
	res, err := store.Append(ctx, w.stream, es.Exactly(w.version),
		[]es.NewEvent{{Type: eventType, Data: eventData, Metadata: eventMetadata}})
	if err != nil {
		return err
	}
	w.version = res.StreamVersion
	return nil
}

// insertOne inserts one event row into the baseline table, as its own
// (autocommit) transaction.
func (w *writer) insertOne(ctx context.Context, env *benchEnv) error {
	id, err := newRawID()
	if err != nil {
		return err
	}
	_, err = env.pool.Exec(ctx, env.rawInsert, w.stream, w.rawVersion+1, id, eventType, eventData, eventMetadata)
	if err != nil {
		return err
	}
	w.rawVersion++
	return nil
}

// newRawID makes a fresh UUIDv7 for a baseline's row, as [16]byte: the
// form the store passes its ids in, which pgx encodes directly (a
// uuid.UUID goes through its driver.Valuer, a text round trip that would
// slow the baselines, not the server).
func newRawID() ([16]byte, error) {
	id, err := uuid.NewV7()
	return id, err
}

// concurrently makes a side's run function in which each writer of ws, in
// a goroutine of its own, calls op about n/len(ws) times; it fails with
// the first error any of them met.
func concurrently(ws []*writer, op func(context.Context, *writer) error) func(context.Context, int) (int, error) {
	return func(ctx context.Context, n int) (int, error) {
		per := max(1, (n+len(ws)-1)/len(ws))
		errs := make([]error, len(ws))
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Go(func() {
				for range per {
					if err := op(ctx, w); err != nil {
						errs[i] = err
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return 0, err
			}
		}
		return per * len(ws), nil
	}
}

// side is one of the things a benchmark compares: run does about n
// operations and returns how many it did.
type side struct {
	name string
	run  func(ctx context.Context, n int) (int, error)
}

// sequential makes a side's run function that calls op n times in a row.
func sequential(op func(context.Context) error) func(context.Context, int) (int, error) {
	return func(ctx context.Context, n int) (int, error) {
		for range n {
			if err := op(ctx); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
}

// interleave runs every side rounds times, n operations a round, rotating
// which side goes first, and returns each side's time per operation
// (nanoseconds) in each round: perOp[side][round].
func interleave(ctx context.Context, b *testing.B, rounds, n int, sides ...side) [][]float64 {
	b.Helper()
	perOp := make([][]float64, len(sides))
	for r := range rounds {
		for k := range sides {
			i := (r + k) % len(sides)
			start := time.Now()
			ops, err := sides[i].run(ctx, n)
			elapsed := time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v", sides[i].name, err)
			}
			perOp[i] = append(perOp[i], float64(elapsed.Nanoseconds())/float64(ops))
		}
	}
	return perOp
}

// prepare readies a benchmark run: refreshes the planner statistics (as
// autovacuum would for tables that grow this fast), warms every side up
// (statements prepared and planned, caches warm), checkpoints so that no
// run starts with a backlog of dirty pages, and returns the rounds and
// operations per round for b.N operations per side. The timer is stopped
// while it runs.
func (env *benchEnv) prepare(ctx context.Context, b *testing.B, warmup int, sides ...side) (rounds, n int) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	s := pgx.Identifier{benchSchema}.Sanitize()
	if _, err := env.pool.Exec(ctx, fmt.Sprintf("ANALYZE %[1]s.streams, %[1]s.events, %[1]s.raw_events", s)); err != nil {
		b.Fatalf("analyze: %v", err)
	}
	for _, s := range sides {
		if _, err := s.run(ctx, warmup); err != nil {
			b.Fatalf("%s (warm-up): %v", s.name, err)
		}
	}
	if _, err := env.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatalf("checkpoint: %v", err)
	}
	rounds = min(benchRounds, b.N)
	return rounds, max(1, b.N/rounds)
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios returns a[i]/b[i] for each round i.
func ratios(a, b []float64) []float64 {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return r
}

// reportRatio reports a ratio, its target (the metric <name>_max for an
// upper bound, <name>_min for a lower one) and <name>_ok: 1 when the target
// is met, else 0.
func reportRatio(b *testing.B, name string, value, target float64, upper bool) {
	b.Helper()
	b.ReportMetric(value, name)
	ok := value >= target
	if upper {
		ok = value <= target
		b.ReportMetric(target, name+"_max")
	} else {
		b.ReportMetric(target, name+"_min")
	}
	b.ReportMetric(boolMetric(ok), name+"_ok")
}

func boolMetric(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// benchAppendOne: Store.Append of one event by one writer (es.notify on,
// the default, and off) against a raw single-row INSERT, each its own
// transaction. An operation is one append (or one INSERT) on each side.
func (env *benchEnv) benchAppendOne(b *testing.B) {
	ctx := context.Background()
	w := env.newWriters(1)[0]
	sides := []side{
		{"append", sequential(func(ctx context.Context) error { return w.appendOne(ctx, env.store) })},
		{"append_nonotify", sequential(func(ctx context.Context) error { return w.appendOne(ctx, env.storeOff) })},
		{"raw_insert", sequential(func(ctx context.Context) error { return w.insertOne(ctx, env) })},
	}
	rounds, n := env.prepare(ctx, b, 50, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	app, off, raw := median(perOp[0]), median(perOp[1]), median(perOp[2])
	b.ReportMetric(app, "ns/op")
	b.ReportMetric(app/1e3, "append_us/op")
	b.ReportMetric(off/1e3, "append_nonotify_us/op")
	b.ReportMetric(raw/1e3, "raw_us/op")
	b.ReportMetric(median(ratios(perOp[1], perOp[2])), "nonotify_x_raw")
	reportRatio(b, "x_raw", median(ratios(perOp[0], perOp[2])), targetAppendOneMaxXRaw, true)
	// The client's share: heap allocations per operation on each side
	// (the store's and pgx's together).
	b.ReportMetric(allocsPerOp(ctx, b, func(ctx context.Context) error { return w.appendOne(ctx, env.store) }), "append_allocs/op")
	b.ReportMetric(allocsPerOp(ctx, b, func(ctx context.Context) error { return w.insertOne(ctx, env) }), "raw_allocs/op")
	b.ReportMetric(clientCPUPerOp(ctx, b, func(ctx context.Context) error { return w.appendOne(ctx, env.store) }), "append_client_cpu_us/op")
	b.ReportMetric(clientCPUPerOp(ctx, b, func(ctx context.Context) error { return w.insertOne(ctx, env) }), "raw_client_cpu_us/op")
}

// benchAppendConcurrent: 8 goroutines, each appending one event at a time
// to its own stream (one category), through a pool of 8 connections, with
// es.notify on (the default) and off, against 8 goroutines doing raw
// single-row INSERTs. An operation is one append (or INSERT); throughput
// is operations over the wall time of a round.
func (env *benchEnv) benchAppendConcurrent(b *testing.B) {
	ctx := context.Background()
	ws := env.newWriters(benchWriters)
	sides := []side{
		{"append", concurrently(ws, func(ctx context.Context, w *writer) error { return w.appendOne(ctx, env.store) })},
		{"append_nonotify", concurrently(ws, func(ctx context.Context, w *writer) error { return w.appendOne(ctx, env.storeOff) })},
		{"raw_insert", concurrently(ws, func(ctx context.Context, w *writer) error { return w.insertOne(ctx, env) })},
	}
	rounds, n := env.prepare(ctx, b, 20*benchWriters, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	app, off, raw := median(perOp[0]), median(perOp[1]), median(perOp[2])
	b.ReportMetric(app, "ns/op")
	b.ReportMetric(1e9/app, "append_ev/s")
	b.ReportMetric(1e9/off, "append_nonotify_ev/s")
	b.ReportMetric(1e9/raw, "raw_ev/s")
	// Throughput ratios: the inverse of the time ratios.
	reportRatio(b, "x_raw", median(ratios(perOp[2], perOp[0])), targetConcurrentMinXRaw, false)
	reportRatio(b, "x_notify_off", median(ratios(perOp[1], perOp[0])), targetConcurrentMinXNotifyOff, false)
}

// benchAppendBatch: Store.Append of 100 events in one call (one writer,
// es.notify on) against pgx CopyFrom of the same 100 rows into the baseline
// table, each its own transaction. An operation is one call (100 events).
func (env *benchEnv) benchAppendBatch(b *testing.B) {
	ctx := context.Background()
	w := env.newWriters(1)[0]
	events := make([]es.NewEvent, batchSize)
	for i := range events {
		events[i] = es.NewEvent{Type: eventType, Data: eventData, Metadata: eventMetadata}
	}
	columns := []string{"stream_id", "version", "event_id", "event_type", "data", "metadata"}
	appendBatch := func(ctx context.Context) error {
		// Zero ids: the store gives each event a fresh UUIDv7.
		res, err := env.store.Append(ctx, w.stream, es.Exactly(w.version), events)
		if err != nil {
			return err
		}
		w.version = res.StreamVersion
		return nil
	}
	copyBatch := func(ctx context.Context) error {
		rows := make([][]any, batchSize)
		for i := range rows {
			id, err := newRawID()
			if err != nil {
				return err
			}
			rows[i] = []any{w.stream, w.rawVersion + int64(i) + 1, id, eventType, eventData, eventMetadata}
		}
		n, err := env.pool.CopyFrom(ctx, env.rawTable, columns, pgx.CopyFromRows(rows))
		if err != nil {
			return err
		}
		if n != batchSize {
			return fmt.Errorf("copied %d rows, want %d", n, batchSize)
		}
		w.rawVersion += batchSize
		return nil
	}
	sides := []side{
		{"append_batch", sequential(appendBatch)},
		{"copy", sequential(copyBatch)},
	}
	rounds, n := env.prepare(ctx, b, 10, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	app, cp := median(perOp[0]), median(perOp[1])
	b.ReportMetric(app, "ns/op")
	b.ReportMetric(app/1e3, "append_us/op")
	b.ReportMetric(cp/1e3, "copy_us/op")
	b.ReportMetric(batchSize*1e9/app, "append_ev/s")
	b.ReportMetric(batchSize*1e9/cp, "copy_ev/s")
	reportRatio(b, "x_copy", median(ratios(perOp[1], perOp[0])), targetBatchMinXCopy, false)
}

// benchReadStream: Store.ReadStream of a 1,000-event stream, collected into
// a []es.Event, against a raw SELECT of the same columns of the same rows
// (WHERE stream_id = $1 ORDER BY version) scanned into the same Go types and
// collected the same way. An operation is one read of the whole stream.
func (env *benchEnv) benchReadStream(b *testing.B) {
	ctx := context.Background()
	stream := env.readStreamFixture(ctx, b)
	readStore := func(ctx context.Context) error {
		var events []es.Event
		for e, err := range env.store.ReadStream(ctx, stream, nil) {
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		if len(events) != readSize {
			return fmt.Errorf("read %d events, want %d", len(events), readSize)
		}
		return nil
	}
	readRaw := func(ctx context.Context) error {
		rows, err := env.pool.Query(ctx, env.rawSelect, stream)
		if err != nil {
			return err
		}
		defer rows.Close()
		var events []es.Event
		for rows.Next() {
			var (
				e      = es.Event{StreamID: stream}
				global int64
				txKey  uint64
			)
			// event_id as [16]byte, pgx's native uuid form, as the store scans it.
			if err := rows.Scan(&global, &txKey, &e.Version, (*[16]byte)(&e.ID), &e.Type, &e.Data, &e.Metadata, &e.RecordedAt); err != nil {
				return err
			}
			e.Position = es.NewPosition(txKey, global)
			events = append(events, e)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(events) != readSize {
			return fmt.Errorf("read %d events, want %d", len(events), readSize)
		}
		return nil
	}
	sides := []side{
		{"read_stream", sequential(readStore)},
		{"raw_select", sequential(readRaw)},
	}
	rounds, n := env.prepare(ctx, b, 20, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	rd, raw := median(perOp[0]), median(perOp[1])
	b.ReportMetric(rd, "ns/op")
	b.ReportMetric(rd/1e3, "read_us/op")
	b.ReportMetric(raw/1e3, "raw_us/op")
	b.ReportMetric(readSize*1e9/rd, "read_ev/s")
	reportRatio(b, "x_raw", median(ratios(perOp[0], perOp[1])), targetReadMaxXRaw, true)
}

// readStreamFixture appends, once, a stream of 1,000 events (in calls of
// 100) for the read benchmark.
func (env *benchEnv) readStreamFixture(ctx context.Context, b *testing.B) string {
	b.Helper()
	env.readOnce.Do(func() {
		stream := "read-fixture"
		events := make([]es.NewEvent, batchSize)
		for i := range events {
			events[i] = es.NewEvent{Type: eventType, Data: eventData, Metadata: eventMetadata}
		}
		for v := int64(0); v < readSize; v += batchSize {
			if _, err := env.store.Append(ctx, stream, es.Exactly(v), events); err != nil {
				env.readErr = err
				return
			}
		}
		if _, err := env.pool.Exec(ctx, "ANALYZE "+pgx.Identifier{benchSchema, "events"}.Sanitize()); err != nil {
			env.readErr = err
			return
		}
		env.readStream = stream
	})
	if env.readErr != nil {
		b.Fatalf("appending the read fixture: %v", env.readErr)
	}
	return env.readStream
}

// msgpackMap encodes string pairs as a msgpack map (fixmap of fixstr or
// str8 keys and values), enough for realistic payloads.
func msgpackMap(kv ...string) []byte {
	if len(kv)%2 != 0 || len(kv)/2 > 15 {
		panic("msgpackMap: want at most 15 key/value pairs")
	}
	out := []byte{0x80 | byte(len(kv)/2)}
	for _, s := range kv {
		switch {
		case len(s) < 32:
			out = append(out, 0xa0|byte(len(s)))
		case len(s) < 256:
			out = append(out, 0xd9, byte(len(s)))
		default:
			panic("msgpackMap: string too long")
		}
		out = append(out, s...)
	}
	return out
}
