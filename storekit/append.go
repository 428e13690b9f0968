package storekit

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/sqlcheck"
)

// PrepareAppend validates an append like [ValidateAppend] and returns a copy
// of events in which every zero ID is replaced by a fresh UUIDv7, every nil
// Data by an empty body and every zero SchemaVersion by 1; the caller's
// slice is not modified.
func PrepareAppend(streamID string, expected es.ExpectedVersion, events []es.NewEvent) ([]es.NewEvent, error) {
	if err := ValidateAppend(streamID, expected, events); err != nil {
		return nil, err
	}
	out := make([]es.NewEvent, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
	for i, e := range events {
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("storekit: generating event id: %w", err)
			}
			e.ID = id
		}
		if _, dup := seen[e.ID]; dup {
			return nil, fmt.Errorf("%w: event id %s appears twice in the batch for stream %q", es.ErrInvalidArgument, e.ID, streamID)
		}
		seen[e.ID] = struct{}{}
		if e.Data == nil {
			e.Data = []byte{}
		}
		e.SchemaVersion = max(e.SchemaVersion, 1)
		out[i] = e
	}
	return out, nil
}

// ValidateAppend checks an append's arguments the way the SQL append function
// does, and returns an error wrapping [es.ErrInvalidArgument] for the first
// problem found. Event ids may be zero (the store fills them).
func ValidateAppend(streamID string, expected es.ExpectedVersion, events []es.NewEvent) error {
	if err := ValidateStreamID(streamID); err != nil {
		return err
	}
	if !expected.Valid() {
		return fmt.Errorf("%w: expected version must be any, -1, 0 or a positive version", es.ErrInvalidArgument)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events to append to stream %q", es.ErrInvalidArgument, streamID)
	}
	for i, e := range events {
		if e.Type == "" {
			return fmt.Errorf("%w: event %d of stream %q has an empty type", es.ErrInvalidArgument, i, streamID)
		}
		if !sqlcheck.Text(e.Type) {
			return fmt.Errorf("%w: event %d of stream %q: type contains a NUL byte or invalid UTF-8", es.ErrInvalidArgument, i, streamID)
		}
		if e.SchemaVersion < 0 || e.SchemaVersion > es.MaxSchemaVersion {
			return fmt.Errorf("%w: event %d of stream %q: schema version %d is not between 1 and %d (0: 1)",
				es.ErrInvalidArgument, i, streamID, e.SchemaVersion, es.MaxSchemaVersion)
		}
	}
	return nil
}

// ValidateStreamID checks that id is a valid stream id: 1 to
// [es.MaxStreamIDLength] bytes of UTF-8 without NUL.
func ValidateStreamID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty stream id", es.ErrInvalidArgument)
	case len(id) > es.MaxStreamIDLength:
		return fmt.Errorf("%w: stream id is %d bytes, more than %d", es.ErrInvalidArgument, len(id), es.MaxStreamIDLength)
	case !sqlcheck.Text(id):
		return fmt.Errorf("%w: stream id contains a NUL byte or invalid UTF-8", es.ErrInvalidArgument)
	}
	return nil
}
