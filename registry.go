package es

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/pgevent/es/internal/codec"
	"github.com/pgevent/es/internal/sqlcheck"
)

// Registry maps stable event type names to Go struct types and encodes and
// decodes events with msgpack. There is no global registry: create one with
// [NewRegistry], register every event type (and upcaster) at start-up, then
// share it. All methods are safe for concurrent use; registration takes a
// lock, so registering while other goroutines decode is safe but rarely
// useful.
//
// # Encoding
//
// Events are msgpack maps keyed by field name: the Go field name unless a
// `msgpack:"name"` tag says otherwise, as msgpack/v5 does by default.
// `msgpack:"-"` skips a field, `msgpack:",omitempty"` omits an empty one,
// anonymous struct fields are inlined. Other msgpack tag options (as_array,
// inline on named fields) and embedded struct pointers are refused at
// registration. Integers are written in their most compact msgpack form and
// decode into any Go integer type they fit.
//
// Three types are encoded by the registry itself rather than by msgpack's
// defaults, without touching msgpack's process-global type table:
//
//   - uuid.UUID (github.com/google/uuid) is written as its canonical
//     36-character lowercase string ("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
//     so that the SQL function msgpack_to_jsonb shows it readably. Decoding
//     accepts that string (or any form uuid.Parse accepts), msgpack's default
//     16-byte binary form, and nil (the zero UUID). This applies wherever a
//     UUID appears inside the event: fields, pointers, slices, arrays, map
//     keys and values, nested structs. It does not apply inside values that
//     choose their own encoding (msgpack.CustomEncoder, Marshaler,
//     encoding.BinaryMarshaler or TextMarshaler) nor inside interface-typed
//     fields (any), which msgpack encodes itself (a UUID there becomes 16
//     raw bytes).
//   - time.Time is written with the msgpack timestamp extension (type -1)
//     with full nanosecond precision; the zero time is written as nil.
//     Decoded times are the same instant, always in time.UTC (the original
//     Location is not stored), so compare them with time.Time.Equal or
//     convert the original with UTC().
//   - []byte is written as msgpack bin and decodes to the same bytes (a nil
//     slice decodes to nil, an empty one to an empty one).
//
// # Personal data
//
// Three es tags on the fields of an event type make crypto-shredding
// possible (see [Registry.SetKeyring], [Keyring] and the README section
// "Deleting and forgetting"):
//
//   - `es:"personal"`: the field's value is encrypted (AES-256-GCM, a random
//     nonce per value) with the key of the event's data subject and stored
//     as one msgpack extension value (type 80) that holds the subject id in
//     the clear; SQL's msgpack_to_jsonb shows it as {"personal":
//     "encrypted", "subject": "<id>"}. An empty value (zero, or an empty
//     string, slice or map) is written in the clear: it hides nothing.
//   - `es:"subject"` (a string or a uuid.UUID field, at most one): names the
//     subject. When absent or empty, the subject is the one the encoding is
//     for ([EncodeOpts.Subject]; a [Repository] encodes for the aggregate's
//     stream id), else encoding fails with [ErrInvalidArgument].
//   - `es:"erased"` (a bool or a []string field, never stored): set on
//     decoding when personal fields could not be decrypted because their
//     subject was forgotten (the []string lists them, by stored name). Such
//     fields decode to their zero value; decoding is not an error.
//
// The tags go on the event type's own fields (and those of its embedded
// structs); an es tag on a field of a nested struct is refused at
// registration. A personal field may hold any value the codec encodes
// (a struct, a slice, a time): the whole value is encrypted. A value stored
// in the clear (before the field was tagged, or appended from SQL) still
// decodes, and is not erased by forgetting.
type Registry struct {
	mu        sync.RWMutex
	byName    map[string]*eventType
	byType    map[reflect.Type]*eventType
	upcasters map[upcasterKey]upcaster
	keys      *keyring // nil until SetKeyring (personal.go)
}

// eventType is one registered event type with its compiled codec.
type eventType struct {
	name    string
	version int // the schema version events of the type are written in
	typ     reflect.Type
	codec   *codec.Codec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		byName:    map[string]*eventType{},
		byType:    map[reflect.Type]*eventType{},
		upcasters: map[upcasterKey]upcaster{},
	}
}

// Register maps the type name name to the struct type T at schema version
// 1: [RegisterWith] with no options.
func Register[T any](r *Registry, name string) error {
	return RegisterWith[T](r, name, nil)
}

