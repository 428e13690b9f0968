package memstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.StreamLifecycle = (*Store)(nil)

// deletedError is the error of an operation on the deleted stream st.
func (st *stream) deletedError(streamID string) error {
	return &es.StreamDeletedError{StreamID: streamID, Tombstoned: st.tombstoned}
}

// visibleFrom is the first version the reads by stream return, as SQL
// stream_visible_from: the truncation point, or none (MaxInt64) for a
// deleted stream.
func (st *stream) visibleFrom() int64 {
	if st.deleted {
		return math.MaxInt64
	}
	return max(st.truncateBefore, 1)
}

// lockedStream returns the stream after checking expected as SQL
// lock_stream does (a deleted stream counts as not existing); nil when it
// does not exist. s.mu must be held for writing.
func (s *Store) lockedStream(streamID string, expected es.ExpectedVersion) (*stream, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return nil, err
	}
	if !expected.Valid() {
		return nil, fmt.Errorf("%w: expected version must be any, -1, 0 or a positive version", es.ErrInvalidArgument)
	}
	st := s.streams[streamID]
	var actual int64
	if st != nil && !st.deleted {
		actual = int64(len(st.events))
	}
	if !expected.Matches(actual) {
		return nil, &es.VersionConflictError{StreamID: streamID, Expected: expected, Actual: actual}
	}
	return st, nil
}

// DeleteStream implements [es.StreamLifecycle.DeleteStream].
func (s *Store) DeleteStream(ctx context.Context, streamID string, expected es.ExpectedVersion) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: deleting %q: %w", streamID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lockedStream(streamID, expected)
	switch {
	case err != nil:
		return 0, fmt.Errorf("memstore: deleting %q: %w", streamID, err)
	case st == nil:
		return 0, fmt.Errorf("memstore: deleting %q: %w", streamID, es.ErrNotFound)
	case st.tombstoned:
		return 0, fmt.Errorf("memstore: deleting %q: %w", streamID, st.deletedError(streamID))
	}
	st.deleted = true
	return int64(len(st.events)), nil
}

// RestoreStream implements [es.StreamLifecycle.RestoreStream].
func (s *Store) RestoreStream(ctx context.Context, streamID string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: restoring %q: %w", streamID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lockedStream(streamID, es.Any)
	switch {
	case err != nil:
		return 0, fmt.Errorf("memstore: restoring %q: %w", streamID, err)
	case st == nil:
		return 0, fmt.Errorf("memstore: restoring %q: %w", streamID, es.ErrNotFound)
	case st.tombstoned:
		return 0, fmt.Errorf("memstore: restoring %q: %w", streamID, st.deletedError(streamID))
	}
	st.deleted = false
	return int64(len(st.events)), nil
}

// TombstoneStream implements [es.StreamLifecycle.TombstoneStream].
func (s *Store) TombstoneStream(ctx context.Context, streamID string, expected es.ExpectedVersion) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: tombstoning %q: %w", streamID, err)
	}
	s.mu.Lock()
	st, err := s.lockedStream(streamID, expected)
	switch {
	case err != nil:
		s.mu.Unlock()
		return 0, fmt.Errorf("memstore: tombstoning %q: %w", streamID, err)
	case st == nil:
		now := s.now().Truncate(time.Microsecond)
		s.streams[streamID] = &stream{createdAt: now, updatedAt: now, deleted: true, tombstoned: true}
		s.mu.Unlock()
		return 0, nil
	case st.tombstoned:
		s.mu.Unlock()
		return 0, nil
	}
	end := int64(len(st.events)) + 1
	removed := s.removeLocked(map[string]int64{streamID: end})
	delete(s.snapshots, streamID)
	st = s.streams[streamID] // removeLocked replaced it
	st.deleted, st.tombstoned = true, true
	st.truncateBefore, st.removedBefore = end, end
	s.mu.Unlock()
	s.resolveRemovedParked(removed)
	return int64(len(removed)), nil
}

// TruncateStream implements [es.StreamLifecycle.TruncateStream].
func (s *Store) TruncateStream(ctx context.Context, streamID string, before int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: truncating %q: %w", streamID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lockedStream(streamID, es.Any)
	switch {
	case err != nil:
		return 0, fmt.Errorf("memstore: truncating %q: %w", streamID, err)
	case st == nil:
		return 0, fmt.Errorf("memstore: truncating %q: %w", streamID, es.ErrNotFound)
	case st.deleted:
		return 0, fmt.Errorf("memstore: truncating %q: %w", streamID, st.deletedError(streamID))
	}
	if err := storekit.ValidateTruncation(streamID, before, int64(len(st.events))); err != nil {
		return 0, err
	}
	st.truncateBefore = max(st.truncateBefore, before, 1)
	return st.truncateBefore, nil
}

