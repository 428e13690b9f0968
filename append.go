package es

import (
	"fmt"

	"github.com/google/uuid"
)

// PrepareEvents validates an append like [ValidateAppend] and returns a copy
// of events in which every zero ID is replaced by a fresh UUIDv7. Store
// implementations call it; the caller's slice is not modified.
func PrepareEvents(streamID string, expected ExpectedVersion, events []NewEvent) ([]NewEvent, error) {
	if err := ValidateAppend(streamID, expected, events); err != nil {
		return nil, err
	}
	out := make([]NewEvent, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
	for i, e := range events {
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("es: generating event id: %w", err)
			}
			e.ID = id
		}
		if _, dup := seen[e.ID]; dup {
			return nil, fmt.Errorf("%w: event id %s appears twice in the batch for stream %q", ErrInvalidArgument, e.ID, streamID)
		}
		seen[e.ID] = struct{}{}
		if e.Data == nil {
			e.Data = []byte{}
		}
		out[i] = e
	}
	return out, nil
}
