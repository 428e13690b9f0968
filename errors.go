package es

import (
	"errors"
	"fmt"
)

// ErrWrongVersion is returned (as a *[VersionConflictError]) when an append's
// expected version does not match the stream's version. Test with
// errors.Is(err, es.ErrWrongVersion); read the versions with errors.As.
var ErrWrongVersion = errors.New("es: wrong expected version")

// ErrDuplicateEvent is returned when an append carries event ids that are
// already stored but the append is not an exact retry of the one that stored
// them: some ids are new, the stored ones are in another stream, or they are
// not one contiguous run in the same order consistent with the expected
// version.
var ErrDuplicateEvent = errors.New("es: duplicate event id")

// ErrInvalidArgument is returned for input that can never succeed: an empty
// batch, an empty or oversized stream id, an empty event type, an invalid
// expected version or read option. Nothing is written.
var ErrInvalidArgument = errors.New("es: invalid argument")

// ErrNotFound is returned when a stream (or another named thing) does not
// exist.
var ErrNotFound = errors.New("es: not found")

// ErrReadOnly is returned when a store cannot write because its database
// only reads: a PostgreSQL hot standby (or a read-only transaction).
// Appends, snapshot saves and subscriptions (which save checkpoints) fail
// with it at once instead of retrying; reads work.
var ErrReadOnly = errors.New("es: the store is read-only (a standby)")

// VersionConflictError reports an append whose expected version did not
// match the stream. errors.Is(err, ErrWrongVersion) is true for it.
type VersionConflictError struct {
	// StreamID is the stream appended to.
	StreamID string
	// Expected is the expected version the append carried.
	Expected ExpectedVersion
	// Actual is the stream's version when the append was checked (0 when
	// the stream does not exist).
	Actual int64
}

// Error implements error.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("es: wrong expected version for stream %q: expected %s, actual %d", e.StreamID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongVersion) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrWrongVersion }

// ErrUnknownEventType is returned (as a *[UnknownEventTypeError]) when an
// event's type name is not registered in the [Registry] that decodes it.
var ErrUnknownEventType = errors.New("es: unknown event type")

// ErrUpcasterLoop is returned when a chain of upcasters leads back to a type
// name it already passed through.
var ErrUpcasterLoop = errors.New("es: upcaster loop")

// UnknownEventTypeError reports an event whose type is not registered.
// errors.Is(err, ErrUnknownEventType) is true for it.
type UnknownEventTypeError struct {
	// Type is the type name that is not registered: the stored type, or the
	// name the upcasters turned it into.
	Type string
	// StreamID is the stream the event was read from.
	StreamID string
	// Version is the event's version in its stream.
	Version int64
}

// Error implements error.
func (e *UnknownEventTypeError) Error() string {
	return fmt.Sprintf("es: unknown event type %q (stream %q, version %d)", e.Type, e.StreamID, e.Version)
}

// Is makes errors.Is(err, ErrUnknownEventType) true.
func (e *UnknownEventTypeError) Is(target error) bool { return target == ErrUnknownEventType }

// ErrSchemaVersionAhead is returned (as a *[SchemaVersionError]) when a
// stored event's schema version is above the version its type is
// registered at: newer code wrote it, and this registry does not know its
// shape. Deploy the newer registration, or decode with
// [DecodeOpts.AllowUnknown] to get the event as a [RawEvent].
var ErrSchemaVersionAhead = errors.New("es: event schema version above the registered one")

// ErrMissingUpcaster is returned (as a *[SchemaVersionError]) when a stored
// event's schema version is below the version its type is registered at
// and no upcaster is registered for it (or for a version its upcasters
// lead to): register one with [Registry.RegisterUpcasterWith].
var ErrMissingUpcaster = errors.New("es: no upcaster for the event's schema version")