// SetRetention implements [es.StreamLifecycle.SetRetention].
func (s *Store) SetRetention(ctx context.Context, policy es.RetentionPolicy) error {
	if err := storekit.ValidateRetentionPolicy(policy); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: setting retention: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retention == nil {
		s.retention = make(map[es.RetentionPolicy]es.RetentionPolicy)
	}
	key := es.RetentionPolicy{StreamID: policy.StreamID, Category: policy.Category}
	if policy.MaxCount == 0 && policy.MaxAge == 0 {
		delete(s.retention, key)
	} else {
		s.retention[key] = policy
	}
	return nil
}

// ApplyRetention implements [es.StreamLifecycle.ApplyRetention]: one step
// does all there is to do (memstore has no transaction to keep short).
func (s *Store) ApplyRetention(ctx context.Context, opts *es.ApplyRetentionOpts) (es.RetentionResult, error) {
	if _, err := storekit.RetentionOptions(opts); err != nil {
		return es.RetentionResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return es.RetentionResult{}, fmt.Errorf("memstore: applying retention: %w", err)
	}
	truncated, removed := s.retentionStep()
	s.resolveRemovedParked(removed)
	return es.RetentionResult{StreamsTruncated: truncated, EventsRemoved: int64(len(removed)), Steps: 1}, nil
}

// retentionStep moves the truncation points the policies say (as SQL
// apply_retention), then removes every event below them, and returns the
// positions of the events it removed.
func (s *Store) retentionStep() (truncated int64, removed map[es.Position]bool) {
	now := s.now().Truncate(time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.streams {
		if st.deleted {
			continue
		}
		p, ok := s.retention[es.RetentionPolicy{StreamID: id}]
		if !ok {
			if p, ok = s.retention[es.RetentionPolicy{Category: es.Category(id)}]; !ok {
				continue
			}
		}
		version := int64(len(st.events))
		point := int64(0)
		if p.MaxCount > 0 {
			point = version - p.MaxCount + 1
		}
		if p.MaxAge > 0 {
			young := version + 1
			for v := max(st.truncateBefore, 1); v <= version; v++ {
				if i := st.events[v-1]; i >= 0 && !s.log[i].RecordedAt.Before(now.Add(-p.MaxAge)) {
					young = v
					break
				}
			}
			point = max(point, young)
		}
		if point > max(st.truncateBefore, 1) {
			st.truncateBefore = min(point, version+1)
			truncated++
		}
	}
	pending := map[string]int64{}
	for id, st := range s.streams {
		if max(st.removedBefore, 1) < max(st.truncateBefore, 1) {
			pending[id] = st.truncateBefore
		}
	}
	if len(pending) == 0 {
		return truncated, nil
	}
	removed = s.removeLocked(pending)
	for id, before := range pending {
		s.streams[id].removedBefore = before
	}
	return truncated, removed
}

// removeLocked removes the events of each stream of below with versions
// below its value, and returns their positions. Readers may hold the log
// and the streams' index slices (they read them without the lock): it
// builds new ones rather than change them. s.mu must be held for writing.
func (s *Store) removeLocked(below map[string]int64) map[es.Position]bool {
	removed := map[es.Position]bool{}
	log := make([]es.Event, 0, len(s.log))
	ids := make(map[uuid.UUID]int, len(s.ids))
	streams := make(map[string]*stream, len(s.streams))
	for id, st := range s.streams {
		c := *st
		c.events = make([]int, len(st.events))
		streams[id] = &c
	}
	for _, e := range s.log {
		st := streams[e.StreamID]
		if v, ok := below[e.StreamID]; ok && e.Version < v {
			st.events[e.Version-1] = -1
			removed[e.Position] = true
			if s.removedEnd.Before(e.Position) {
				s.removedEnd = e.Position
			}
			continue
		}
		st.events[e.Version-1] = len(log)
		ids[e.ID] = len(log)
		log = append(log, e)
	}
	// Versions removed earlier stay removed.
	for id, st := range s.streams {
		for v, i := range st.events {
			if i < 0 {
				streams[id].events[v] = -1
			}
		}
	}
	s.log, s.ids, s.streams = log, ids, streams
	return removed
}

// ArchiveEvents implements [es.StreamLifecycle.ArchiveEvents]. memstore
// has no cold storage: it records how far the log is archived and counts
// the events SQL archive_events would move (before `before`, after what is
// archived already, never the log's last event); readers see no change,
// as with PostgreSQL.
func (s *Store) ArchiveEvents(ctx context.Context, before es.Position, opts *es.ArchiveOpts) (int64, error) {
	if _, err := storekit.ArchiveOptions(opts); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memstore: archiving events: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var moved int64
	for i, e := range s.log {
		if i == len(s.log)-1 || !e.Position.Before(before) {
			break
		}
		if s.archivedEnd.Before(e.Position) {
			moved++
			s.archivedEnd = e.Position
		}
	}
	return moved, nil
}

// resolveRemovedParked resolves the subscriptions' parked events whose
// event was removed (as SQL remove_events: resolution 'removed'): it can
// be neither retried nor read.
func (s *Store) resolveRemovedParked(removed map[es.Position]bool) {
	if len(removed) == 0 {
		return
	}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, list := range s.parked {
		for _, p := range list {
			if removed[p.Event.Position] {
				p.resolved = true
			}
		}
	}
}
