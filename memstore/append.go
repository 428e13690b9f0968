package memstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// Append implements [es.Store.Append]; see the package documentation for
// the order of the checks.
func (s *Store) Append(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent) (es.AppendResult, error) {
	return s.append(ctx, streamID, expected, events, nil)
}

// append is Append, storing snapshot (when not nil) at the stream's new
// version under the same lock.
func (s *Store) append(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent, snapshot *es.NewSnapshot) (es.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return es.AppendResult{}, fmt.Errorf("memstore: appending to %q: %w", streamID, err)
	}
	batch, err := storekit.PrepareAppend(streamID, expected, events)
	if err != nil {
		return es.AppendResult{}, err
	}
	// The store keeps its own copies: the caller may reuse its slices.
	for i := range batch {
		batch[i].Data = bytes.Clone(batch[i].Data)
		batch[i].Metadata = bytes.Clone(batch[i].Metadata)
	}
	now := s.now().Truncate(time.Microsecond) // as PostgreSQL stores it; drops the monotonic reading

	s.mu.Lock()
	defer s.mu.Unlock()

	if st := s.streams[streamID]; st != nil && st.deleted {
		return es.AppendResult{}, fmt.Errorf("memstore: appending to %q: %w", streamID, st.deletedError(streamID))
	}
	if res, retried, err := s.retryLocked(streamID, expected, batch); err != nil || retried {
		if err == nil && snapshot != nil {
			s.putSnapshotLocked(streamID, res.StreamVersion, snapshot, now)
		}
		return res, err
	}

	st := s.streams[streamID]
	var actual int64
	if st != nil {
		actual = int64(len(st.events))
	}
	if !expected.Matches(actual) {
		return es.AppendResult{}, &es.VersionConflictError{StreamID: streamID, Expected: expected, Actual: actual}
	}
	if st == nil {
		st = &stream{createdAt: now}
		s.streams[streamID] = st
	}

	// Like PostgreSQL's greatest(own transaction id, stream's previous
	// key): with one counter the first term always wins, but keep the rule
	// visible.
	s.lastTxKey++
	txKey := max(s.lastTxKey, st.txKey)
	res := es.AppendResult{StreamID: streamID, FirstVersion: actual + 1}
	for _, e := range batch {
		s.lastGlobal++
		actual++
		ev := es.Event{
			ID:            e.ID,
			StreamID:      streamID,
			Version:       actual,
			Position:      es.NewPosition(txKey, s.lastGlobal),
			Type:          e.Type,
			SchemaVersion: e.SchemaVersion,
			Data:          e.Data,
			Metadata:      e.Metadata,
			RecordedAt:    now,
		}
		s.ids[e.ID] = len(s.log)
		st.events = append(st.events, len(s.log))
		s.log = append(s.log, ev)
		if res.FirstPosition.IsZero() {
			res.FirstPosition = ev.Position
		}
		res.LastPosition = ev.Position
	}
	res.StreamVersion = actual
	st.txKey = txKey
	st.updatedAt = now
	if snapshot != nil {
		s.putSnapshotLocked(streamID, actual, snapshot, now)
	}
	s.signalAppendedLocked()
	return res, nil
}

// retryLocked decides whether batch repeats events already stored. It
// returns retried=false and no error when none of the batch's ids is stored;
// the result of the stored run and retried=true when the batch is an exact
// retry; an error wrapping [es.ErrDuplicateEvent] otherwise. s.mu must be
// held.
func (s *Store) retryLocked(streamID string, expected es.ExpectedVersion, batch []es.NewEvent) (res es.AppendResult, retried bool, err error) {
	var first, stored int
	for i, e := range batch {
		if _, ok := s.ids[e.ID]; ok {
			if stored == 0 {
				first = i
			}
			stored++
		}
	}
	switch {
	case stored == 0:
		return es.AppendResult{}, false, nil
	case stored < len(batch):
		e := s.log[s.ids[batch[first].ID]]
		return es.AppendResult{}, false, fmt.Errorf("memstore: appending to %q: %w: event id %s is already stored in stream %q, but not every event of the batch is",
			streamID, es.ErrDuplicateEvent, e.ID, e.StreamID)
	}

	start := s.log[s.ids[batch[0].ID]]
	dup := func(why string) error {
		return fmt.Errorf("memstore: appending to %q: %w: event id %s is already stored in stream %q at version %d, %s",
			streamID, es.ErrDuplicateEvent, start.ID, start.StreamID, start.Version, why)
	}
	if start.StreamID != streamID {
		return es.AppendResult{}, false, dup("another stream")
	}
	st := s.streams[streamID]
	for i, e := range batch {
		v := start.Version + int64(i)
		if v > int64(len(st.events)) || s.log[st.events[v-1]].ID != e.ID {
			return es.AppendResult{}, false, dup("and the batch's ids are not stored as one run in the batch's order")
		}
	}
	// The retry must be consistent with the stream's version before the
	// run: the version the original append found.
	if !expected.IsAny() && !expected.Matches(start.Version-1) {
		return es.AppendResult{}, false, dup(fmt.Sprintf("inconsistent with expected version %s", expected))
	}
	last := s.log[st.events[start.Version+int64(len(batch))-2]]
	return es.AppendResult{
		StreamID:      streamID,
		FirstVersion:  start.Version,
		StreamVersion: last.Version,
		FirstPosition: start.Position,
		LastPosition:  last.Position,
	}, true, nil
}
