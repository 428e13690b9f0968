package pgstore_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/snapshot"
)

// Snapshots: loading an aggregate costs about the same whatever its history
// length, and a full replay streams.
const (
	// Repository.Load of a 1,000,000-event aggregate from its snapshot and
	// tail: time at most 1.2x the same load of a 1,000-event aggregate.
	targetSnapshotLoadMaxXSmall = 1.2
	// Peak heap during a full replay of the 1,000,000-event stream at most
	// 1.5x the peak during a full replay of a 100,000-event stream: memory
	// does not grow with the stream.
	targetReplayHeapMaxX100k = 1.5
	// Seeding the 1,000,000-event stream (batch appends of 10,000 events):
	// well under a minute.
	targetSeedMaxSeconds = 30

	bigStreamEvents    = 1_000_000
	mediumStreamEvents = 100_000
	smallStreamEvents  = 1_000
	snapshotTail       = 500    // events after the snapshot, in both loaded streams
	seedBatch          = 10_000 // events per save while seeding
)

// snapOrder is the benchmark aggregate of load_bench_test.go with
// snapshots (schema version 1, its exported fields as state).
type snapOrder struct{ loadOrder }

func (o *snapOrder) SnapshotSchemaVersion() int       { return 1 }
func (o *snapOrder) MarshalSnapshot() ([]byte, error) { return snapshot.Marshal(&o.loadOrder) }
func (o *snapOrder) UnmarshalSnapshot(state []byte) error {
	return snapshot.Unmarshal(state, &o.loadOrder)
}

// snapshotFixtures are the streams the snapshot benchmarks read, built
// once per benchmark server.
type snapshotFixtures struct {
	once     sync.Once
	err      error
	seed     time.Duration // seeding the big stream
	registry *es.Registry
	snaps    *es.Repository[*snapOrder]
	plain    *es.Repository[*loadOrder]
	big      string // aggregate id: bigStreamEvents events, snapshot snapshotTail before the head
	small    string // smallStreamEvents events, snapshot snapshotTail before the head
	medium   string // mediumStreamEvents events, no snapshot
	bigWant  loadOrder
	smallWnt loadOrder
}

var snapFixtures snapshotFixtures

// BenchmarkSnapshot runs the snapshot benchmarks on one server:
//
//   - Load1MEventsFromSnapshot: Repository.Load of an aggregate of
//     1,000,000 events whose snapshot is 500 events behind the head (as
//     snapshot.Every(1000) leaves it on average), against the same load of
//     a 1,000-event aggregate, also 500 events past its snapshot;
//   - FullReplay1MEvents: Repository.Load of the 1,000,000-event stream
//     without snapshots (an aggregate that does not implement
//     es.Snapshotter), streamed: events/s, and the peak heap against the
//     peak of a 100,000-event replay.
//
// The 1,000,000-event stream is seeded once, by batch appends of 10,000
// events (Store.Append, the next batch encoded while one is appended), the
// last 10,000 through Repository.Save, whose policy stores the snapshot
// 500 events before the head; the time it takes is reported (seed_s).
func BenchmarkSnapshot(b *testing.B) {
	env := newBenchEnv(b)
	f := env.snapshotFixtures(b)
	b.Run("Load1MEventsFromSnapshot", func(b *testing.B) { env.benchSnapshotLoad(b, f) })
	b.Run("FullReplay1MEvents", func(b *testing.B) { env.benchFullReplay(b, f) })
}

// snapshotFixtures seeds the streams once.
func (env *benchEnv) snapshotFixtures(b *testing.B) *snapshotFixtures {
	b.Helper()
	f := &snapFixtures
	f.once.Do(func() { f.err = env.seedSnapshotFixtures(f) })
	if f.err != nil {
		b.Fatalf("seeding the snapshot fixtures: %v", f.err)
	}
	return f
}

func (env *benchEnv) seedSnapshotFixtures(f *snapshotFixtures) error {
	ctx := context.Background()
	f.registry = es.NewRegistry()
	if err := es.Register[loadOrderOpened](f.registry, loadOpenedType); err != nil {
		return err
	}
	if err := es.Register[loadLineAdded](f.registry, loadLineType); err != nil {
		return err
	}
	var err error
	f.plain, err = es.NewRepository(env.store, f.registry, func() *loadOrder { return &loadOrder{} },
		&es.RepositoryConfig{Category: "snaporder"})
	if err != nil {
		return err
	}
	f.snaps, err = es.NewRepository(env.store, f.registry, func() *snapOrder { return &snapOrder{} },
		&es.RepositoryConfig{Category: "snaporder", SnapshotPolicy: snapshot.Every(1000)})
	if err != nil {
		return err
	}

	// seedStream appends n events to a fresh aggregate's stream, seedBatch
	// per batch append (the next batch is encoded while the current one is
	// appended), and saves the last events through the repository: the
	// save that reaches n - snapshotTail stores the snapshot (when
	// withSnapshot), the last snapshotTail events come without one. It
	// returns the final state.
	seedStream := func(id string, n int, withSnapshot bool) (loadOrder, error) {
		at := int64(n - snapshotTail)
		policy := snapshot.When(func(c es.SnapshotCandidate) bool { return withSnapshot && c.Version == at })
		repo, err := es.NewRepository(env.store, f.registry, func() *snapOrder { return &snapOrder{} },
			&es.RepositoryConfig{Category: "snaporder", SnapshotPolicy: policy})
		if err != nil {
			return loadOrder{}, err
		}
		event := func(v int64) any {
			if v == 1 {
				return loadOrderOpened{OrderID: id, Customer: "customer-20417"}
			}
			i := int(v)
			return loadLineAdded{SKU: fmt.Sprintf("sku-%04d", i%500), Qty: 1 + i%3, Price: 1299}
		}
		type batch struct {
			events  []any
			encoded []es.NewEvent
			err     error
		}
		bulk := (at - 1) / seedBatch * seedBatch // appended in batches
		batches := make(chan batch, 2)
		go func() {
			defer close(batches)
			for from := int64(1); from <= bulk; from += seedBatch {
				var bt batch
				for v := from; v < from+seedBatch; v++ {
					e := event(v)
					ne, err := f.registry.NewEvent(e, nil)
					if err != nil {
						bt.err = err
						break
					}
					ne.ID = uuid.Must(uuid.NewV7())
					bt.events, bt.encoded = append(bt.events, e), append(bt.encoded, ne)
				}
				batches <- bt
				if bt.err != nil {
					return
				}
			}
		}()
		o := repo.New(id)
		for bt := range batches {
			if bt.err != nil {
				return loadOrder{}, bt.err
			}
			if _, err := env.store.Append(ctx, repo.StreamID(id), es.Exactly(o.StoredVersion()), bt.encoded); err != nil {
				return loadOrder{}, err
			}
			if err := es.Rehydrate(o, bt.events...); err != nil {
				return loadOrder{}, err
			}
		}
		for v := bulk + 1; v <= int64(n); v++ {
			if err := es.Record(o, event(v)); err != nil {
				return loadOrder{}, err
			}
			if v == at || v == int64(n) {
				if _, err := repo.Save(ctx, o); err != nil {
					return loadOrder{}, err
				}
			}
		}
		return o.loadOrder, nil
	}

	start := time.Now()
	f.big = "big"
	if f.bigWant, err = seedStream(f.big, bigStreamEvents, true); err != nil {
		return err
	}
	f.seed = time.Since(start)
	f.small = "small"
	if f.smallWnt, err = seedStream(f.small, smallStreamEvents, true); err != nil {
		return err
	}
	f.medium = "medium"
	if _, err = seedStream(f.medium, mediumStreamEvents, false); err != nil {
		return err
	}
	_, err = env.pool.Exec(ctx, fmt.Sprintf("ANALYZE %[1]s.events, %[1]s.snapshots, %[1]s.streams", pgx.Identifier{benchSchema}.Sanitize()))
	return err
}

// benchSnapshotLoad: Repository.Load (snapshot + tail, one round trip) of
// the 1,000,000-event aggregate against the 1,000-event one, interleaved
// in rounds. An operation is one load.
func (env *benchEnv) benchSnapshotLoad(b *testing.B, f *snapshotFixtures) {
	ctx := context.Background()
	b.ReportMetric(f.seed.Seconds(), "seed_s")
	b.ReportMetric(bigStreamEvents/f.seed.Seconds(), "seed_ev/s")
	b.ReportMetric(targetSeedMaxSeconds, "seed_s_max")
	b.ReportMetric(boolMetric(f.seed.Seconds() <= targetSeedMaxSeconds), "seed_s_ok")

	load := func(id string, want loadOrder, version int64) func(context.Context) error {
		return func(ctx context.Context) error {
			o, err := f.snaps.Load(ctx, id)
			if err != nil {
				return err
			}
			if o.StoredVersion() != version || o.Lines != want.Lines || o.Total != want.Total || o.Customer != want.Customer {
				return fmt.Errorf("loaded %q at version %d with %d lines, total %d; want %d, %d, %d",
					id, o.StoredVersion(), o.Lines, o.Total, version, want.Lines, want.Total)
			}
			return nil
		}
	}
	// The snapshots are where the fixtures put them.
	for _, c := range []struct {
		id string
		n  int64
	}{{f.big, bigStreamEvents}, {f.small, smallStreamEvents}} {
		snap, err := env.store.ReadSnapshot(ctx, f.snaps.StreamID(c.id))
		if err != nil || snap.Version != c.n-snapshotTail {
			b.Fatalf("snapshot of %s: version %d, %v; want %d", c.id, snap.Version, err, c.n-snapshotTail)
		}
	}
	sides := []side{
		{"load_1m", sequential(load(f.big, f.bigWant, bigStreamEvents))},
		{"load_1k", sequential(load(f.small, f.smallWnt, smallStreamEvents))},
	}
	b.ReportAllocs()
	rounds, n := env.prepare(ctx, b, 20, sides...)
	perOp := interleave(ctx, b, rounds, n, sides...)
	b.StopTimer()

	big, small := median(perOp[0]), median(perOp[1])
	b.ReportMetric(big, "ns/op")
	b.ReportMetric(big/1e6, "load_1m_ms")
	b.ReportMetric(small/1e6, "load_1k_ms")
	reportRatio(b, "x_1k", median(ratios(perOp[0], perOp[1])), targetSnapshotLoadMaxXSmall, true)
}

// benchFullReplay: Repository.Load of the 1,000,000-event stream by an
// aggregate without snapshots: every event read (paged, streamed), decoded
// and applied. Reports events/s and the peak heap (heap objects, sampled
// every millisecond) against the peak of the same replay of 100,000
// events. An operation is one replay of the 1,000,000 events.
func (env *benchEnv) benchFullReplay(b *testing.B, f *snapshotFixtures) {
	ctx := context.Background()
	replay := func(id string, n int64) error {
		o, err := f.plain.Load(ctx, id)
		if err != nil {
			return err
		}
		if o.StoredVersion() != n || o.Lines != int(n-1) {
			return fmt.Errorf("replayed %q to version %d with %d lines, want %d", id, o.StoredVersion(), o.Lines, n)
		}
		return nil
	}
	// Warm-up and the baseline: 100,000 events.
	if err := replay(f.medium, mediumStreamEvents); err != nil {
		b.Fatal(err)
	}
	var mediumPeak uint64
	for range 3 {
		peak, _, err := peakHeap(func() error { return replay(f.medium, mediumStreamEvents) })
		if err != nil {
			b.Fatal(err)
		}
		mediumPeak = max(mediumPeak, peak)
	}

	var (
		bigPeak, baseline uint64
		times             []float64
	)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		peak, base, err := peakHeap(func() error { return replay(f.big, bigStreamEvents) })
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, float64(time.Since(start).Nanoseconds()))
		bigPeak, baseline = max(bigPeak, peak), max(baseline, base)
	}
	b.StopTimer()

	t := median(times)
	b.ReportMetric(t, "ns/op")
	b.ReportMetric(bigStreamEvents*1e9/t, "replay_ev/s")
	b.ReportMetric(t/1e9, "replay_s")
	b.ReportMetric(float64(bigPeak)/(1<<20), "peak_heap_1m_MB")
	b.ReportMetric(float64(mediumPeak)/(1<<20), "peak_heap_100k_MB")
	b.ReportMetric(float64(baseline)/(1<<20), "heap_before_MB")
	reportRatio(b, "x_heap_100k", float64(bigPeak)/float64(mediumPeak), targetReplayHeapMaxX100k, true)
}

// heapObjects is the runtime metric sampled by peakHeap: bytes of heap
// occupied by objects, live or not yet swept.
const heapObjects = "/memory/classes/heap/objects:bytes"

// peakHeap runs run after a GC, sampling the heap every millisecond, and
// returns the largest sample and the heap before run started.
func peakHeap(run func() error) (peak, before uint64, err error) {
	runtime.GC()
	sample := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(sample)
	before = sample[0].Value.Uint64()
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: heapObjects}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var top uint64
		for {
			metrics.Read(s)
			top = max(top, s[0].Value.Uint64())
			select {
			case <-stop:
				done <- top
				return
			case <-tick.C:
			}
		}
	}()
	err = run()
	close(stop)
	return <-done, before, err
}
