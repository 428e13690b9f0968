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

// MaxStreamIDLength is the longest stream id accepted, in bytes.
const MaxStreamIDLength = 1000
