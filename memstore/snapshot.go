package memstore

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.SnapshotStore = (*Store)(nil)

// SaveSnapshot implements [es.SnapshotStore.SaveSnapshot].
func (s *Store) SaveSnapshot(ctx context.Context, snapshot es.Snapshot) (bool, error) {
	if err := storekit.ValidateSnapshot(snapshot); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memstore: saving snapshot of %q: %w", snapshot.StreamID, err)
	}
	now := s.now().Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	var version int64
	if st := s.streams[snapshot.StreamID]; st != nil {
		if st.deleted {
			return false, fmt.Errorf("memstore: saving snapshot of %q: %w", snapshot.StreamID, st.deletedError(snapshot.StreamID))
		}
		version = int64(len(st.events))
	}
	if snapshot.Version > version {
		return false, fmt.Errorf("memstore: saving snapshot of %q at version %d: %w (stream version %d)",
			snapshot.StreamID, snapshot.Version, es.ErrSnapshotBeyondStream, version)
	}
	return s.putSnapshotLocked(snapshot.StreamID, snapshot.Version,
		&es.NewSnapshot{SchemaVersion: snapshot.SchemaVersion, State: snapshot.State}, now), nil
}

// AppendWithSnapshot implements [es.SnapshotStore.AppendWithSnapshot]: the
// events and the snapshot are stored under one lock, as one transaction.
func (s *Store) AppendWithSnapshot(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent, snapshot es.NewSnapshot) (es.AppendResult, error) {
	if err := storekit.ValidateNewSnapshot(snapshot); err != nil {
		return es.AppendResult{}, err
	}
	return s.append(ctx, streamID, expected, events, &snapshot)
}

// putSnapshotLocked stores snapshot at version as the stream's snapshot
// unless the stream has a newer one (a higher version, or the same version
// with the same or a higher schema version), as the SQL functions do, and
// reports whether it did. s.mu must be held for writing.
func (s *Store) putSnapshotLocked(streamID string, version int64, snapshot *es.NewSnapshot, now time.Time) bool {
	if old, ok := s.snapshots[streamID]; ok &&
		(old.Version > version || (old.Version == version && old.SchemaVersion >= snapshot.SchemaVersion)) {
		return false
	}
	state := bytes.Clone(snapshot.State)
	if state == nil {
		state = []byte{}
	}
	s.snapshots[streamID] = es.Snapshot{
		StreamID:      streamID,
		Version:       version,
		SchemaVersion: snapshot.SchemaVersion,
		State:         state,
		CreatedAt:     now,
	}
	return true
}

// ReadSnapshot implements [es.SnapshotStore.ReadSnapshot].
func (s *Store) ReadSnapshot(ctx context.Context, streamID string) (es.Snapshot, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return es.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return es.Snapshot{}, fmt.Errorf("memstore: reading snapshot of %q: %w", streamID, err)
	}
	s.mu.RLock()
	snap, ok := s.snapshots[streamID]
	s.mu.RUnlock()
	if !ok {
		return es.Snapshot{}, fmt.Errorf("memstore: snapshot of %q: %w", streamID, es.ErrNotFound)
	}
	snap.State = bytes.Clone(snap.State)
	return snap, nil
}

// Load implements [es.SnapshotStore.Load]. The snapshot and the events are
// those stored when the iteration starts, taken under one lock; the lock
// is not held while they are yielded.
func (s *Store) Load(ctx context.Context, streamID string, schemaVersion int) iter.Seq2[es.Loaded, error] {
	return func(yield func(es.Loaded, error) bool) {
		if err := storekit.ValidateStreamID(streamID); err != nil {
			yield(es.Loaded{}, err)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(es.Loaded{}, fmt.Errorf("memstore: loading %q: %w", streamID, err))
			return
		}
		s.mu.RLock()
		log := s.log
		var events []int
		first := int64(math.MaxInt64)
		if st := s.streams[streamID]; st != nil {
			events, first = st.events, st.visibleFrom()
		}
		snap, ok := s.snapshots[streamID]
		s.mu.RUnlock()

		if first == math.MaxInt64 { // none, or deleted
			return
		}
		from := first
		if ok && snap.SchemaVersion == schemaVersion {
			snap.State = bytes.Clone(snap.State)
			if !yield(es.Loaded{Snapshot: &snap}, nil) {
				return
			}
			from = max(snap.Version+1, first)
		}
		for v := from; v <= int64(len(events)); v++ {
			if err := ctx.Err(); err != nil {
				yield(es.Loaded{}, fmt.Errorf("memstore: loading %q: %w", streamID, err))
				return
			}
			if !yield(es.Loaded{Event: clone(log[events[v-1]])}, nil) {
				return
			}
		}
	}
}
