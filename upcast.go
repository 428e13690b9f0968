package es

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pgevent/es/internal/codec"
)

// Upcaster turns the body of a stored event of an older shape (decoded
// into a generic map, as msgpack decodes it: strings, int64/uint64 and
// narrower integers, float32/float64, bool, []byte, time.Time, []any,
// map[string]any) into the body of a newer one. It returns the type name
// of the result — the name it upcasts, to change the shape under the same
// name, or another name, to rename the type — and the new body. It may add
// fields with defaults, rename or remove fields, and modify fields in
// place; values it adds are encoded like event fields (a uuid.UUID as its
// canonical string, a time.Time as a timestamp). An encrypted personal
// field appears as an [Encrypted] value, which it may move to another name
// or drop: the registry decrypts it after the upcast.
//
// Upcasters chain: an upcaster is registered for one type name and schema
// version ([Registry.RegisterUpcasterWith]), and its result has a name and
// a version too; if an upcaster is registered for those, it runs next,
// until the result is at the version its type is registered at.
type Upcaster func(fields map[string]any) (to string, out map[string]any, err error)

// UpcasterOpts says which stored events an upcaster takes, and which schema
// version its result is at. A nil *UpcasterOpts is the zero value.
type UpcasterOpts struct {
	// FromVersion is the schema version of the stored events of the
	// upcaster's type name that it upcasts. Defaults to 1 (0).
	FromVersion int
	// ToVersion is the schema version of the body the upcaster returns.
	// When the upcaster returns the name it upcasts, it must be above
	// FromVersion. Defaults (0) to FromVersion + 1 when the upcaster
	// returns the name it upcasts, and to FromVersion when it returns
	// another name (a rename keeps the version).
	ToVersion int
}

// upcasterKey names the stored events an upcaster takes.
type upcasterKey struct {
	name    string
	version int
}

type upcaster struct {
	fn Upcaster
	to int // ToVersion; 0: the default
}

// RegisterUpcaster registers fn to upcast stored events of the type name
// from at schema version 1: [Registry.RegisterUpcasterWith] with no
// options. Every event stored before es had schema versions is at version
// 1.
func (r *Registry) RegisterUpcaster(from string, fn Upcaster) error {
	return r.RegisterUpcasterWith(from, fn, nil)
}

// RegisterUpcasterWith registers fn to upcast the stored events of the type
// name from at the schema version opts.FromVersion. For a name whose shape
// changed under the same name, register one upcaster per old version
// (1 → 2, 2 → 3, ...) and the type itself at the newest version
// ([RegisterWith]); for a renamed type, register an upcaster for the old
// name that returns the new one. Both combine: "Old" version 1 can become
// "New" version 2, which an upcaster for "New" version 2 takes to version
// 3.
//
// It returns an error wrapping [ErrInvalidArgument] for an empty name, a
// nil fn, a version out of range, a name registered at a version at or
// below opts.FromVersion (its current version, or one newer code writes,
// cannot be upcast), or a name and version that already have an upcaster.
func (r *Registry) RegisterUpcasterWith(from string, fn Upcaster, opts *UpcasterOpts) error {
	var o UpcasterOpts
	if opts != nil {
		o = *opts
	}
	if o.FromVersion == 0 {
		o.FromVersion = 1
	}
	if from == "" {
		return fmt.Errorf("%w: registering an upcaster: empty event type name", ErrInvalidArgument)
	}
	if fn == nil {
		return fmt.Errorf("%w: registering an upcaster for %q: nil upcaster", ErrInvalidArgument, from)
	}
	if o.FromVersion < 1 || o.FromVersion > MaxSchemaVersion || o.ToVersion < 0 || o.ToVersion > MaxSchemaVersion {
		return fmt.Errorf("%w: registering an upcaster for %q: schema versions %d -> %d are not between 1 and %d",
			ErrInvalidArgument, from, o.FromVersion, o.ToVersion, MaxSchemaVersion)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if et, ok := r.byName[from]; ok && et.version <= o.FromVersion {
		return fmt.Errorf("%w: %q is the registered type %s at schema version %d; upcasters are for older versions (from version %d given)",
			ErrInvalidArgument, from, et.typ, et.version, o.FromVersion)
	}
	k := upcasterKey{from, o.FromVersion}
	if _, ok := r.upcasters[k]; ok {
		return fmt.Errorf("%w: event type name %q already has an upcaster from schema version %d", ErrInvalidArgument, from, o.FromVersion)
	}
	r.upcasters[k] = upcaster{fn: fn, to: o.ToVersion}
	return nil
}

// upcast runs the chain of upcasters starting at name and version and
// returns the final name and version and the re-encoded body. The body is
// decoded and encoded once, however long the chain.
func (r *Registry) upcast(name string, version int, data []byte) (string, int, []byte, error) {
	fields, err := codec.DecodeMap(data)
	if err != nil {
		return "", 0, nil, fmt.Errorf("decoding %q as a map: %w", name, err)
	}
	seen := []upcasterKey{{name, version}}
	for {
		r.mu.RLock()
		u, ok := r.upcasters[upcasterKey{name, version}]
		r.mu.RUnlock()
		if !ok {
			break
		}
		to, out, err := u.fn(fields)
		if err != nil {
			return "", 0, nil, fmt.Errorf("upcaster for %q (schema version %d): %w", name, version, err)
		}
		if to == "" {
			return "", 0, nil, fmt.Errorf("upcaster for %q (schema version %d) returned an empty type name", name, version)
		}
		toVersion := u.to
		switch {
		case toVersion == 0 && to == name:
			toVersion = version + 1
		case toVersion == 0:
			toVersion = version
		case to == name && toVersion <= version:
			return "", 0, nil, fmt.Errorf("upcaster for %q (schema version %d) returned the same name at version %d, not above",
				name, version, toVersion)
		}
		next := upcasterKey{to, toVersion}
		if slices.Contains(seen, next) {
			var path strings.Builder
			for _, k := range append(seen, next) {
				if path.Len() > 0 {
					path.WriteString(" -> ")
				}
				fmt.Fprintf(&path, "%q v%d", k.name, k.version)
			}
			return "", 0, nil, fmt.Errorf("%w: %s", ErrUpcasterLoop, path.String())
		}
		seen = append(seen, next)
		name, version, fields = to, toVersion, out
		if fields == nil {
			fields = map[string]any{}
		}
	}
	data, err = codec.EncodeMap(fields)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encoding the upcast %q: %w", name, err)
	}
	return name, version, data, nil
}
