package pgstore_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

// The partitioned archive (issue 15 §3): archive_events fills partitions
// of a size, reads see no change, and detaching the oldest removes its
// events from the log as retention would.

// partitionBundle is a store on a schema of its own, a repository of
// tallies on it, and the pool to look at it in SQL.
type partitionBundle struct {
	pool   *pgxpool.Pool
	schema string
	store  *pgstore.Store
	repo   *es.Repository[*tally]
}

func newPartitionBundle(t *testing.T, schema string, version int32) *partitionBundle {
	t.Helper()
	pool := pgstoretest.Pool(t, nil)
	_, err := pgstore.Migrate(t.Context(), pool, &pgstore.MigrateOpts{Schema: schema, TargetVersion: version})
	require.NoError(t, err)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	registry := es.NewRegistry()
	require.NoError(t, es.Register[tallyOpened](registry, "tally.Opened"))
	require.NoError(t, es.Register[tallyAdded](registry, "tally.Added"))
	repo, err := es.NewRepository(store, registry, newTally, nil)
	require.NoError(t, err)
	return &partitionBundle{pool: pool, schema: schema, store: store, repo: repo}
}

// fill saves the tallies ids, opened, then rounds times one more event on
// each: a transaction (so a transaction key) per event, the streams
// interleaved in the log. It returns the log once every event is visible.
func (b *partitionBundle) fill(t *testing.T, ids []string, rounds int) []es.Event {
	t.Helper()
	ctx := t.Context()
	for _, id := range ids {
		a := b.repo.New(id)
		require.NoError(t, es.Record(a, tallyOpened{Name: id}))
		require.NoError(t, saved(b.repo.Save(ctx, a)))
	}
	for i := range rounds {
		for _, id := range ids {
			a, err := b.repo.Load(ctx, id)
			require.NoError(t, err)
			require.NoError(t, a.Add(i, "ada"))
			require.NoError(t, saved(b.repo.Save(ctx, a)))
		}
	}
	return readAllVisible(t, b.store, len(ids)*(rounds+1))
}

// reads is what the reads return: the log, each stream, each tally.
type reads struct {
	log     []es.Event
	streams map[string][]es.Event
	tallies map[string]*tally
	errs    map[string]error
}

func (b *partitionBundle) reads(t *testing.T, ids []string, n int) reads {
	t.Helper()
	r := reads{log: readAllVisible(t, b.store, n), streams: map[string][]es.Event{},
		tallies: map[string]*tally{}, errs: map[string]error{}}
	for _, id := range ids {
		for e, err := range b.store.ReadStream(t.Context(), b.repo.StreamID(id), nil) {
			require.NoError(t, err)
			r.streams[id] = append(r.streams[id], e)
		}
		a, err := b.repo.Load(t.Context(), id)
		if err != nil {
			r.errs[id] = err
			continue
		}
		r.tallies[id] = a
	}
	return r
}

func (b *partitionBundle) archive(t *testing.T, before es.Position, opts *es.ArchiveOpts) int64 {
	t.Helper()
	n, err := b.store.ArchiveEvents(t.Context(), before, opts)
	require.NoError(t, err)
	return n
}

// requireContiguous checks that the partitions' ranges follow each other.
func requireContiguous(t *testing.T, parts []pgstore.ArchivePartition) {
	t.Helper()
	for i := 1; i < len(parts); i++ {
		require.Equal(t, parts[i-1].ToTxKey, parts[i].FromTxKey, "partitions %d and %d", i-1, i)
		require.Less(t, parts[i].FromTxKey, parts[i].ToTxKey)
	}
}

