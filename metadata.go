package es

import (
	"context"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Metadata is what an event carries besides its body: correlation and
// causation ids and free-form headers. It is stored as a msgpack map with
// the keys "correlation_id", "causation_id" and "headers" (each omitted when
// empty), so SQL can read it as jsonb.
type Metadata struct {
	// CorrelationID ties together every event caused, directly or not, by
	// one original request or message.
	CorrelationID string `msgpack:"correlation_id,omitempty"`
	// CausationID is the id of the message or event that caused this one.
	CausationID string `msgpack:"causation_id,omitempty"`
	// Headers are free-form string pairs.
	Headers map[string]string `msgpack:"headers,omitempty"`
}

// IsZero reports whether m carries nothing.
func (m Metadata) IsZero() bool {
	return m.CorrelationID == "" && m.CausationID == "" && len(m.Headers) == 0
}

// EncodeMetadata encodes md as a msgpack map. A nil md encodes as nil (no
// metadata); a non-nil md is encoded even when empty.
func EncodeMetadata(md *Metadata) ([]byte, error) {
	if md == nil {
		return nil, nil
	}
	b, err := msgpack.Marshal(md)
	if err != nil {
		return nil, fmt.Errorf("es: encoding metadata: %w", err)
	}
	return b, nil
}

// DecodeMetadata decodes metadata written by [EncodeMetadata]. Nil or empty
// bytes (and a msgpack nil) decode to the zero Metadata. Unknown keys are
// ignored.
func DecodeMetadata(b []byte) (Metadata, error) {
	var m Metadata
	if len(b) == 0 {
		return m, nil
	}
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return Metadata{}, fmt.Errorf("es: decoding metadata: %w", err)
	}
	return m, nil
}

// Meta decodes the event's metadata (the zero Metadata when it has none).
func (e Event) Meta() (Metadata, error) {
	m, err := DecodeMetadata(e.Metadata)
	if err != nil {
		return Metadata{}, fmt.Errorf("%w (stream %q, version %d)", err, e.StreamID, e.Version)
	}
	return m, nil
}

type metadataKey struct{}

// WithMetadata returns a copy of ctx carrying md, so that code further down
// (a repository saving an aggregate, for example) can attach it to every
// event it appends. The Headers map is shared, not copied: do not modify it
// afterwards.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, md)
}

// MetadataFrom returns the metadata set on ctx by [WithMetadata], and
// whether there was any.
func MetadataFrom(ctx context.Context) (Metadata, bool) {
	md, ok := ctx.Value(metadataKey{}).(Metadata)
	return md, ok
}
