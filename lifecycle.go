package es

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StreamLifecycle is implemented by stores that delete streams and remove
// old events (both stores of this module do; the conformance suite checks
// that they agree). See the README, "Deleting and forgetting".
//
// What readers see:
//   - a soft-deleted or tombstoned stream reads as one that does not exist
//     ([Store.ReadStream] yields nothing, [Store.StreamInfo] and
//     [Repository.Load] return [ErrNotFound]), and takes no append (a
//     *[StreamDeletedError]);
//   - [Store.ReadAll] and subscriptions keep a soft-deleted stream's events
//     (soft deletion is reversible); events removed by a tombstone or by
//     retention are gone from the global log: a subscription past them is
//     unaffected, one before them never sees them;
//   - a truncated stream reads from its truncation point and keeps its
//     version; [Repository.Load] needs a snapshot at or after the point
//     (else [ErrStreamTruncated]).
type StreamLifecycle interface {
	// DeleteStream soft-deletes a stream: it is hidden from the reads by
	// stream and refuses appends until [StreamLifecycle.RestoreStream].
	// Nothing is removed. expected is checked as an append's (a
	// soft-deleted stream counts as not existing). It returns the stream's
	// version. Deleting a soft-deleted stream again changes nothing.
	// Errors: [ErrNotFound] for a stream that does not exist,
	// *[StreamDeletedError] for a tombstoned one, *[VersionConflictError].
	DeleteStream(ctx context.Context, streamID string, expected ExpectedVersion) (int64, error)

	// RestoreStream undoes DeleteStream and returns the stream's version;
	// a stream that is not deleted is left as it is. Errors: [ErrNotFound],
	// *[StreamDeletedError] for a tombstoned stream.
	RestoreStream(ctx context.Context, streamID string) (int64, error)

	// TombstoneStream deletes a stream for good: its events and snapshot
	// are removed at once, and the stream id can never be appended to
	// again (*[StreamDeletedError] with Tombstoned set) nor restored. An
	// id never used can be tombstoned (reserved). expected as DeleteStream's.
	// It returns the number of events removed (0 for a stream already
	// tombstoned). In PostgreSQL only the schema's admin role may call it.
	TombstoneStream(ctx context.Context, streamID string, expected ExpectedVersion) (int64, error)

	// TruncateStream hides the stream's events below version before from
	// the reads by stream at once, and has the next ApplyRetention remove
	// them. The truncation point never moves back (a lower before changes
	// nothing); before may be at most the stream's version + 1. It returns
	// the stream's truncation point. Errors: [ErrNotFound],
	// *[StreamDeletedError], [ErrInvalidArgument] for before out of range.
	TruncateStream(ctx context.Context, streamID string, before int64) (int64, error)

	// SetRetention sets (or, with neither limit, removes) the retention
	// policy of a stream or of a category; ApplyRetention applies it.
	SetRetention(ctx context.Context, policy RetentionPolicy) error

	// ApplyRetention applies the retention policies and truncations: it
	// moves truncation points as the policies say, then removes the events
	// below them, in steps of bounded size (each a short transaction in
	// PostgreSQL), until nothing is left to do or ctx ends. It returns
	// what it did, also when ctx ends part way.
	ApplyRetention(ctx context.Context, opts *ApplyRetentionOpts) (RetentionResult, error)

	// ArchiveEvents moves the events of the global log before position
	// before to the archive (in PostgreSQL, the table events_archive,
	// which can live on cheaper storage), in steps of bounded size, and
	// returns how many it moved. Readers see no change: every read,
	// subscription and load reads the live events and the archive as one
	// log, and an append that retries one whose events are archived is
	// recognised as a retry. It moves only events that are visible in the
	// global log, and never the log's last event. In PostgreSQL only the
	// schema's admin role may call it.
	ArchiveEvents(ctx context.Context, before Position, opts *ArchiveOpts) (int64, error)
}

