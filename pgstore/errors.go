package pgstore

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgevent/es"
)

// The SQLSTATEs the es functions raise (class PE, "event store").
const (
	codeWrongVersion       = "PE001"
	codeDuplicateEvent     = "PE002"
	codeInvalidArgument    = "PE003"
	codeStreamDeleted      = "PE004"
	codeImmutable          = "PE005"
	codeCheckpointConflict = "PE007"
	codeSnapshotAhead      = "PE008"
	codeRunning            = "PE010"
	codeStreamNotFound     = "PE011"
	codeSubjectForgotten   = "PE012"
	codePartitionInUse     = "PE013"
)

// dbError is an error raised by an es function: it matches its es sentinel
// with errors.Is and still unwraps to the *pgconn.PgError.
type dbError struct {
	kind error
	pg   *pgconn.PgError
}

func (e *dbError) Error() string   { return e.kind.Error() + ": " + e.pg.Message }
func (e *dbError) Unwrap() []error { return []error{e.kind, e.pg} }

// interpretError translates errors from PostgreSQL into es errors. It is the
// one place that knows the SQLSTATEs.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err
	}
	switch pg.Code {
	case codeWrongVersion:
		var d struct {
			StreamID string `json:"stream_id"`
			Expected *int64 `json:"expected"`
			Actual   int64  `json:"actual"`
		}
		if json.Unmarshal([]byte(pg.Detail), &d) != nil {
			return &dbError{kind: es.ErrWrongVersion, pg: pg}
		}
		return &es.VersionConflictError{StreamID: d.StreamID, Expected: es.ExpectedVersionFromSQL(d.Expected), Actual: d.Actual}
	case codeDuplicateEvent:
		return &dbError{kind: es.ErrDuplicateEvent, pg: pg}
	case codeStreamDeleted:
		var d struct {
			StreamID   string `json:"stream_id"`
			Tombstoned bool   `json:"tombstoned"`
		}
		if json.Unmarshal([]byte(pg.Detail), &d) != nil {
			return &dbError{kind: es.ErrStreamDeleted, pg: pg}
		}
		return &es.StreamDeletedError{StreamID: d.StreamID, Tombstoned: d.Tombstoned}
	case codeStreamNotFound:
		return &dbError{kind: es.ErrNotFound, pg: pg}
	case pgerrcode.UniqueViolation:
		if pg.ConstraintName == "events_event_id_key" {
			return &dbError{kind: es.ErrDuplicateEvent, pg: pg}
		}
	case codeInvalidArgument:
		return &dbError{kind: es.ErrInvalidArgument, pg: pg}
	case codeCheckpointConflict:
		return &dbError{kind: es.ErrCheckpointConflict, pg: pg}
	case codeSnapshotAhead:
		return &dbError{kind: es.ErrSnapshotBeyondStream, pg: pg}
	case codeRunning:
		return &dbError{kind: es.ErrSubscriptionRunning, pg: pg}
	case codeSubjectForgotten:
		return &dbError{kind: es.ErrSubjectForgotten, pg: pg}
	case codePartitionInUse:
		return &dbError{kind: es.ErrPartitionInUse, pg: pg}
	case pgerrcode.ReadOnlySQLTransaction: // a hot standby
		return &dbError{kind: es.ErrReadOnly, pg: pg}
	}
	return err
}

// isContextError reports whether err is a cancellation or deadline error.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
