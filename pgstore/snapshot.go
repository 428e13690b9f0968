package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.SnapshotStore = (*Store)(nil)

// SaveSnapshot stores a snapshot with the SQL function save_snapshot; see
// [es.SnapshotStore.SaveSnapshot].
func (s *Store) SaveSnapshot(ctx context.Context, snapshot es.Snapshot) (bool, error) {
	if err := storekit.ValidateSnapshot(snapshot); err != nil {
		return false, err
	}
	var stored bool
	err := s.db.QueryRow(ctx, s.sql.saveSnapshot, snapshot.StreamID, snapshot.Version,
		int32(snapshot.SchemaVersion), nonNil(snapshot.State)).Scan(&stored)
	if err != nil {
		return false, fmt.Errorf("pgstore: saving snapshot of %q at version %d: %w", snapshot.StreamID, snapshot.Version, interpretError(err))
	}
	return stored, nil
}

// AppendWithSnapshot appends events and stores snapshot in one call of the
// SQL function append (its form with snapshot arguments), in one transaction (or in
// the bound one, see [Store.WithTx]); see
// [es.SnapshotStore.AppendWithSnapshot].
func (s *Store) AppendWithSnapshot(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent, snapshot es.NewSnapshot) (es.AppendResult, error) {
	args, err := appendSnapshotArgs(streamID, expected, events, snapshot)
	if err != nil {
		return es.AppendResult{}, err
	}
	return s.runAppend(ctx, streamID, s.sql.appendWithSnapshot, args)
}

// appendSnapshotArgs returns the arguments of the append with a snapshot:
// the snapshot's two come before the schema versions.
func appendSnapshotArgs(streamID string, expected es.ExpectedVersion, events []es.NewEvent, snapshot es.NewSnapshot) ([]any, error) {
	if err := storekit.ValidateNewSnapshot(snapshot); err != nil {
		return nil, err
	}
	args, err := appendArgs(streamID, expected, events)
	if err != nil {
		return nil, err
	}
	versions := args[len(args)-1]
	return append(args[:len(args)-1], int32(snapshot.SchemaVersion), nonNil(snapshot.State), versions), nil
}

// nonNil returns b, or an empty slice for nil (which pgx would send as
// NULL): a nil state is stored as an empty one, as memstore does.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ReadSnapshot returns the stream's stored snapshot, read from the
// snapshots table; see [es.SnapshotStore.ReadSnapshot].
func (s *Store) ReadSnapshot(ctx context.Context, streamID string) (es.Snapshot, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return es.Snapshot{}, err
	}
	snap := es.Snapshot{StreamID: streamID}
	var schema int32
	err := s.db.QueryRow(ctx, s.sql.readSnapshot, streamID).Scan(&snap.Version, &schema, &snap.State, &snap.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return es.Snapshot{}, fmt.Errorf("pgstore: snapshot of %q: %w", streamID, es.ErrNotFound)
	}
	if err != nil {
		return es.Snapshot{}, fmt.Errorf("pgstore: reading snapshot of %q: %w", streamID, interpretError(err))
	}
	snap.SchemaVersion = int(schema)
	return snap, nil
}

// Load reads the stream's snapshot of schemaVersion and the events after it
// with the SQL function load; see [es.SnapshotStore.Load]. The first query
// returns the snapshot and up to ReadBatchSize events after it, so an
// aggregate whose tail fits in a page costs one round trip; a longer tail
// (a full replay without a snapshot) continues page by page, as
// [Store.ReadStream] does, streaming rows as the caller iterates.
func (s *Store) Load(ctx context.Context, streamID string, schemaVersion int) iter.Seq2[es.Loaded, error] {
	return func(yield func(es.Loaded, error) bool) {
		if err := storekit.ValidateStreamID(streamID); err != nil {
			yield(es.Loaded{}, err)
			return
		}
		db, err := s.reader(ctx)
		if err != nil {
			yield(es.Loaded{}, fmt.Errorf("pgstore: loading %q: %w", streamID, err))
			return
		}
		if schemaVersion < math.MinInt32 || schemaVersion > math.MaxInt32 {
			// No snapshot can have it: every event.
			s.readStream(ctx, db, streamID, es.ReadStreamOpts{}, func(e es.Event, err error) bool {
				return yield(es.Loaded{Event: e}, err)
			})
			return
		}
		fetch := s.config.ReadBatchSize + 1
		n, last, ok := s.loadFirstPage(ctx, db, streamID, int32(schemaVersion), fetch, yield)
		if !ok || n < fetch {
			return // stopped, failed, or reached the end of the stream
		}
		// The rest on the same copy as the first page.
		s.readStream(ctx, db, streamID, es.ReadStreamOpts{From: last + 1}, func(e es.Event, err error) bool {
			return yield(es.Loaded{Event: e}, err)
		})
	}
}

// loadFirstPage runs load(streamID, schemaVersion) LIMIT limit, yielding
// each row. It returns the rows read (the snapshot's included), the last
// event version read (or the snapshot's), and false when iteration must
// stop.
func (s *Store) loadFirstPage(ctx context.Context, db querier, streamID string, schemaVersion int32, limit int,
	yield func(es.Loaded, error) bool) (int, int64, bool) {
	fail := func(err error) {
		yield(es.Loaded{}, fmt.Errorf("pgstore: loading %q: %w", streamID, interpretError(err)))
	}
	rows, err := db.Query(ctx, s.sql.load, streamID, schemaVersion, limit)
	if err != nil {
		fail(err)
		return 0, 0, false
	}
	defer rows.Close()
	sc := newEventScanner(false)
	sc.e.StreamID = streamID
	sc.dest = append(sc.dest, nil, nil) // snapshot_schema_version, snapshot_state: NULL on event rows
	n, last := 0, int64(0)
	for rows.Next() {
		if n == 0 && rows.RawValues()[len(sc.dest)-1] != nil { // snapshot_state: the snapshot row
			snap := es.Snapshot{StreamID: streamID}
			var schema int32
			if err := rows.Scan(nil, nil, &snap.Version, nil, nil, nil, nil, &snap.CreatedAt, nil, &schema, &snap.State); err != nil {
				fail(err)
				return n, last, false
			}
			snap.SchemaVersion = int(schema)
			n, last = n+1, snap.Version
			if !yield(es.Loaded{Snapshot: &snap}, nil) {
				return n, last, false
			}
			continue
		}
		e, err := sc.scan(rows)
		if err != nil {
			fail(err)
			return n, last, false
		}
		n, last = n+1, e.Version
		if !yield(es.Loaded{Event: e}, nil) {
			return n, last, false
		}
	}
	if err := rows.Err(); err != nil {
		fail(err)
		return n, last, false
	}
	return n, last, true
}