// ArchiveOpts shapes a [StreamLifecycle.ArchiveEvents] call. A nil
// *ArchiveOpts is the zero value.
type ArchiveOpts struct {
	// BatchSize is the most events moved in one step (one transaction in
	// PostgreSQL, during which appends wait). Defaults to 1000.
	BatchSize int
	// PartitionSize is the number of events each partition of the
	// archive that the call creates is made for (PostgreSQL: the archive
	// is partitioned by ranges of transaction keys, and a partition,
	// detached, is a unit to dump and drop; see pgstore's
	// DetachArchivePartition). The memory store has no partitions and
	// ignores it. Defaults to 1,000,000.
	PartitionSize int64
}

// RetentionPolicy says which events of a stream, or of every stream of a
// category, to keep: the last MaxCount and those younger than MaxAge. A
// stream keeps every event from the first one it must keep on (retention
// removes a prefix of the stream). A stream's own policy replaces its
// category's.
type RetentionPolicy struct {
	// StreamID names the stream the policy is for. Exactly one of
	// StreamID and Category is set.
	StreamID string
	// Category names the category (the part of a stream id before the
	// first '-') the policy is for.
	Category string
	// MaxCount keeps the stream's last MaxCount events. Defaults to no
	// limit (0): a policy that keeps no event is a tombstone's or a
	// truncation's job (SQL's max_count = 0 does keep none).
	MaxCount int64
	// MaxAge keeps the events recorded within MaxAge of the time the
	// policy is applied. Defaults to no limit (0).
	MaxAge time.Duration
}

// ApplyRetentionOpts shapes an [StreamLifecycle.ApplyRetention] call. A nil
// *ApplyRetentionOpts is the zero value.
type ApplyRetentionOpts struct {
	// BatchSize is the most events removed in one step (one transaction in
	// PostgreSQL). Defaults to 1000.
	BatchSize int
	// MaxStreams is the most streams one step moves the truncation point
	// of, or removes events from. Defaults to 100.
	MaxStreams int
}

// RetentionResult is what [StreamLifecycle.ApplyRetention] did.
type RetentionResult struct {
	// StreamsTruncated counts the truncation points a policy moved.
	StreamsTruncated int64
	// EventsRemoved counts the events removed.
	EventsRemoved int64
	// Steps counts the steps taken (transactions, in PostgreSQL).
	Steps int
}

// ErrPartitionInUse is returned by pgstore's DetachArchivePartition when
// the archive's partition cannot be detached yet: a subscription has not
// read all of its events (unless forced), or events of its range are not
// all archived. (SQLSTATE PE013.)
var ErrPartitionInUse = errors.New("es: archive partition in use")

// ErrStreamDeleted is returned (as a *[StreamDeletedError]) by an append to,
// or an operation on, a soft-deleted or tombstoned stream.
var ErrStreamDeleted = errors.New("es: stream deleted")

// ErrStreamTruncated is returned by [Repository.Load] for a stream whose
// first events were removed (truncation, retention) when no snapshot at or
// after the truncation point can stand in for them.
var ErrStreamTruncated = errors.New("es: stream truncated")

// StreamDeletedError reports a stream that is soft-deleted or tombstoned.
// errors.Is(err, ErrStreamDeleted) is true for it.
type StreamDeletedError struct {
	// StreamID is the stream.
	StreamID string
	// Tombstoned is true for a stream deleted for good, false for a
	// soft-deleted one (which RestoreStream brings back).
	Tombstoned bool
}

// Error implements error.
func (e *StreamDeletedError) Error() string {
	if e.Tombstoned {
		return fmt.Sprintf("es: stream %q is tombstoned (deleted for good)", e.StreamID)
	}
	return fmt.Sprintf("es: stream %q is deleted (restore it to use it again)", e.StreamID)
}

// Is makes errors.Is(err, ErrStreamDeleted) true.
func (e *StreamDeletedError) Is(target error) bool { return target == ErrStreamDeleted }