// SchemaVersionError reports a stored event the registry cannot bring to
// the schema version its type is registered at. errors.Is(err,
// ErrSchemaVersionAhead) is true for it when SchemaVersion is above
// RegisteredVersion, errors.Is(err, ErrMissingUpcaster) when it is below.
type SchemaVersionError struct {
	// Type is the registered type name: the stored type, or the name the
	// upcasters turned it into.
	Type string
	// SchemaVersion is the event's schema version: as stored, or where its
	// upcasters stopped.
	SchemaVersion int
	// RegisteredVersion is the schema version Type is registered at.
	RegisteredVersion int
	// StreamID is the stream the event was read from.
	StreamID string
	// Version is the event's version in its stream.
	Version int64
}

// Error implements error.
func (e *SchemaVersionError) Error() string {
	if e.SchemaVersion > e.RegisteredVersion {
		return fmt.Sprintf("es: event %q (stream %q, version %d) is at schema version %d, above the registered version %d (written by newer code)",
			e.Type, e.StreamID, e.Version, e.SchemaVersion, e.RegisteredVersion)
	}
	return fmt.Sprintf("es: event %q (stream %q, version %d) is at schema version %d and no upcaster leads from it to the registered version %d",
		e.Type, e.StreamID, e.Version, e.SchemaVersion, e.RegisteredVersion)
}

// Is makes errors.Is(err, ErrSchemaVersionAhead) or errors.Is(err,
// ErrMissingUpcaster) true, as the versions say.
func (e *SchemaVersionError) Is(target error) bool {
	if e.SchemaVersion > e.RegisteredVersion {
		return target == ErrSchemaVersionAhead
	}
	return target == ErrMissingUpcaster
}

// ErrSnapshotBeyondStream is returned when a snapshot's version is beyond
// its stream's version (a stream that does not exist is at version 0): a
// snapshot can never be ahead of its stream. It wraps [ErrInvalidArgument],
// so errors.Is(err, ErrInvalidArgument) is true for it too. Nothing is
// written.
var ErrSnapshotBeyondStream = fmt.Errorf("%w: snapshot version beyond the stream's version", ErrInvalidArgument)

// SnapshotError reports a snapshot the repository could not use or store.
// The repository does not fail because of it: a load replays the events
// instead, a save stores the events without the snapshot. It reaches
// [RepositoryConfig.OnSnapshotError].
type SnapshotError struct {
	// StreamID is the aggregate's stream.
	StreamID string
	// Version is the snapshot's version (the one loaded, or the one a
	// save would have stored).
	Version int64
	// Op is "restore" (a stored snapshot could not be decoded) or
	// "marshal" (the aggregate could not encode its state at a save).
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *SnapshotError) Error() string {
	return fmt.Sprintf("es: snapshot %s of stream %q at version %d: %v", e.Op, e.StreamID, e.Version, e.Err)
}

// Unwrap returns the cause.
func (e *SnapshotError) Unwrap() error { return e.Err }

// ErrCorruptSnapshot is the cause of a *[SnapshotError] whose stored state
// failed the repository's integrity check (see [Repository]).
var ErrCorruptSnapshot = errors.New("es: corrupt snapshot state")

// ErrCheckpointConflict is returned when a subscription's checkpoint is not
// where the instance saving it expected: another instance of the
// subscription moved it. The checkpoint is left as it is; a running
// subscription that meets it reads the checkpoint again and carries on
// from there.
var ErrCheckpointConflict = errors.New("es: checkpoint conflict")

// ErrSubscriptionRunning is returned when a subscription's checkpoint is
// reset or deleted while an instance of the subscription runs (holds its
// lease): the checkpoint is then the instance's to move. Stop every
// instance first. (SQLSTATE PE010.)
var ErrSubscriptionRunning = errors.New("es: subscription running")

// HandlerError is the error a subscription stops with when its handler
// fails (after any retries). The checkpoint stays before Event.
type HandlerError struct {
	// Subscription is the subscription's name.
	Subscription string
	// Event is the event the handler failed on.
	Event Event
	// Attempts is how many times the handler was called with Event.
	Attempts int
	// Err is the handler's last error.
	Err error
}

// Error implements error.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("es: subscription %q: handler failed on event %s (stream %q version %d, position %s) after %d attempt(s): %v",
		e.Subscription, e.Event.ID, e.Event.StreamID, e.Event.Version, e.Event.Position, e.Attempts, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }
