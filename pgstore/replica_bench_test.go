package pgstore_test

// Benchmarks of reads from a hot standby (Config.Replicas), on a streaming
// replica of the benchmark cluster of bench_test.go.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// BenchmarkReplica runs, with a streaming replica of the benchmark
// cluster:
//
//   - ReadStream1000Events: ReadStream of a 1,000-event stream from the
//     replica against the same read from the primary, rounds interleaved
//     (replica_time_vs_primary: the time ratio replica/primary; no target, the issue asks
//     for the figure);
//   - ReadAfter8Writers: while 8 writers append on the primary as fast as
//     they can, one more writer appends an event and reads its stream
//     through the replica with es.ReadAfter its position; an operation is
//     one such append and read, and what is reported is the time the read
//     took (waiting for the replica to replay the append, then reading),
//     p50 and p99, and how often it fell back to the primary (ReplicaWait,
//     1 s, passed).
func BenchmarkReplica(b *testing.B) {
	env := newBenchEnv(b)
	if env.cluster == nil {
		b.Skip("BenchmarkReplica starts a standby of its own cluster: not on ES_TEST_DATABASE_URL")
	}
	ctx := context.Background()
	stream := env.readStreamFixture(ctx, b)
	replica, err := env.cluster.StartReplica(ctx, nil)
	if err != nil {
		b.Fatalf("starting the replica: %v", err)
	}
	b.Cleanup(func() {
		if err := replica.Remove(); err != nil {
			b.Errorf("removing the replica: %v", err)
		}
	})
	if err := replica.WaitReplayed(ctx); err != nil {
		b.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(replica.ConnString("postgres"))
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchWriters
	replicaPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(replicaPool.Close)
	viaReplica, err := pgstore.New(env.pool, &pgstore.Config{Schema: benchSchema, Replicas: []*pgxpool.Pool{replicaPool}})
	if err != nil {
		b.Fatal(err)
	}

	b.Run("ReadStream1000Events", func(b *testing.B) {
		read := func(store *pgstore.Store) func(context.Context) error {
			return func(ctx context.Context) error {
				n := 0
				for _, err := range store.ReadStream(ctx, stream, nil) {
					if err != nil {
						return err
					}
					n++
				}
				if n != readSize {
					return fmt.Errorf("read %d events, want %d", n, readSize)
				}
				return nil
			}
		}
		sides := []side{{"primary", sequential(read(env.store))}, {"replica", sequential(read(viaReplica))}}
		rounds, n := env.prepare(ctx, b, 20, sides...)
		perOp := interleave(ctx, b, rounds, n, sides...)
		b.StopTimer()
		b.ReportMetric(readSize*1e9/median(perOp[0]), "primary_read_ev/s")
		b.ReportMetric(readSize*1e9/median(perOp[1]), "replica_read_ev/s")
		b.ReportMetric(median(ratios(perOp[1], perOp[0])), "replica_time_vs_primary")
	})

	b.Run("ReadAfter8Writers", func(b *testing.B) {
		b.StopTimer()
		loadCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var loadErr atomic.Pointer[error]
		for _, w := range env.newWriters(benchWriters) {
			wg.Go(func() {
				for loadCtx.Err() == nil {
					if err := w.appendOne(loadCtx, env.store); err != nil && loadCtx.Err() == nil {
						loadErr.Store(&err)
						return
					}
				}
			})
		}
		w := env.newWriters(1)[0]
		waits := make([]time.Duration, 0, b.N)
		fellBack := 0
		b.StartTimer()
		for range b.N {
			res, err := env.store.Append(ctx, w.stream, es.Exactly(w.version),
				[]es.NewEvent{{Type: eventType, Data: eventData, Metadata: eventMetadata}})
			if err != nil {
				b.Fatal(err)
			}
			w.version = res.StreamVersion
			start := time.Now()
			info, err := viaReplica.StreamInfo(es.ReadAfter(ctx, res.LastPosition), w.stream)
			waits = append(waits, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if info.Version != w.version {
				b.Fatalf("read version %d after appending %d", info.Version, w.version)
			}
			if waits[len(waits)-1] >= time.Second {
				fellBack++
			}
		}
		b.StopTimer()
		stop()
		wg.Wait()
		if p := loadErr.Load(); p != nil {
			b.Fatal(*p)
		}
		slices.Sort(waits)
		ms := func(q float64) float64 {
			return float64(waits[min(len(waits)-1, int(q*float64(len(waits))))].Microseconds()) / 1e3
		}
		b.ReportMetric(ms(0.5), "read_after_p50_ms")
		b.ReportMetric(ms(0.99), "read_after_p99_ms")
		b.ReportMetric(float64(fellBack), "fell_back")
		b.ReportMetric(float64(len(waits)), "samples")
	})
}
