package es

import (
	"context"
	"iter"
	"math"
	"time"

	"github.com/google/uuid"
)

// Event is an event as stored: its identity, its place in its stream and in
// the global log, and its payload.
type Event struct {
	// ID is the event's unique id, chosen by the writer (UUIDv7 by default).
	ID uuid.UUID
	// StreamID is the stream the event belongs to.
	StreamID string
	// Version is the event's 1-based, gapless position in its stream.
	Version int64
	// Position is the event's place in the global log.
	Position Position
	// Type is the event's type name.
	Type string
	// SchemaVersion is the version of the type's shape that Data was
	// written in (see [RegisterWith]): 1 for events written without one,
	// among them every event stored before es had versions. Zero (an Event
	// built by hand) is read as 1.
	SchemaVersion int
	// Data is the encoded event body (msgpack).
	Data []byte
	// Metadata is the encoded metadata (a msgpack map), or nil.
	Metadata []byte
	// RecordedAt is the server time at which the event was stored.
	RecordedAt time.Time
}

// Category returns the part of the event's stream id before the first '-'
// (the whole id when it has none), as the database computes it.
func (e Event) Category() string { return Category(e.StreamID) }

// NewEvent is an event to append.
type NewEvent struct {
	// ID is the event's id. The zero UUID means "choose one": stores fill it
	// with a fresh UUIDv7. Give an explicit id to make a retried append
	// idempotent.
	ID uuid.UUID
	// Type is the event's type name. Required.
	Type string
	// SchemaVersion is the version of the type's shape that Data is
	// written in, from 1 to [MaxSchemaVersion]; [Registry.NewEvent] sets
	// the version the type is registered at. Defaults to 1 (0).
	SchemaVersion int
	// Data is the encoded event body. Nil is stored as an empty body.
	Data []byte
	// Metadata is the encoded metadata (a msgpack map), or nil for none.
	Metadata []byte
}

// AppendResult describes a successful append, or the original append that an
// idempotent retry matched.
type AppendResult struct {
	// StreamID is the stream appended to.
	StreamID string
	// FirstVersion is the version of the first event of the batch.
	FirstVersion int64
	// StreamVersion is the stream's version after the append: the version of
	// the batch's last event.
	StreamVersion int64
	// FirstPosition is the global position of the batch's first event.
	FirstPosition Position
	// LastPosition is the global position of the batch's last event.
	LastPosition Position
}

// MaxStreamIDLength is the longest stream id accepted, in bytes.
const MaxStreamIDLength = 1000

// MaxSchemaVersion is the highest event schema version the stores accept
// (the SQL column is an int).
const MaxSchemaVersion = math.MaxInt32

// StreamInfo describes a stream that exists.
type StreamInfo struct {
	// StreamID is the stream's id.
	StreamID string
	// Version is the stream's current version: the number of events in it.
	Version int64
	// CreatedAt is when the stream's first event was appended.
	CreatedAt time.Time
	// UpdatedAt is when the stream's last event was appended.
	UpdatedAt time.Time
}

// ReadStreamOpts shapes a [Store.ReadStream] call. A nil *ReadStreamOpts reads
// the whole stream forwards.
type ReadStreamOpts struct {
	// From is the first version to return. Forwards, versions >= From are
	// returned; backwards, versions <= From. Defaults to 1 forwards and to
	// the stream's last version backwards (0 or negative means "default").
	From int64
	// MaxCount caps the number of events returned. Defaults to no limit (0).
	MaxCount int
	// Backwards reads from newest to oldest. Defaults to false.
	Backwards bool
}

// ReadAllOpts shapes a [Store.ReadAll] call. A nil *ReadAllOpts reads the whole
// visible log.
type ReadAllOpts struct {
	// After is the position after which to start (exclusive). Defaults to the
	// zero Position: the start of the log.
	After Position
	// MaxCount caps the number of events returned. Defaults to no limit (0):
	// the iterator pages through the log until it reaches the end that is
	// visible at the time.
	MaxCount int
	// Categories, when not empty, keeps only events whose stream category is
	// one of them. Defaults to all categories.
	Categories []string
	// EventTypes, when not empty, keeps only events of these types. Defaults
	// to all types.
	EventTypes []string
}

// Store is an event store. pgstore and memstore implement it with identical
// semantics, checked by the conformance suite in package storetest.
type Store interface {
	// Append appends events to a stream atomically, after checking the
	// stream's version against expected. Either every event is stored or
	// none is.
	//
	// Errors: [ErrWrongVersion] (as a *[VersionConflictError]) when the
	// stream is not at the expected version; [ErrDuplicateEvent] when some
	// of the event ids are already stored but the batch is not an exact
	// retry of an earlier append; [ErrInvalidArgument] for an empty batch,
	// an empty or oversized stream id, an empty event type, a schema
	// version out of range, or an invalid expected version.
	//
	// Retrying an append whose event ids are all stored, in this stream, in
	// the same order, consistently with expected, writes nothing and returns
	// the original result.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events []NewEvent) (AppendResult, error)

	// ReadStream returns the events of one stream in version order (or
	// reverse order with opts.Backwards). A stream that does not exist
	// yields no events and no error. Rows are streamed, not held in memory.
	ReadStream(ctx context.Context, streamID string, opts *ReadStreamOpts) iter.Seq2[Event, error]

	// ReadAll returns the events of the global log after opts.After in the
	// global order, without gaps: an event that commits later never appears
	// before an event already returned.
	ReadAll(ctx context.Context, opts *ReadAllOpts) iter.Seq2[Event, error]

	// StreamInfo returns the stream's current version and times, or
	// [ErrNotFound] when the stream has no events.
	StreamInfo(ctx context.Context, streamID string) (StreamInfo, error)
}
