package es

import (
	"fmt"

	"github.com/pgevent/es/internal/codec"
)

// Upcaster turns the body of a stored event of an old type name (decoded
// into a generic map, as msgpack decodes it: strings, int64/uint64 and
// narrower integers, float32/float64, bool, []byte, time.Time, []any,
// map[string]any) into the body of a newer one. It returns the new type
// name (which may be the same name only if that leads elsewhere — a name
// already seen in the chain is a loop), and the new body. It may rename the
// type, add fields with defaults, rename or remove fields, and modify fields
// in place; values it adds are encoded like event fields (a uuid.UUID as its
// canonical string, a time.Time as a timestamp).
//
// Upcasters chain: if the returned name has an upcaster too, it runs next,
// until the name is a registered type (or unknown).
type Upcaster func(fields map[string]any) (to string, out map[string]any, err error)

// RegisterUpcaster registers fn to upcast stored events of the old type name
// from. It returns an error wrapping [ErrInvalidArgument] for an empty name,
// a nil fn, a name that is a registered (current) type, or a name that
// already has an upcaster.
func (r *Registry) RegisterUpcaster(from string, fn Upcaster) error {
	if from == "" {
		return fmt.Errorf("%w: registering an upcaster: empty event type name", ErrInvalidArgument)
	}
	if fn == nil {
		return fmt.Errorf("%w: registering an upcaster for %q: nil upcaster", ErrInvalidArgument, from)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if et, ok := r.byName[from]; ok {
		return fmt.Errorf("%w: %q is the registered type %s; upcasters are for old type names", ErrInvalidArgument, from, et.typ)
	}
	if _, ok := r.upcasters[from]; ok {
		return fmt.Errorf("%w: event type name %q already has an upcaster", ErrInvalidArgument, from)
	}
	r.upcasters[from] = fn
	return nil
}

// upcast runs the chain of upcasters starting at name and returns the final
// name and the re-encoded body.
func (r *Registry) upcast(name string, data []byte) (string, []byte, error) {
	fields, err := codec.DecodeMap(data)
	if err != nil {
		return "", nil, fmt.Errorf("decoding %q as a map: %w", name, err)
	}
	seen := []string{name}
	for {
		r.mu.RLock()
		fn, ok := r.upcasters[name]
		r.mu.RUnlock()
		if !ok {
			break
		}
		to, out, err := fn(fields)
		if err != nil {
			return "", nil, fmt.Errorf("upcaster for %q: %w", name, err)
		}
		if to == "" {
			return "", nil, fmt.Errorf("upcaster for %q returned an empty type name", name)
		}
		for _, s := range seen {
			if s == to {
				return "", nil, fmt.Errorf("%w: %v -> %q", ErrUpcasterLoop, seen, to)
			}
		}
		seen = append(seen, to)
		name, fields = to, out
		if fields == nil {
			fields = map[string]any{}
		}
	}
	data, err = codec.EncodeMap(fields)
	if err != nil {
		return "", nil, fmt.Errorf("encoding the upcast %q: %w", name, err)
	}
	return name, data, nil
}
