package integration_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
)

// TestStreamPartitionMatchesSQL checks that Go (es.StreamPartition, which
// memstore and the consumer group's resize use) and SQL (stream_partition,
// which read_partition filters with) put every stream in the same partition.
func TestStreamPartitionMatchesSQL(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.NewSchema(t)
	ids := []string{"order-1", "a", "x", "日本語-ストリーム", "category-with-dashes-1"}
	for range 500 {
		ids = append(ids, "order-"+uuid.NewString())
	}
	for _, n := range []int{1, 2, 3, 8, 13, 64, es.MaxPartitions} {
		rows, err := pool.Query(t.Context(), fmt.Sprintf(`SELECT s, %s.stream_partition(s, $2) FROM unnest($1::text[]) AS s`, schema), ids, n)
		require.NoError(t, err)
		checked := 0
		for rows.Next() {
			var id string
			var p int
			require.NoError(t, rows.Scan(&id, &p))
			require.Equal(t, p, es.StreamPartition(id, n), "stream %q among %d partitions", id, n)
			require.True(t, p >= 0 && p < n)
			checked++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, len(ids), checked)
	}
}

// TestReadsPlannedAsIndexProbes checks the plans of the reads that run on
// every batch, idle poll and checkpoint save, on a log large enough for a
// bad plan to show: a partition's batch in the middle of the log
// (read_partition with constant arguments, as a custom plan sees them),
// log_hidden and the checkpoint's position check (advance_checkpoint) at a
// position in the middle, with the oldest three quarters of the log
// archived (every read goes through events and events_archive). Each must
// walk the primary keys from the position, not scan a table or read every
// row after the position: the
// transaction's table counters (pg_stat_xact_user_tables, which count the
// functions' own statements) show no sequential scan and a few hundred
// rows fetched, not thousands.
func TestReadsPlannedAsIndexProbes(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.NewSchema(t)
	ctx := t.Context()
	const streams, perStream = 200, 100 // 20,000 events
	_, err := pool.Exec(ctx, fmt.Sprintf(`
		SELECT %[1]s.append('s-' || s, NULL,
		                    (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, %[3]d + 0 * s)),
		                    array_fill('E'::text, ARRAY[%[3]d]), array_fill('\x80'::bytea, ARRAY[%[3]d]))
		  FROM generate_series(1, %[2]d) AS s`, schema, streams, perStream))
	require.NoError(t, err)
	var midTx uint64
	var midPos int64
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT transaction_id::text::bigint, global_position FROM %s.events
		ORDER BY transaction_id, global_position OFFSET %d LIMIT 1`, schema, streams*perStream/2)).Scan(&midTx, &midPos))
	// The oldest three quarters in the archive: the reads below start in
	// it and go on in events.
	_, err = pool.Exec(ctx, fmt.Sprintf(`SELECT %[1]s.archive_events(e.transaction_id, e.global_position, 100000)
		FROM (SELECT * FROM %[1]s.events ORDER BY transaction_id, global_position OFFSET %[2]d LIMIT 1) AS e`, schema, streams*perStream*3/4))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, fmt.Sprintf("VACUUM ANALYZE %[1]s.events, %[1]s.events_archive", schema))
	require.NoError(t, err)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	counters := func() (seqScans, seqRows, idxFetched int64) {
		t.Helper()
		require.NoError(t, tx.QueryRow(ctx, `SELECT sum(seq_scan)::bigint, sum(seq_tup_read)::bigint, coalesce(sum(idx_tup_fetch), 0)::bigint
			FROM pg_stat_xact_user_tables WHERE relid IN ($1::regclass, $2::regclass)`,
			schema+".events", schema+".events_archive").Scan(&seqScans, &seqRows, &idxFetched))
		return
	}
	// The functions' statements as a long-running session plans them
	// (PL/pgSQL switches to the generic plan after five calls).
	_, err = tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	seq0, seqRows0, fetched0 := counters()

	var n int
	require.NoError(t, tx.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.read_partition('%d', %d, 100, 3, 8)`,
		schema, midTx, midPos)).Scan(&n))
	require.Equal(t, 100, n, "a batch of partition 3 of 8")
	var hidden bool
	require.NoError(t, tx.QueryRow(ctx, fmt.Sprintf(`SELECT %s.log_hidden('%d', %d)`, schema, midTx, midPos)).Scan(&hidden))
	require.False(t, hidden)
	_, err = tx.Exec(ctx, fmt.Sprintf(`SELECT %s.advance_checkpoint('probe', NULL, NULL, '%d', %d)`, schema, midTx, midPos))
	require.NoError(t, err)

	seq1, seqRows1, fetched1 := counters()
	require.Zero(t, seq1-seq0, "sequential scans of events and events_archive (%d rows read)", seqRows1-seqRows0)
	// The batch reads about 8 x 100 rows to keep partition 3's 100; the
	// probes fetch a row each at most. A plan that reads every row after
	// the middle fetches 10,000.
	require.Less(t, fetched1-fetched0, int64(3000), "rows of events fetched through indexes")
}
