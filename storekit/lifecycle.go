package storekit

import (
	"fmt"
	"strings"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/sqlcheck"
)

// ValidateTruncation checks a truncation point of a stream at version as
// SQL truncate_stream does: between 1 and version + 1.
func ValidateTruncation(streamID string, before, version int64) error {
	if before < 1 || before > version+1 {
		return fmt.Errorf("%w: truncating %q: the truncation point must be between 1 and the stream's version + 1 (%d), got %d",
			es.ErrInvalidArgument, streamID, version+1, before)
	}
	return nil
}

// ValidateRetentionPolicy checks a retention policy as SQL
// set_stream_retention and set_category_retention do: exactly one of
// StreamID and Category (a category without '-'), limits not negative.
func ValidateRetentionPolicy(p es.RetentionPolicy) error {
	switch {
	case (p.StreamID == "") == (p.Category == ""):
		return fmt.Errorf("%w: a retention policy names a stream or a category, not both nor neither", es.ErrInvalidArgument)
	case p.MaxCount < 0:
		return fmt.Errorf("%w: retention MaxCount %d is negative", es.ErrInvalidArgument, p.MaxCount)
	case p.MaxAge < 0:
		return fmt.Errorf("%w: retention MaxAge %v is negative", es.ErrInvalidArgument, p.MaxAge)
	}
	if p.StreamID != "" {
		return ValidateStreamID(p.StreamID)
	}
	if len(p.Category) > es.MaxStreamIDLength || strings.Contains(p.Category, "-") || !sqlcheck.Text(p.Category) {
		return fmt.Errorf("%w: category %q: a category is 1 to %d bytes of text without '-'", es.ErrInvalidArgument, p.Category, es.MaxStreamIDLength)
	}
	return nil
}

// ArchiveOptions returns opts with the defaults filled in, or an error
// wrapping [es.ErrInvalidArgument].
func ArchiveOptions(opts *es.ArchiveOpts) (es.ArchiveOpts, error) {
	var o es.ArchiveOpts
	if opts != nil {
		o = *opts
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.PartitionSize == 0 {
		o.PartitionSize = 1_000_000
	}
	if o.BatchSize < 1 || o.BatchSize > 1_000_000 {
		return o, fmt.Errorf("%w: ArchiveEvents BatchSize must be between 1 and 1000000, got %d", es.ErrInvalidArgument, o.BatchSize)
	}
	if o.PartitionSize < 1 || o.PartitionSize > 1_000_000_000 {
		return o, fmt.Errorf("%w: ArchiveEvents PartitionSize must be between 1 and 1000000000, got %d", es.ErrInvalidArgument, o.PartitionSize)
	}
	return o, nil
}

// RetentionOptions returns opts with the defaults filled in, or an error
// wrapping [es.ErrInvalidArgument].
func RetentionOptions(opts *es.ApplyRetentionOpts) (es.ApplyRetentionOpts, error) {
	var o es.ApplyRetentionOpts
	if opts != nil {
		o = *opts
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 100
	}
	if o.BatchSize < 1 || o.BatchSize > 1_000_000 || o.MaxStreams < 1 || o.MaxStreams > 1_000_000 {
		return o, fmt.Errorf("%w: ApplyRetention BatchSize and MaxStreams must be between 1 and 1000000, got %d and %d",
			es.ErrInvalidArgument, o.BatchSize, o.MaxStreams)
	}
	return o, nil
}
