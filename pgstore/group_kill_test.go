package pgstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/internal/syncbuf"
	"github.com/pgevent/es/pgstore"
)

// groupChildEnv carries a worker process's instructions from
// TestGroupKillOneOfThreeWorkers to TestGroupKillChild:
// "<worker>|<schema>|<group>|<connection string>".
const groupChildEnv = "ES_GROUP_KILL_CHILD"

const (
	groupKillPartitions = 8
	groupKillStreams    = 50
	groupKillPerAppend  = 2  // events per append (one stream)
	groupKillMinRounds  = 40 // rounds of one append to every stream
	groupKillAfterKill  = 10 // rounds appended after the kill, at least
)

// groupKillConfig is the workers' store config: a short rebalance, and a
// lease TTL short enough that a takeover does not depend only on the
// server noticing that the killed worker's backends have gone.
func groupKillConfig(schema string) *pgstore.Config {
	return fastConfig(schema, pgstore.SubscriptionConfig{LeasePollInterval: 50 * time.Millisecond, LeaseTTL: 3 * time.Second})
}

// TestGroupKillChild is not a test on its own: it is a worker process of
// TestGroupKillOneOfThreeWorkers. It runs a member of the consumer group
// with a transactional handler that records each event in the table
// handled (a second application counts in dups; in_order says whether the
// stream's previous version was applied before), until its standard input
// closes.
func TestGroupKillChild(t *testing.T) {
	spec := os.Getenv(groupChildEnv)
	if spec == "" {
		t.Skip("a worker process of TestGroupKillOneOfThreeWorkers")
	}
	parts := strings.SplitN(spec, "|", 4)
	require.Len(t, parts, 4)
	worker, err := strconv.Atoi(parts[0])
	require.NoError(t, err)
	schema, group, connString := parts[1], parts[2], parts[3]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdinClosed := make(chan struct{})
	go func() {
		defer close(stdinClosed)
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	pool, err := pgxpool.New(ctx, connString)
	require.NoError(t, err)
	defer pool.Close()
	cfg := groupKillConfig(schema)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)) // shown when the test fails
	store, err := pgstore.New(pool, cfg)
	require.NoError(t, err)

	insert := fmt.Sprintf(`INSERT INTO %[1]s.handled AS h (event_id, stream_id, version, partition, worker, in_order)
		VALUES ($1, $2, $3, $4, $5, $3::bigint = 1 OR EXISTS (
			SELECT FROM %[1]s.handled AS p WHERE p.stream_id = $2 AND p.version = $3::bigint - 1))
		ON CONFLICT (event_id) DO UPDATE SET dups = h.dups + 1`, schema)
	err = store.SubscribeTx(ctx, group, func(ctx context.Context, etx es.Tx, e es.Event) error {
		_, err := pgstore.PgxTx(etx).Exec(ctx, insert, e.ID, e.StreamID, e.Version,
			es.StreamPartition(e.StreamID, groupKillPartitions), worker)
		return err
	}, fastOpts(es.SubscribeOpts{Partitions: groupKillPartitions, BatchSize: 10}))
	require.NoError(t, err)
	<-stdinClosed
}

// groupWorker is a worker process of TestGroupKillOneOfThreeWorkers.
type groupWorker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   syncbuf.Buffer
	done  chan struct{} // closed when it has exited; then err is set
	err   error
}

func startWorker(t *testing.T, n int, schema, group string) *groupWorker {
	t.Helper()
	w := &groupWorker{done: make(chan struct{})}
	w.cmd = exec.Command(os.Args[0], "-test.run=^TestGroupKillChild$", "-test.count=1")
	w.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d|%s|%s|%s", groupChildEnv, n, schema, group, pgtest.ConnString(t)))
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	var err error
	w.stdin, err = w.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, w.cmd.Start())
	go func() {
		defer close(w.done)
		w.err = w.cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			t.Logf("worker %d (%v):\n%s", n, w.err, w.out.String())
		}
	})
	return w
}