// RegisterOpts shapes a [RegisterWith] call. A nil *RegisterOpts is the
// zero value.
type RegisterOpts struct {
	// SchemaVersion is the version of the name's shape that T is, from 1
	// to [MaxSchemaVersion]. Events of T are appended with it; stored
	// events of the name at a lower version are upcast to it by the
	// upcasters registered for each older version
	// ([Registry.RegisterUpcasterWith]), and one at a higher version (from
	// newer code) is an error. Raise it when the shape changes under the
	// same name. Defaults to 1 (0).
	SchemaVersion int
}

// RegisterWith maps the type name name to the struct type T, at the schema
// version opts.SchemaVersion. Events of type T (or *T) encode under name and
// that version, and stored events of type name decode into a T (those of an
// older version through upcasters).
//
// It returns an error wrapping [ErrInvalidArgument] for an empty name, a
// name already registered, a name with an upcaster from a version at or
// above opts.SchemaVersion, a schema version out of range, a type already
// registered under another name, a T that is not a struct, or a struct the
// codec cannot handle. The codec of T is compiled once, here.
func RegisterWith[T any](r *Registry, name string, opts *RegisterOpts) error {
	t := reflect.TypeFor[T]()
	version := 1
	if opts != nil && opts.SchemaVersion != 0 {
		version = opts.SchemaVersion
	}
	if version < 1 || version > MaxSchemaVersion {
		return fmt.Errorf("%w: registering %q: schema version %d is not between 1 and %d", ErrInvalidArgument, name, version, MaxSchemaVersion)
	}
	if name == "" {
		return fmt.Errorf("%w: registering %s: empty event type name", ErrInvalidArgument, t)
	}
	if !sqlcheck.Text(name) {
		return fmt.Errorf("%w: registering %s: event type name %q contains a NUL byte or invalid UTF-8", ErrInvalidArgument, t, name)
	}
	if t.Kind() != reflect.Struct {
		return fmt.Errorf("%w: registering %q: %s is not a struct type", ErrInvalidArgument, name, t)
	}
	c, err := codec.Build(t)
	if err != nil {
		return fmt.Errorf("%w: registering %q: %w", ErrInvalidArgument, name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if et, ok := r.byName[name]; ok {
		return fmt.Errorf("%w: event type name %q is already registered for %s", ErrInvalidArgument, name, et.typ)
	}
	for k := range r.upcasters {
		if k.name == name && k.version >= version {
			return fmt.Errorf("%w: event type name %q has an upcaster from schema version %d; the version it is registered at (%d) must be above it",
				ErrInvalidArgument, name, k.version, version)
		}
	}
	if et, ok := r.byType[t]; ok {
		return fmt.Errorf("%w: %s is already registered as %q", ErrInvalidArgument, t, et.name)
	}
	et := &eventType{name: name, version: version, typ: t, codec: c}
	r.byName[name] = et
	r.byType[t] = et
	return nil
}

// lookupValue finds the registered type of event (a T or a *T) and returns
// an addressable value of T.
func (r *Registry) lookupValue(event any) (*eventType, reflect.Value, error) {
	v := reflect.ValueOf(event)
	if !v.IsValid() {
		return nil, reflect.Value{}, fmt.Errorf("%w: nil event", ErrInvalidArgument)
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, reflect.Value{}, fmt.Errorf("%w: nil %s event", ErrInvalidArgument, v.Type())
		}
		v = v.Elem()
	}
	r.mu.RLock()
	et, ok := r.byType[v.Type()]
	r.mu.RUnlock()
	if !ok {
		return nil, reflect.Value{}, fmt.Errorf("%w: event type %s is not registered", ErrInvalidArgument, v.Type())
	}
	if !v.CanAddr() {
		// Fields whose msgpack methods have pointer receivers need an
		// addressable value.
		p := reflect.New(v.Type()).Elem()
		p.Set(v)
		v = p
	}
	return et, v, nil
}

// TypeName returns the name event's type (T or *T) is registered under, or
// an error wrapping [ErrInvalidArgument] when it is not registered.
func (r *Registry) TypeName(event any) (string, error) {
	et, _, err := r.lookupValue(event)
	if err != nil {
		return "", err
	}
	return et.name, nil
}

// SchemaVersion returns the schema version the type name is registered at,
// or 0 when no type is registered under name.
func (r *Registry) SchemaVersion(name string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if et, ok := r.byName[name]; ok {
		return et.version
	}
	return 0
}

// Encode returns the registered type name of event (a registered T or *T)
// and its msgpack encoding, in the shape of the schema version the type is
// registered at ([Registry.SchemaVersion]): a [NewEvent] built from them
// must carry that version; [Registry.NewEvent] sets it. An unregistered
// type is an error wrapping [ErrInvalidArgument] that names the Go type.
//
// An event with personal fields is encrypted with the registry's keyring
// for the subject the event names (see [Registry.EncodeContext], which
// takes a context and a subject for events that name none).
func (r *Registry) Encode(event any) (name string, data []byte, err error) {
	et, data, _, err := r.encode(context.Background(), event, "")
	if err != nil {
		return "", nil, err
	}
	return et.name, data, nil
}

// NewEvent encodes event and md into a [NewEvent] ready to append, with the
// schema version the event's type is registered at and a zero ID (the
// store picks one). A nil md gives nil metadata.
func (r *Registry) NewEvent(event any, md *Metadata) (NewEvent, error) {
	return r.NewEventContext(context.Background(), event, md, nil)
}

// DecodeOpts shapes a [Registry.DecodeWith] call. A nil *DecodeOpts is the
// zero value.
type DecodeOpts struct {
	// AllowUnknown returns a [RawEvent] instead of an error for an event
	// the registry does not know: one whose type (after upcasting) is not
	// registered (an *[UnknownEventTypeError]), and one whose schema
	// version is above the version its type is registered at (a
	// *[SchemaVersionError] matching [ErrSchemaVersionAhead]: written by
	// newer code). A missing upcaster ([ErrMissingUpcaster]) is an error
	// still. Defaults to false.
	AllowUnknown bool
}

// RawEvent is what [Registry.DecodeWith] returns, with
// [DecodeOpts.AllowUnknown], for an event of an unregistered type or of a
// schema version above the registered one: the stored event, untouched
// (its Type, SchemaVersion and Data are as stored, not upcast).
type RawEvent struct {
	Event
}

// Decode upcasts e (see [Registry.RegisterUpcasterWith]) to the schema
// version its type is registered at and decodes it into a value of its
// registered type T (a T, not a *T).
//
// An unregistered type is an *[UnknownEventTypeError] (errors.Is(err,
// [ErrUnknownEventType])); a schema version the registry cannot bring to
// the registered one is a *[SchemaVersionError] (errors.Is(err,
// [ErrSchemaVersionAhead]) for one above it, [ErrMissingUpcaster] for one
// below it without an upcaster); an upcaster's error or an upcaster loop
// ([ErrUpcasterLoop]) is wrapped with the event's stream and version.
func (r *Registry) Decode(e Event) (any, error) {
	return r.DecodeWith(e, nil)
}

// DecodeWith is [Registry.Decode] with options: with opts.AllowUnknown, an
// event of an unregistered type, or of a schema version above the
// registered one, is returned as a [RawEvent] and no error. Personal
// fields are decrypted as by [Registry.DecodeContext].
func (r *Registry) DecodeWith(e Event, opts *DecodeOpts) (any, error) {
	v, _, err := r.decode(context.Background(), e, opts)
	return v, err
}

// decode decodes e and returns the subjects whose personal fields it
// decrypted.
func (r *Registry) decode(ctx context.Context, e Event, opts *DecodeOpts) (any, []string, error) {
	name, version, data := e.Type, max(e.SchemaVersion, 1), e.Data
	r.mu.RLock()
	et, ok := r.byName[name]
	var hasUp bool
	if !ok || version != et.version {
		_, hasUp = r.upcasters[upcasterKey{name, version}]
	}
	r.mu.RUnlock()
	if hasUp {
		var err error
		name, version, data, err = r.upcast(name, version, data)
		if err != nil {
			return nil, nil, fmt.Errorf("es: upcasting event %q (stream %q, version %d): %w", e.Type, e.StreamID, e.Version, err)
		}
		r.mu.RLock()
		et, ok = r.byName[name]
		r.mu.RUnlock()
	}
	allowUnknown := opts != nil && opts.AllowUnknown
	if !ok {
		if allowUnknown {
			return RawEvent{Event: e}, nil, nil
		}
		return nil, nil, &UnknownEventTypeError{Type: name, StreamID: e.StreamID, Version: e.Version}
	}
	if version != et.version {
		if allowUnknown && version > et.version {
			return RawEvent{Event: e}, nil, nil
		}
		return nil, nil, &SchemaVersionError{Type: name, SchemaVersion: version, RegisteredVersion: et.version,
			StreamID: e.StreamID, Version: e.Version}
	}
	v := reflect.New(et.typ).Elem()
	var subjects []string
	if len(data) > 0 {
		var err error
		if et.codec.Personal() {
			subjects, err = r.decodePersonal(ctx, et, data, v)
		} else {
			err = et.codec.Decode(data, v)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("es: decoding event %q (stream %q, version %d): %w", name, e.StreamID, e.Version, err)
		}
	}
	return v.Interface(), subjects, nil
}
