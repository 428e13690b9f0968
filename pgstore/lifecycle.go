package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

var _ es.StreamLifecycle = (*Store)(nil)

// DeleteStream implements [es.StreamLifecycle.DeleteStream] (SQL
// soft_delete_stream; the schema's writer role may call it).
func (s *Store) DeleteStream(ctx context.Context, streamID string, expected es.ExpectedVersion) (int64, error) {
	return s.streamCall(ctx, "deleting", streamID, s.sql.softDeleteStream, streamID, expected.SQL())
}

// RestoreStream implements [es.StreamLifecycle.RestoreStream] (SQL
// restore_stream; the writer role).
func (s *Store) RestoreStream(ctx context.Context, streamID string) (int64, error) {
	return s.streamCall(ctx, "restoring", streamID, s.sql.restoreStream, streamID)
}

// TombstoneStream implements [es.StreamLifecycle.TombstoneStream] (SQL
// tombstone_stream; only the schema's admin role, <schema>_admin, may
// call it). The events are removed in the call's transaction: on a long
// stream, that is one long transaction, which holds the log's horizon
// back for other readers while it runs.
func (s *Store) TombstoneStream(ctx context.Context, streamID string, expected es.ExpectedVersion) (int64, error) {
	return s.streamCall(ctx, "tombstoning", streamID, s.sql.tombstoneStream, streamID, expected.SQL())
}

// TruncateStream implements [es.StreamLifecycle.TruncateStream] (SQL
// truncate_stream; the admin role).
func (s *Store) TruncateStream(ctx context.Context, streamID string, before int64) (int64, error) {
	return s.streamCall(ctx, "truncating", streamID, s.sql.truncateStream, streamID, before)
}

// streamCall runs a lifecycle function of one stream that returns a
// bigint.
func (s *Store) streamCall(ctx context.Context, what, streamID, query string, args ...any) (int64, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return 0, err
	}
	var n int64
	if err := s.db.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: %s %q: %w", what, streamID, interpretError(err))
	}
	return n, nil
}

// SetRetention implements [es.StreamLifecycle.SetRetention] (SQL
// set_stream_retention, set_category_retention; the admin role).
func (s *Store) SetRetention(ctx context.Context, policy es.RetentionPolicy) error {
	if err := storekit.ValidateRetentionPolicy(policy); err != nil {
		return err
	}
	var count *int64
	if policy.MaxCount > 0 {
		count = &policy.MaxCount
	}
	var age *time.Duration
	if policy.MaxAge > 0 {
		age = &policy.MaxAge
	}
	query, name := s.sql.setStreamRetention, policy.StreamID
	if policy.Category != "" {
		query, name = s.sql.setCategoryRetention, policy.Category
	}
	var one int
	if err := s.db.QueryRow(ctx, query, name, count, age).Scan(&one); err != nil {
		return fmt.Errorf("pgstore: setting the retention of %q: %w", name, interpretError(err))
	}
	return nil
}

// ApplyRetention implements [es.StreamLifecycle.ApplyRetention]: it calls
// SQL apply_retention while a step says more is left that it can do
// (streams being appended to are left to a later run), each step a
// transaction of its own (on a store bound to a transaction with WithTx,
// every step runs in that one). The admin role.
func (s *Store) ApplyRetention(ctx context.Context, opts *es.ApplyRetentionOpts) (es.RetentionResult, error) {
	o, err := storekit.RetentionOptions(opts)
	if err != nil {
		return es.RetentionResult{}, err
	}
	var res es.RetentionResult
	for {
		var truncated, removed int64
		var more bool
		if err := s.db.QueryRow(ctx, s.sql.applyRetention, o.BatchSize, o.MaxStreams).Scan(&truncated, &removed, &more); err != nil {
			return res, fmt.Errorf("pgstore: applying retention: %w", interpretError(err))
		}
		res.Steps++
		res.StreamsTruncated += truncated
		res.EventsRemoved += removed
		if !more {
			return res, nil
		}
	}
}

// ArchiveEvents implements [es.StreamLifecycle.ArchiveEvents]: it calls
// SQL archive_events until a step moves less than a batch, each step a transaction
// of its own (on a store bound to a transaction with WithTx, every step
// runs in that one). The admin role.
func (s *Store) ArchiveEvents(ctx context.Context, before es.Position, opts *es.ArchiveOpts) (int64, error) {
	o, err := storekit.ArchiveOptions(opts)
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		var moved int64
		if err := s.db.QueryRow(ctx, s.sql.archiveEvents, before.TxKey(), before.Global(), o.BatchSize).Scan(&moved); err != nil {
			return total, fmt.Errorf("pgstore: archiving events before %s: %w", before, interpretError(err))
		}
		total += moved
		if moved < int64(o.BatchSize) {
			return total, nil
		}
	}
}
