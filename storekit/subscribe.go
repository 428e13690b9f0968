package storekit

import (
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/sqlcheck"
)

// ValidateSubscriptionName checks a subscription name: 1 to
// [es.MaxSubscriptionNameLength] bytes of UTF-8 without NUL.
func ValidateSubscriptionName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty subscription name", es.ErrInvalidArgument)
	case len(name) > es.MaxSubscriptionNameLength:
		return fmt.Errorf("%w: subscription name is %d bytes, more than %d", es.ErrInvalidArgument, len(name), es.MaxSubscriptionNameLength)
	case !sqlcheck.Text(name):
		return fmt.Errorf("%w: subscription name contains a NUL byte or invalid UTF-8", es.ErrInvalidArgument)
	}
	return nil
}