// stop closes the worker's standard input (it stops its member, which
// leaves the group) and waits for it to exit.
func (w *groupWorker) stop(t *testing.T) error {
	t.Helper()
	require.NoError(t, w.stdin.Close())
	select {
	case <-w.done:
		return w.err
	case <-time.After(deliveryTimeout):
		t.Fatal("the worker did not stop")
		return nil
	}
}

// appendedEvent is an event TestGroupKillOneOfThreeWorkers appended.
type appendedEvent struct {
	stream    string
	version   int64
	partition int
	afterKill bool // appended after the kill
}

// TestGroupKillOneOfThreeWorkers runs a consumer group of 8 partitions on
// three worker processes with a transactional handler while events are
// appended to 50 streams, kills one worker (SIGKILL) mid-stream, and
// checks that the two others take over its partitions and that every
// event is applied exactly once, each stream in order.
func TestGroupKillOneOfThreeWorkers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, fastConfig(schema))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TABLE `+schema+`.handled (
		event_id uuid PRIMARY KEY,
		stream_id text NOT NULL,
		version bigint NOT NULL,
		partition int NOT NULL,
		worker int NOT NULL,
		in_order boolean NOT NULL,
		dups int NOT NULL DEFAULT 0,
		pid int NOT NULL DEFAULT pg_backend_pid())`)
	require.NoError(t, err)

	streams := make([]string, groupKillStreams)
	covered := map[int]bool{}
	for i := range streams {
		streams[i] = fmt.Sprintf("gk-%d", i)
		covered[es.StreamPartition(streams[i], groupKillPartitions)] = true
	}
	require.Len(t, covered, groupKillPartitions, "every partition has streams")

	// The appender: rounds of one append to every stream, at least
	// groupKillMinRounds and groupKillAfterKill after the kill.
	killed := make(chan struct{})
	type appendResult struct {
		events map[uuid.UUID]appendedEvent
		err    error
	}
	appended := make(chan appendResult, 1)
	var appenderDone sync.WaitGroup
	appenderDone.Add(1)
	t.Cleanup(appenderDone.Wait) // runs after t.Context is cancelled
	go func() {
		defer appenderDone.Done()
		events := map[uuid.UUID]appendedEvent{}
		afterKill := 0
		for round := 0; round < groupKillMinRounds || afterKill < groupKillAfterKill; round++ {
			isAfter := false
			select {
			case <-killed:
				isAfter = true
				afterKill++
			default:
			}
			for _, stream := range streams {
				batch := newEvents(groupKillPerAppend, "GroupKill")
				if _, err := store.Append(ctx, stream, es.Exactly(int64(round*groupKillPerAppend)), batch); err != nil {
					appended <- appendResult{err: fmt.Errorf("round %d, stream %s: %w", round, stream, err)}
					return
				}
				for i, e := range batch {
					events[e.ID] = appendedEvent{stream: stream, version: int64(round*groupKillPerAppend + i + 1),
						partition: es.StreamPartition(stream, groupKillPartitions), afterKill: isAfter}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		appended <- appendResult{events: events}
	}()

	const group = "group-kill"
	workers := make([]*groupWorker, 3)
	for i := range workers {
		workers[i] = startWorker(t, i, schema, group)
	}
	victim := -1
	requireRunning := func() { // every worker but the victim
		t.Helper()
		for i, w := range workers {
			select {
			case <-w.done:
				require.Equal(t, victim, i, "worker %d exited: %v", i, w.err)
			default:
			}
		}
	}

	// Once every worker is handling events and holds partitions, kill the
	// one that holds the most. A partition's handler runs on the
	// connection that holds its lease: the backends a worker's handler ran
	// on tell its leases.
	held := func() map[int][]int {
		rows, err := pool.Query(ctx, `SELECT DISTINCT p.partition, h.worker
			FROM `+schema+`.subscription_leases AS l
			JOIN `+schema+`.subscription_partitions AS p USING (subscription_id)
			JOIN `+schema+`.handled AS h ON h.pid = l.holder_pid
			WHERE p.group_name = $1 AND `+schema+`.lease_live(l.expires_at, l.holder_pid)
			ORDER BY 1`, group)
		require.NoError(t, err)
		by := map[int][]int{} // worker → partitions
		var p, w int
		_, err = pgx.ForEachRow(rows, []any{&p, &w}, func() error {
			by[w] = append(by[w], p)
			return nil
		})
		require.NoError(t, err)
		return by
	}
	var holds map[int][]int
	deadline := time.Now().Add(deliveryTimeout)
	for {
		var busy int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT worker FROM `+schema+`.handled
			GROUP BY worker HAVING count(*) >= 20) AS w`).Scan(&busy))
		if busy == len(workers) {
			if holds = held(); len(holds) == len(workers) {
				break
			}
		}
		select {
		case r := <-appended:
			require.NoError(t, r.err)
			t.Fatal("the appender finished before the kill")
		default:
		}
		requireRunning()
		require.False(t, time.Now().After(deadline), "every worker handling events, holding partitions")
		time.Sleep(50 * time.Millisecond)
	}
	victim = 0
	for i := range workers {
		if len(holds[i]) > len(holds[victim]) {
			victim = i
		}
	}
	victimParts := holds[victim]
	require.NoError(t, workers[victim].cmd.Process.Kill())
	<-workers[victim].done
	close(killed)
	t.Logf("killed worker %d holding partitions %v (%v)", victim, victimParts, holds)

	// Every event appended is applied, exactly once, in order.
	r := <-appended
	require.NoError(t, r.err)
	total := len(r.events)
	deadline = time.Now().Add(deliveryTimeout)
	for {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.handled`).Scan(&n))
		if n >= total {
			break
		}
		requireRunning()
		require.False(t, time.Now().After(deadline), "%d of %d events handled", n, total)
		time.Sleep(50 * time.Millisecond)
	}
	for i, w := range workers {
		if i != victim {
			require.NoError(t, w.stop(t), "worker %d", i)
		}
	}

	type handledRow struct {
		stream            string
		version           int64
		partition, worker int
		inOrder           bool
		dups              int
	}
	handled := map[uuid.UUID]handledRow{}
	rows, err := pool.Query(ctx, `SELECT event_id, stream_id, version, partition, worker, in_order, dups FROM `+schema+`.handled`)
	require.NoError(t, err)
	var id uuid.UUID
	var h handledRow
	_, err = pgx.ForEachRow(rows, []any{&id, &h.stream, &h.version, &h.partition, &h.worker, &h.inOrder, &h.dups}, func() error {
		handled[id] = h
		return nil
	})
	require.NoError(t, err)
	require.Len(t, handled, total, "events applied")
	takenOver := map[int]int{} // victim's partition → events appended after the kill
	for id, a := range r.events {
		h, ok := handled[id]
		require.True(t, ok, "event %s (%s v%d) applied", id, a.stream, a.version)
		require.Zero(t, h.dups, "event %s (%s v%d) applied again", id, a.stream, a.version)
		require.True(t, h.inOrder, "event %s (%s v%d) applied before its stream's previous version", id, a.stream, a.version)
		require.Equal(t, a.stream, h.stream)
		require.Equal(t, a.version, h.version)
		if a.afterKill {
			require.NotEqual(t, victim, h.worker, "event %s applied by the killed worker after the kill", id)
			if slices.Contains(victimParts, a.partition) {
				takenOver[a.partition]++
			}
		}
	}
	for _, p := range victimParts {
		require.Positive(t, takenOver[p], "events appended after the kill in the killed worker's partition %d, applied by the others", p)
	}
	t.Logf("%d events in %d streams applied once each, in order; the others applied %v events appended after the kill in the killed worker's partitions",
		total, len(streams), takenOver)
}