func TestArchivePartitionsDetach(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newPartitionBundle(t, "es_parts", 0)
	ids := []string{"p0", "p1", "p2", "p3"}
	log := b.fill(t, ids, 10) // 44 events
	before := b.reads(t, ids, len(log))

	// Three events in a partition made for ten: it is not complete, and
	// cannot be detached.
	require.Equal(t, int64(3), b.archive(t, log[3].Position, &es.ArchiveOpts{PartitionSize: 10}))
	parts, err := b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Len(t, parts, 1)
	require.Equal(t, "events_archive_"+strconv.FormatUint(parts[0].FromTxKey, 10), parts[0].Name)
	_, err = b.store.DetachArchivePartition(ctx, parts[0].Name, &pgstore.DetachOpts{Force: true})
	require.ErrorIs(t, err, es.ErrPartitionInUse)

	// 40 events, seven per step, in partitions of ten: reads see no change.
	require.Equal(t, int64(37), b.archive(t, log[40].Position, &es.ArchiveOpts{BatchSize: 7, PartitionSize: 10}))
	parts, err = b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(parts), 4)
	requireContiguous(t, parts)
	require.Equal(t, before, b.reads(t, ids, len(log)), "archiving into partitions changes nothing a reader sees")

	// A subscription at the log's first event has not read the oldest
	// partition: detaching it is refused, unless forced. Only the oldest
	// can be detached.
	require.NoError(t, b.store.ResetCheckpoint(ctx, "lagging", log[0].Position))
	_, err = b.store.DetachArchivePartition(ctx, parts[1].Name, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = b.store.DetachArchivePartition(ctx, parts[0].Name, nil)
	require.ErrorIs(t, err, es.ErrPartitionInUse)
	n, err := b.store.DetachArchivePartition(ctx, parts[0].Name, &pgstore.DetachOpts{Force: true})
	require.NoError(t, err)
	require.Positive(t, n)
	require.Less(t, n, int64(len(log)))
	for _, e := range log[:n] {
		require.Less(t, e.Position.TxKey(), parts[0].ToTxKey, "the partition holds the log's first %d events", n)
	}
	require.GreaterOrEqual(t, log[n].Position.TxKey(), parts[0].ToTxKey)
	left, err := b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Equal(t, parts[1:], left)

	// The log lost its first n events and nothing else; the key base
	// records the last as removed.
	after := b.reads(t, ids, len(log)-int(n))
	require.Equal(t, log[n:], after.log)
	var removedTx uint64
	var removedPos int64
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT removed_transaction_id::text::bigint, removed_global_position FROM es_parts.transaction_key_base").
		Scan(&removedTx, &removedPos))
	require.Equal(t, log[n-1].Position, es.NewPosition(removedTx, removedPos))
	// Each stream reads from its first event after the partition, and
	// loads as truncated (no snapshot stands in for what left).
	for _, id := range ids {
		stream := before.streams[id]
		var kept []es.Event
		for _, e := range stream {
			if e.Position.TxKey() >= parts[0].ToTxKey {
				kept = append(kept, e)
			}
		}
		require.Less(t, len(kept), len(stream), "stream %s began in the partition", id)
		require.Equal(t, kept, after.streams[id], "stream %s", id)
		require.ErrorIs(t, after.errs[id], es.ErrStreamTruncated, "loading %s", id)
	}
	// The detached table stays, the owner's alone.
	var grants int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_class AS c, aclexplode(c.relacl) AS a
		WHERE c.oid = ('es_parts.' || $1)::regclass AND a.grantee <> c.relowner`, parts[0].Name).Scan(&grants))
	require.Zero(t, grants)

	// New events sort after every old one; the forced-past subscription
	// resumes from its checkpoint, before the detached events, without an
	// error, and reads what is left.
	res, err := b.store.Append(ctx, "other-1", es.NoStream, []es.NewEvent{{Type: "Other"}})
	require.NoError(t, err)
	require.True(t, log[len(log)-1].Position.Before(res.LastPosition))
	c := newCollector()
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.store.Subscribe(sctx, "lagging", c.handle, nil) }()
	got := c.waitUntil(t, "the events left and the new one", func(e []es.Event) bool { return len(e) >= len(log)-int(n)+1 })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		require.NoError(t, err)
	}
	require.Equal(t, log[n].ID, got[0].ID)
	require.Equal(t, res.LastPosition, got[len(got)-1].Position)
}

// TestArchiveMigrationToPartitions: migration 010 makes the single archive
// table of a schema at version 9, with rows in it, the first partition;
// down makes it one table again; reads never change.
func TestArchiveMigrationToPartitions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newPartitionBundle(t, "es_partmig", 9)
	ids := []string{"m0", "m1", "m2"}
	log := b.fill(t, ids, 6) // 21 events
	require.Equal(t, int64(12), b.archive(t, log[12].Position, nil))
	before := b.reads(t, ids, len(log))
	relkind := func() string {
		var k string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT relkind::text FROM pg_class WHERE oid = 'es_partmig.events_archive'::regclass").Scan(&k))
		return k
	}
	require.Equal(t, "r", relkind())
	parts, err := b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Empty(t, parts, "one table: no partitions")

	migrate := func(dir pgstore.MigrateDirection, to int32) {
		t.Helper()
		_, err := pgstore.Migrate(ctx, b.pool, &pgstore.MigrateOpts{Schema: b.schema, Direction: dir, TargetVersion: to})
		require.NoError(t, err)
	}
	migrate(pgstore.MigrateUp, 10)
	require.Equal(t, "p", relkind())
	parts, err = b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Len(t, parts, 1)
	require.Equal(t, log[0].Position.TxKey(), parts[0].FromTxKey)
	require.Equal(t, log[11].Position.TxKey()+1, parts[0].ToTxKey)
	require.Equal(t, before, b.reads(t, ids, len(log)))
	// Archiving goes on into new partitions, which the down migration
	// folds back into one table.
	require.Equal(t, int64(4), b.archive(t, log[16].Position, &es.ArchiveOpts{PartitionSize: 2}))
	parts, err = b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Greater(t, len(parts), 1)
	requireContiguous(t, parts)
	require.Equal(t, before, b.reads(t, ids, len(log)))

	migrate(pgstore.MigrateDown, 9)
	require.Equal(t, "r", relkind())
	require.Equal(t, before, b.reads(t, ids, len(log)))
	var archived int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM es_partmig.events_archive").Scan(&archived))
	require.Equal(t, 16, archived)
	var uniques int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_index WHERE indrelid = 'es_partmig.events_archive'::regclass AND indisunique`).Scan(&uniques))
	require.Equal(t, 3, uniques, "the primary key, (stream_id, version), event_id")
	require.Equal(t, int64(4), b.archive(t, log[20].Position, nil), "the single table takes archive steps again")

	migrate(pgstore.MigrateUp, 10)
	require.Equal(t, before, b.reads(t, ids, len(log)))
}

