package es

// The repository's snapshots: loading an aggregate from its stream's
// snapshot and the events after it, and storing one with a save when the
// policy says so (see [Repository] and [Snapshotter]).

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/pgevent/es/internal/codec"
	"github.com/pgevent/es/internal/sqlcheck"
)

// loadFromSnapshot rebuilds agg from the stream's snapshot of sn's schema
// version, if any, and the events after it, read in one round trip. It
// returns restored=false and no error when the stream has such a snapshot
// but it could not be restored: agg is then spoiled (a restore may have
// half-happened) and the caller replays the whole stream into a fresh
// aggregate.
func (r *Repository[A]) loadFromSnapshot(ctx context.Context, agg A, sn Snapshotter, streamID string) (restored bool, err error) {
	schema := sn.SnapshotSchemaVersion()
	if !sqlcheck.Int32(schema) {
		return false, fmt.Errorf("%w: %T.SnapshotSchemaVersion: %d does not fit in 32 bits", ErrInvalidArgument, agg, schema)
	}
	b, err := baseOf(agg)
	if err != nil {
		return false, err
	}
	failed := false
	events := func(yield func(any, error) bool) {
		var want int64
		first := true
		for item, err := range r.snapshots.Load(ctx, streamID, schema) {
			if err != nil {
				yield(nil, err)
				return
			}
			if s := item.Snapshot; s != nil {
				if !first {
					yield(nil, fmt.Errorf("store returned a snapshot after the first item"))
					return
				}
				first = false
				if err := restoreSnapshot(sn, s); err != nil {
					r.snapshotFailed(&SnapshotError{StreamID: streamID, Version: s.Version, Op: "restore", Err: err})
					failed = true
					return
				}
				b.stored, want = s.Version, s.Version
				b.snapshotVersion, b.snapshotAt = s.Version, s.CreatedAt
				continue
			}
			event, err := r.decodeNext(item.Event, &want, first || want == b.snapshotVersion)
			first = false
			if !yield(event, err) || err != nil {
				return
			}
		}
	}
	err = RehydrateSeq(agg, events)
	if failed {
		return false, nil
	}
	return true, err
}

// restoreSnapshot opens the sealed state of s and hands it to sn.
func restoreSnapshot(sn Snapshotter, s *Snapshot) error {
	state, err := codec.Open(s.Version, s.State)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return sn.UnmarshalSnapshot(state)
}

// snapshotFailed reports a snapshot the repository could not use.
func (r *Repository[A]) snapshotFailed(err *SnapshotError) {
	if r.onSnapshotError != nil {
		r.onSnapshotError(err)
	}
}

// dueSnapshot asks the policy whether a snapshot is due with the save of
// agg's pending events and, if so, returns the state after them, sealed.
// A state that cannot be encoded is reported and skipped: the save goes on
// without a snapshot.
func (r *Repository[A]) dueSnapshot(agg A, b *AggregateBase, streamID string) (NewSnapshot, bool) {
	sn, ok := any(agg).(Snapshotter)
	if !ok || r.snapshotPolicy == nil {
		return NewSnapshot{}, false
	}
	c := SnapshotCandidate{
		StreamID:            streamID,
		Version:             agg.Version(),
		PreviousVersion:     agg.StoredVersion(),
		LastSnapshotVersion: b.snapshotVersion,
		LastSnapshotAt:      b.snapshotAt,
		SinceSnapshot:       math.MaxInt64,
	}
	c.EventsSinceSnapshot = c.Version - c.LastSnapshotVersion
	if !c.LastSnapshotAt.IsZero() {
		c.SinceSnapshot = time.Since(c.LastSnapshotAt)
	}
	if !r.snapshotPolicy.SnapshotDue(c) {
		return NewSnapshot{}, false
	}
	fail := func(err error) (NewSnapshot, bool) {
		r.snapshotFailed(&SnapshotError{StreamID: streamID, Version: c.Version, Op: "marshal", Err: err})
		return NewSnapshot{}, false
	}
	schema := sn.SnapshotSchemaVersion()
	if !sqlcheck.Int32(schema) {
		return fail(fmt.Errorf("%w: %T.SnapshotSchemaVersion: %d does not fit in 32 bits", ErrInvalidArgument, agg, schema))
	}
	state, err := sn.MarshalSnapshot()
	if err != nil {
		return fail(err)
	}
	return NewSnapshot{SchemaVersion: schema, State: codec.Seal(c.Version, state)}, true
}
