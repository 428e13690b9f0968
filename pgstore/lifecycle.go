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
		if err := s.db.QueryRow(ctx, s.sql.archiveEvents, before.TxKey(), before.Global(), o.BatchSize, o.PartitionSize).Scan(&moved); err != nil {
			return total, fmt.Errorf("pgstore: archiving events before %s: %w", before, interpretError(err))
		}
		total += moved
		if moved < int64(o.BatchSize) {
			return total, nil
		}
	}
}

// ArchivePartition is a partition of the archive (SQL archive_partitions):
// the events of a range of transaction keys, moved there by
// [Store.ArchiveEvents].
type ArchivePartition struct {
	// Name is the table's name in the schema (events_archive_<first key>).
	Name string
	// FromTxKey and ToTxKey bound its range of transaction keys: from
	// FromTxKey, up to but not including ToTxKey.
	FromTxKey, ToTxKey uint64
	// EstimatedEvents is PostgreSQL's estimate of the events it holds,
	// from the last ANALYZE or VACUUM; -1 before the first.
	EstimatedEvents int64
	// TotalBytes is its size on disk, indexes included.
	TotalBytes int64
	// Tablespace is its tablespace; "" for the database's default.
	Tablespace string
}

// ArchivePartitions lists the partitions of the archive, oldest first
// (SQL archive_partitions; the schema's reader role). Only the first can
// be detached.
func (s *Store) ArchivePartitions(ctx context.Context) ([]ArchivePartition, error) {
	rows, err := s.db.Query(ctx, s.sql.archivePartitions)
	if err != nil {
		return nil, fmt.Errorf("pgstore: listing the archive's partitions: %w", interpretError(err))
	}
	var out []ArchivePartition
	for rows.Next() {
		var p ArchivePartition
		var estimated *int64
		var space *string
		if err := rows.Scan(&p.Name, &p.FromTxKey, &p.ToTxKey, &estimated, &p.TotalBytes, &space); err != nil {
			rows.Close()
			return nil, fmt.Errorf("pgstore: listing the archive's partitions: %w", interpretError(err))
		}
		p.EstimatedEvents = -1
		if estimated != nil {
			p.EstimatedEvents = *estimated
		}
		if space != nil {
			p.Tablespace = *space
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: listing the archive's partitions: %w", interpretError(err))
	}
	return out, nil
}

// DetachOpts shapes a [Store.DetachArchivePartition] call. A nil
// *DetachOpts is the zero value.
type DetachOpts struct {
	// Force detaches the partition even when subscriptions have not read
	// all of its events: they never will. Defaults to false: such a
	// detach fails with [es.ErrPartitionInUse].
	Force bool
}

// DetachArchivePartition detaches the archive's oldest partition, name
// (as [Store.ArchivePartitions] lists it), and returns the number of
// events it held (SQL detach_archive_partition; only the schema's admin
// role may call it). Its events leave the log as retention removes
// events: reads, subscriptions and loads no longer see them, streams that
// began in it read from their first event after it (a load without a
// snapshot there fails with [es.ErrStreamTruncated]), parked events of
// them are resolved, their ids are forgotten (an append that retries one
// is a new append), and the keys of new events stay above them. The table
// stays in the schema, owned by the schema's owner and readable by
// nobody else, for an operator to pg_dump and DROP.
//
// Errors: [es.ErrInvalidArgument] when name is not the oldest partition;
// [es.ErrPartitionInUse] when a subscription's checkpoint is before the
// partition's last event (unless opts.Force), or when events of its range
// are still in the live table or could still be appended (archive past
// its range first).
func (s *Store) DetachArchivePartition(ctx context.Context, name string, opts *DetachOpts) (int64, error) {
	var o DetachOpts
	if opts != nil {
		o = *opts
	}
	var n int64
	if err := s.db.QueryRow(ctx, s.sql.detachArchivePartition, name, o.Force).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgstore: detaching archive partition %q: %w", name, interpretError(err))
	}
	return n, nil
}