// TestArchivePartitionsRace: appends, archive steps and detaches of the
// oldest partition run at once; none fails (no deadlock), and what stays
// is a log in order whose streams read without gaps from their truncation
// point to their version.
func TestArchivePartitionsRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newPartitionBundle(t, "es_partrace", 0)
	const writers, appends = 4, 60
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, writers+1)
	for w := range writers {
		go func() {
			id := "race-" + strconv.Itoa(w)
			for range appends {
				if _, err := b.store.Append(ctx, id, es.Any, []es.NewEvent{{Type: "E"}, {Type: "E"}}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	detached := 0
	go func() {
		for wctx.Err() == nil {
			end := es.NewPosition(math.MaxUint64>>1, math.MaxInt64) // all but the log's last event
			if _, err := b.store.ArchiveEvents(ctx, end, &es.ArchiveOpts{BatchSize: 5, PartitionSize: 8}); err != nil {
				errs <- err
				return
			}
			parts, err := b.store.ArchivePartitions(ctx)
			if err != nil {
				errs <- err
				return
			}
			if len(parts) == 0 {
				continue
			}
			_, err = b.store.DetachArchivePartition(ctx, parts[0].Name, &pgstore.DetachOpts{Force: true})
			switch {
			case errors.Is(err, es.ErrPartitionInUse): // incomplete: its range reaches the horizon
			case err != nil:
				errs <- err
				return
			default:
				detached++
			}
		}
		errs <- nil
	}()
	for range writers {
		require.NoError(t, <-errs)
	}
	stop()
	require.NoError(t, <-errs)
	t.Logf("%d partitions detached", detached)

	// What stays: each stream from its first remaining version to its
	// version, without gaps; the log in order.
	var last es.Position
	for e, err := range b.store.ReadAll(ctx, nil) {
		require.NoError(t, err)
		require.True(t, last.Before(e.Position), "%s after %s", e.Position, last)
		last = e.Position
	}
	for w := range writers {
		id := "race-" + strconv.Itoa(w)
		info, err := b.store.StreamInfo(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(2*appends), info.Version)
		var versions []int64
		for e, err := range b.store.ReadStream(ctx, id, nil) {
			require.NoError(t, err)
			versions = append(versions, e.Version)
		}
		for i := 1; i < len(versions); i++ {
			require.Equal(t, versions[i-1]+1, versions[i], "stream %s", id)
		}
		if len(versions) > 0 {
			require.Equal(t, info.Version, versions[len(versions)-1])
		}
	}
}

// TestArchiveDetachedThenUninstalled: a detached partition the operator
// has not dropped yet does not stop migrating down to 0 (its triggers call
// a function the uninstall drops); the table stays, with its rows.
func TestArchiveDetachedThenUninstalled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newPartitionBundle(t, "es_partuninstall", 0)
	log := b.fill(t, []string{"a", "b"}, 6)
	b.archive(t, log[len(log)-2].Position, &es.ArchiveOpts{PartitionSize: 4})
	parts, err := b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Greater(t, len(parts), 1)
	_, err = b.store.DetachArchivePartition(ctx, parts[0].Name, &pgstore.DetachOpts{Force: true})
	require.NoError(t, err)

	_, err = pgstore.Migrate(ctx, b.pool, &pgstore.MigrateOpts{Schema: b.schema, Direction: pgstore.MigrateDown, TargetVersion: 0})
	require.NoError(t, err, "migrating down to 0 with a detached partition left")
	var rows int
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT count(*) FROM "+b.schema+"."+parts[0].Name).Scan(&rows))
	require.Positive(t, rows, "the detached table keeps its rows")
}

// TestArchiveDetachedTableIsTheOwners: a partition given a privilege by
// the owner's default privileges when it was created keeps none once
// detached: the table is the owner's alone.
func TestArchiveDetachedTableIsTheOwners(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := newPartitionBundle(t, "es_partowner", 0)
	role := "es_partowner_auditor"
	_, err := b.pool.Exec(ctx, "DROP ROLE IF EXISTS "+role)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = b.pool.Exec(context.Background(), "DROP OWNED BY "+role)
		_, _ = b.pool.Exec(context.Background(), "DROP ROLE "+role)
	})
	_, err = b.pool.Exec(ctx, "ALTER DEFAULT PRIVILEGES IN SCHEMA "+b.schema+" GRANT SELECT ON TABLES TO "+role)
	require.NoError(t, err)
	log := b.fill(t, []string{"a", "b"}, 6)
	b.archive(t, log[len(log)-2].Position, &es.ArchiveOpts{PartitionSize: 4})
	parts, err := b.store.ArchivePartitions(ctx)
	require.NoError(t, err)
	require.Greater(t, len(parts), 1)
	table := b.schema + "." + parts[0].Name
	var granted bool
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT has_table_privilege($1, $2, 'SELECT')", role, table).Scan(&granted))
	require.True(t, granted, "the default privilege applies to the new partition (else this test proves nothing)")
	_, err = b.store.DetachArchivePartition(ctx, parts[0].Name, &pgstore.DetachOpts{Force: true})
	require.NoError(t, err)
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT has_table_privilege($1, $2, 'SELECT')", role, table).Scan(&granted))
	require.False(t, granted, "a detached table keeps no grant")
}
