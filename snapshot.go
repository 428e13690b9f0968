package es

import (
	"context"
	"iter"
	"time"
)

// Snapshot is a stored snapshot: the state of a stream's aggregate at a
// version of the stream, encoded by the application in the shape its
// SchemaVersion names. A store keeps at most one snapshot per stream, the
// newest. A snapshot is a cache: the events stay the truth.
type Snapshot struct {
	// StreamID is the stream the snapshot belongs to.
	StreamID string
	// Version is the stream version the state corresponds to: the state
	// after applying events 1..Version. It is at least 1 and never beyond
	// the stream's version.
	Version int64
	// SchemaVersion names the shape of State. Loads ask for one schema
	// version and ignore snapshots of any other, so changing the shape of
	// an aggregate's state (and its schema version) invalidates the old
	// snapshots instead of mis-decoding them. It must fit in 32 bits.
	SchemaVersion int
	// State is the encoded state (by convention msgpack; see package
	// snapshot). Nil is stored as an empty state.
	State []byte
	// CreatedAt is when the snapshot was stored (server time). Ignored by
	// [SnapshotStore.SaveSnapshot].
	CreatedAt time.Time
}

// NewSnapshot is a snapshot to store together with an append
// ([SnapshotStore.AppendWithSnapshot]): the aggregate's state after the
// appended events. Its version is the stream's version after the append.
type NewSnapshot struct {
	// SchemaVersion names the shape of State; see [Snapshot.SchemaVersion].
	SchemaVersion int
	// State is the encoded state. Nil is stored as an empty state.
	State []byte
}

// Loaded is one item of a [SnapshotStore.Load] sequence: the snapshot (only
// ever the first item) or an event.
type Loaded struct {
	// Snapshot is the stream's snapshot, on the first item only, when the
	// stream has one of the schema version asked for; Event is then zero.
	Snapshot *Snapshot
	// Event is the next event, when Snapshot is nil.
	Event Event
}

// SnapshotStore is a [Store] that keeps snapshots. pgstore and memstore
// implement it with identical semantics, checked by the conformance suite
// in package storetest.
//
// Keeping only the newest: a snapshot replaces the stream's stored one
// when its version is higher, or equal with a higher schema version;
// otherwise the stored one is kept and the new one skipped.
type SnapshotStore interface {
	Store

	// SaveSnapshot stores snapshot (its CreatedAt is ignored) as its
	// stream's snapshot unless the stream has a newer one, and reports
	// whether it stored it.
	//
	// Errors: [ErrSnapshotBeyondStream] when snapshot.Version is beyond the
	// stream's version; [ErrInvalidArgument] for an invalid stream id, a
	// version below 1 or a schema version that does not fit in 32 bits.
	SaveSnapshot(ctx context.Context, snapshot Snapshot) (stored bool, err error)

	// ReadSnapshot returns the stream's stored snapshot, whatever its
	// schema version, or [ErrNotFound] when it has none.
	ReadSnapshot(ctx context.Context, streamID string) (Snapshot, error)

	// Load returns, in one round trip, what rebuilding the stream's
	// aggregate needs: the stream's snapshot when its schema version is
	// schemaVersion (as the first item), then the events after it in
	// version order. Without such a snapshot (none, or one of another
	// schema version) it returns every event. The snapshot and the events
	// that follow it are read consistently: the events continue the
	// snapshot's version. A stream with no events yields nothing. Rows are
	// streamed, not held in memory.
	Load(ctx context.Context, streamID string, schemaVersion int) iter.Seq2[Loaded, error]

	// AppendWithSnapshot is [Store.Append] that also stores snapshot, in
	// the same call and transaction, as the stream's snapshot at the
	// stream's version after the append. The snapshot never makes the
	// append fail: when the stream already has a newer snapshot it is kept
	// and this one skipped. An idempotent retry stores the snapshot at the
	// version of the retried run's last event (unless a newer one is
	// stored). The errors are Append's, plus [ErrInvalidArgument] for a
	// schema version that does not fit in 32 bits (checked before anything
	// is written).
	AppendWithSnapshot(ctx context.Context, streamID string, expected ExpectedVersion, events []NewEvent, snapshot NewSnapshot) (AppendResult, error)
}

// Snapshotter is implemented by aggregates that opt in to snapshots. A
// [Repository] of such aggregates, on a [SnapshotStore], loads them from
// their stream's snapshot and the events after it, and stores a snapshot
// with the events when its [SnapshotPolicy] says one is due.
//
// The state is the aggregate's own fields: not its id, version or pending
// events, which the repository keeps. Package snapshot encodes a struct's
// exported fields with msgpack:
//
//	func (a *Account) SnapshotSchemaVersion() int            { return 1 }
//	func (a *Account) MarshalSnapshot() ([]byte, error)      { return snapshot.Marshal(a) }
//	func (a *Account) UnmarshalSnapshot(state []byte) error  { return snapshot.Unmarshal(state, a) }
type Snapshotter interface {
	// SnapshotSchemaVersion names the shape of the state MarshalSnapshot
	// writes. Change it whenever that shape changes (a field added,
	// renamed, retyped or given a new meaning): loads then ignore the
	// older snapshots and replay the events instead, and the next due
	// snapshot replaces them. It must fit in 32 bits.
	SnapshotSchemaVersion() int
	// MarshalSnapshot returns the aggregate's state, encoded.
	MarshalSnapshot() ([]byte, error)
	// UnmarshalSnapshot sets the state of a fresh aggregate (as the
	// repository's newAggregate returns it) from what MarshalSnapshot
	// wrote. It should return an error for input it cannot fully decode:
	// the repository then replays the events instead.
	UnmarshalSnapshot(state []byte) error
}

// SnapshotPolicy decides, at every save of an aggregate that opts in to
// snapshots ([Snapshotter]), whether the repository stores a snapshot with
// the events. Package snapshot has the usual ones: every N events, a
// predicate, never. A policy must be safe for concurrent use.
type SnapshotPolicy interface {
	// SnapshotDue reports whether a snapshot is due after the save c
	// describes.
	SnapshotDue(c SnapshotCandidate) bool
}

// SnapshotCandidate describes a save to a [SnapshotPolicy].
type SnapshotCandidate struct {
	// StreamID is the aggregate's stream.
	StreamID string
	// Version is the stream's version after the save, which a snapshot
	// stored with it would have.
	Version int64
	// PreviousVersion is the stream's version before the save (the
	// aggregate's StoredVersion; 0 for a new aggregate).
	PreviousVersion int64
	// LastSnapshotVersion is the version of the last snapshot the
	// aggregate is known to have: the one it was loaded from, or the one
	// a previous save of this aggregate value stored; 0 when none.
	LastSnapshotVersion int64
	// EventsSinceSnapshot is Version - LastSnapshotVersion: the events a
	// load replays after the last snapshot once this save is stored
	// without one.
	EventsSinceSnapshot int64
	// LastSnapshotAt is when the last snapshot was stored; zero when none.
	LastSnapshotAt time.Time
	// SinceSnapshot is the time elapsed since LastSnapshotAt, or the
	// largest Duration when there is no last snapshot (so "older than X"
	// holds).
	SinceSnapshot time.Duration
}

// SnapshotPolicyFunc adapts a function to a [SnapshotPolicy].
type SnapshotPolicyFunc func(c SnapshotCandidate) bool

// SnapshotDue calls f.
func (f SnapshotPolicyFunc) SnapshotDue(c SnapshotCandidate) bool { return f(c) }
