package storekit

import (
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/sqlcheck"
)

// ValidateSnapshot checks a snapshot to save the way the SQL function
// save_snapshot does (all but the comparison with the stream's version), and
// returns an error wrapping [es.ErrInvalidArgument] for the first problem found.
func ValidateSnapshot(s es.Snapshot) error {
	if err := ValidateStreamID(s.StreamID); err != nil {
		return err
	}
	if s.Version < 1 {
		return fmt.Errorf("%w: snapshot of stream %q: version must be 1 or more, got %d", es.ErrInvalidArgument, s.StreamID, s.Version)
	}
	return validateSchemaVersion(s.SchemaVersion)
}

// ValidateNewSnapshot checks a snapshot to append: its schema version must
// fit in 32 bits (the SQL functions take an int).
func ValidateNewSnapshot(s es.NewSnapshot) error { return validateSchemaVersion(s.SchemaVersion) }

func validateSchemaVersion(v int) error {
	if !sqlcheck.Int32(v) {
		return fmt.Errorf("%w: snapshot schema version %d does not fit in 32 bits", es.ErrInvalidArgument, v)
	}
	return nil
}
