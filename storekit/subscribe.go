package storekit

import (
	"fmt"
	"slices"
	"time"

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

// Options returns the options of a subscription (opts may be nil) with
// every unset field set to its default, and its filters copied, or an
// error wrapping [es.ErrInvalidArgument] for the first bad option.
func Options(opts *es.SubscribeOpts) (es.SubscribeOpts, error) {
	var o es.SubscribeOpts
	if opts != nil {
		o = *opts
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 100
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = 100 * time.Millisecond
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = time.Second
	}
	o.Categories = slices.Clone(o.Categories)
	o.EventTypes = slices.Clone(o.EventTypes)

	bad := func(format string, args ...any) (es.SubscribeOpts, error) {
		return es.SubscribeOpts{}, fmt.Errorf("%w: subscription options: "+format, append([]any{es.ErrInvalidArgument}, args...)...)
	}
	switch {
	case o.Start != es.StartFromBeginning && o.Start != es.StartFromEnd:
		return bad("unknown Start %d", int(o.Start))
	case o.BatchSize < 1 || o.BatchSize > 1_000_000:
		return bad("BatchSize must be between 1 and 1000000, got %d", o.BatchSize)
	case o.CheckpointEvery < 1:
		return bad("CheckpointEvery must be positive, got %d", o.CheckpointEvery)
	case o.HandlerRetries < 0:
		return bad("HandlerRetries must not be negative, got %d", o.HandlerRetries)
	case o.CheckpointInterval < 0:
		return bad("CheckpointInterval must not be negative, got %v", o.CheckpointInterval)
	case o.RetryBackoff < 0:
		return bad("RetryBackoff must not be negative, got %v", o.RetryBackoff)
	case o.OnFailure != es.StopOnFailure && o.OnFailure != es.ParkOnFailure:
		return bad("unknown OnFailure %d", int(o.OnFailure))
	case o.Partitions < 0 || o.Partitions > es.MaxPartitions:
		return bad("Partitions must be between 0 and %d, got %d", es.MaxPartitions, o.Partitions)
	case o.ProgressInterval < 0:
		return bad("ProgressInterval must not be negative, got %v", o.ProgressInterval)
	case slices.Contains(o.Categories, ""):
		return bad("empty category")
	case slices.Contains(o.EventTypes, ""):
		return bad("empty event type")
	}
	return o, nil
}

// Matches reports whether the filters of o keep e.
func Matches(o *es.SubscribeOpts, e *es.Event) bool {
	return (len(o.Categories) == 0 || slices.Contains(o.Categories, e.Category())) &&
		(len(o.EventTypes) == 0 || slices.Contains(o.EventTypes, e.Type))
}

// RetryWait returns how long to wait before handing an event to the
// handler again after its attempt-th failure: o.RetryBackoff doubled for
// each earlier failure, at most a minute.
func RetryWait(o *es.SubscribeOpts, attempt int) time.Duration {
	d := o.RetryBackoff
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
