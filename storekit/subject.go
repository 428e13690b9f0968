package storekit

import (
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/codec"
)

// ValidateSubject checks a data subject id the way the SQL functions
// subject_key and forget_subject do: 1 to [es.MaxSubjectLength] bytes of
// UTF-8 without NUL. It returns an error wrapping [es.ErrInvalidArgument].
func ValidateSubject(subject string) error {
	if err := codec.CheckSubject(subject); err != nil {
		return fmt.Errorf("%w: %w", es.ErrInvalidArgument, err)
	}
	return nil
}
