package es_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
)

type regAddress struct {
	Street string
	Zip    *string
}

type regEmbedded struct {
	TraceID uuid.UUID
	Note    string
}

type regWide struct {
	regEmbedded
	ID        uuid.UUID
	OptID     *uuid.UUID
	NilID     *uuid.UUID
	IDs       []uuid.UUID
	ByID      map[uuid.UUID]int
	At        time.Time
	AtPtr     *time.Time
	Zero      time.Time
	Times     []time.Time
	Raw       []byte
	EmptyRaw  []byte
	NilRaw    []byte
	Fixed     [4]byte
	I         int
	I8        int8
	I16       int16
	I32       int32
	I64       int64
	U         uint
	U8        uint8
	U16       uint16
	U32       uint32
	U64       uint64
	F32       float32
	F64       float64
	B         bool
	S         string
	Renamed   string `msgpack:"renamed_field"`
	Skipped   string `msgpack:"-"`
	Omitted   string `msgpack:",omitempty"`
	Addr      regAddress
	AddrPtr   *regAddress
	Addrs     []regAddress
	Tags      map[string]string
	Counts    map[string]int64
	Nested    map[string][]uuid.UUID
	Strs      []string
	NilSlice  []int
	Empty     []int
	Any       any
	Dur       time.Duration
	unexposed int
}

func TestRegistryRoundTrip(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, es.Register[regWide](r, "wide"))

	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, loc)
	later := at.Add(time.Hour + 1)
	id, opt, trace := uuid.New(), uuid.New(), uuid.New()
	zip := "75001"
	in := regWide{
		regEmbedded: regEmbedded{TraceID: trace, Note: "embedded"},
		ID:          id,
		OptID:       &opt,
		IDs:         []uuid.UUID{id, opt},
		ByID:        map[uuid.UUID]int{id: 1, opt: 2},
		At:          at,
		AtPtr:       &later,
		Times:       []time.Time{at, later},
		Raw:         []byte{0, 1, 2, 0xff},
		EmptyRaw:    []byte{},
		Fixed:       [4]byte{9, 8, 7, 6},
		I:           -1 << 40, I8: -128, I16: -32768, I32: -1 << 31, I64: -1 << 63,
		U: 1 << 40, U8: 255, U16: 65535, U32: 1<<32 - 1, U64: 1<<64 - 1,
		F32: 1.5, F64: 3.141592653589793,
		B: true, S: "héllo ✓",
		Renamed: "r", Skipped: "dropped",
		Addr:    regAddress{Street: "rue", Zip: &zip},
		AddrPtr: &regAddress{Street: "ptr"},
		Addrs:   []regAddress{{Street: "a"}, {Street: "b"}},
		Tags:    map[string]string{"k": "v"},
		Counts:  map[string]int64{"n": 1 << 50},
		Nested:  map[string][]uuid.UUID{"x": {trace}},
		Strs:    []string{"a", ""},
		Empty:   []int{},
		Any:     "anything",
		Dur:     1500 * time.Millisecond,
	}

	for _, ev := range []any{in, &in} {
		name, data, err := r.Encode(ev)
		require.NoError(t, err)
		require.Equal(t, "wide", name)

		got, err := r.Decode(es.Event{Type: name, Data: data, StreamID: "wide-1", Version: 1})
		require.NoError(t, err)
		out, ok := got.(regWide)
		require.True(t, ok, "Decode returns a value of the registered type, got %T", got)

		// Times: the same instant with nanoseconds, in UTC.
		require.True(t, in.At.Equal(out.At))
		require.Equal(t, time.UTC, out.At.Location())
		require.Equal(t, 123456789, out.At.Nanosecond())
		require.True(t, later.Equal(*out.AtPtr))
		require.True(t, out.Zero.IsZero())

		want := in
		want.Skipped = ""
		laterUTC := later.UTC()
		want.At, want.AtPtr = at.UTC(), &laterUTC
		want.Times = []time.Time{at.UTC(), later.UTC()}
		require.Equal(t, want, out)
		require.Nil(t, out.NilRaw)
		require.NotNil(t, out.EmptyRaw)
		require.Nil(t, out.NilID)
	}

	// The wire format: map keys are field names (or tags), UUIDs are
	// canonical strings, the embedded struct is inlined.
	_, data, err := r.Encode(in)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, msgpack.Unmarshal(data, &m))
	require.Equal(t, id.String(), m["ID"])
	require.Equal(t, trace.String(), m["TraceID"])
	require.Equal(t, []any{id.String(), opt.String()}, m["IDs"])
	require.Equal(t, "r", m["renamed_field"])
	require.NotContains(t, m, "Renamed")
	require.NotContains(t, m, "Skipped")
	require.NotContains(t, m, "Omitted")
	require.NotContains(t, m, "unexposed")
	require.Equal(t, []byte{0, 1, 2, 0xff}, m["Raw"])
}

func TestRegistryDecodesBinaryUUIDs(t *testing.T) {
	t.Parallel()
	type withID struct{ ID uuid.UUID }
	r := es.NewRegistry()
	require.NoError(t, es.Register[withID](r, "with-id"))
	id := uuid.New()
	// msgpack's default encoding of a UUID: 16 raw bytes.
	data, err := msgpack.Marshal(map[string]any{"ID": id[:]})
	require.NoError(t, err)
	got, err := r.Decode(es.Event{Type: "with-id", Data: data})
	require.NoError(t, err)
	require.Equal(t, withID{ID: id}, got)

	data, err = msgpack.Marshal(map[string]any{"ID": "not a uuid"})
	require.NoError(t, err)
	_, err = r.Decode(es.Event{Type: "with-id", Data: data, StreamID: "s-1", Version: 3})
	require.ErrorContains(t, err, "s-1")
	require.ErrorContains(t, err, "uuid")
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	type a struct{ X int }
	type b struct{ Y int }
	type withAsArray struct {
		ID uuid.UUID `msgpack:",as_array"`
	}
	type embedsPtr struct {
		*regAddress
	}
	r := es.NewRegistry()
	require.NoError(t, es.Register[a](r, "a"))

	for name, err := range map[string]error{
		"empty name":   es.Register[b](r, ""),
		"name twice":   es.Register[b](r, "a"),
		"two names":    es.Register[a](r, "a2"),
		"not a struct": es.Register[int](r, "int"),
		"pointer":      es.Register[*b](r, "ptr"),
		"tag option":   es.Register[withAsArray](r, "as-array"),
		"embedded ptr": es.Register[embedsPtr](r, "embeds-ptr"),
	} {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
	require.ErrorContains(t, es.Register[a](r, "a2"), `already registered as "a"`)
	// A failed registration leaves nothing behind.
	require.NoError(t, es.Register[b](r, "b"))
}

func TestRegistryConcurrentUse(t *testing.T) {
	t.Parallel()
	type ev struct{ N int }
	r := es.NewRegistry()
	require.NoError(t, es.Register[ev](r, "ev"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				name, data, err := r.Encode(ev{N: i*1000 + j})
				if !assertNoErr(t, err) {
					return
				}
				got, err := r.Decode(es.Event{Type: name, Data: data})
				if !assertNoErr(t, err) || got != (ev{N: i*1000 + j}) {
					t.Errorf("got %v", got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestEncodeUnregistered(t *testing.T) {
	t.Parallel()
	type notRegistered struct{ X int }
	r := es.NewRegistry()
	_, _, err := r.Encode(notRegistered{})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "es_test.notRegistered")

	_, err = r.NewEvent(&notRegistered{}, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	_, _, err = r.Encode(nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, _, err = r.Encode((*notRegistered)(nil))
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

func TestDecodeUnknownType(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	e := es.Event{ID: uuid.New(), StreamID: "order-42", Version: 7, Type: "OrderVanished", Data: []byte{0x80}}

	_, err := r.Decode(e)
	require.ErrorIs(t, err, es.ErrUnknownEventType)
	var unknown *es.UnknownEventTypeError
	require.True(t, errors.As(err, &unknown))
	require.Equal(t, es.UnknownEventTypeError{Type: "OrderVanished", StreamID: "order-42", Version: 7}, *unknown)
	require.ErrorContains(t, err, "OrderVanished")
	require.ErrorContains(t, err, "order-42")

	got, err := r.DecodeWith(e, &es.DecodeOpts{AllowUnknown: true})
	require.NoError(t, err)
	raw, ok := got.(es.RawEvent)
	require.True(t, ok)
	require.Equal(t, e, raw.Event)
	require.Equal(t, "OrderVanished", raw.Type)
}

func TestRegistryNewEvent(t *testing.T) {
	t.Parallel()
	type placed struct{ OrderID string }
	r := es.NewRegistry()
	require.NoError(t, es.Register[placed](r, "OrderPlaced"))

	ne, err := r.NewEvent(placed{OrderID: "o1"}, nil)
	require.NoError(t, err)
	require.Equal(t, "OrderPlaced", ne.Type)
	require.Nil(t, ne.Metadata)
	require.Equal(t, uuid.Nil, ne.ID)

	md := &es.Metadata{CorrelationID: "c", Headers: map[string]string{"user": "ann"}}
	ne, err = r.NewEvent(&placed{OrderID: "o2"}, md)
	require.NoError(t, err)
	got, err := es.Event{Type: ne.Type, Data: ne.Data, Metadata: ne.Metadata}.Meta()
	require.NoError(t, err)
	require.Equal(t, *md, got)
	v, err := r.Decode(es.Event{Type: ne.Type, Data: ne.Data})
	require.NoError(t, err)
	require.Equal(t, placed{OrderID: "o2"}, v)

	name, err := r.TypeName(&placed{})
	require.NoError(t, err)
	require.Equal(t, "OrderPlaced", name)
}

func TestDecodeCorruptData(t *testing.T) {
	t.Parallel()
	type ev struct{ N int }
	r := es.NewRegistry()
	require.NoError(t, es.Register[ev](r, "ev"))
	_, err := r.Decode(es.Event{Type: "ev", Data: []byte{0x81, 0xa1}, StreamID: "s", Version: 2})
	require.Error(t, err)
	require.ErrorContains(t, err, fmt.Sprintf("version %d", 2))
	// An empty body decodes to the zero value.
	got, err := r.Decode(es.Event{Type: "ev"})
	require.NoError(t, err)
	require.Equal(t, ev{}, got)
}

type regNode struct {
	ID       uuid.UUID
	Children []regNode
	Next     *regNode
}

func TestRegistryRecursiveType(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, es.Register[regNode](r, "node"))
	in := regNode{ID: uuid.New(), Children: []regNode{{ID: uuid.New()}}, Next: &regNode{ID: uuid.New()}}
	name, data, err := r.Encode(in)
	require.NoError(t, err)
	got, err := r.Decode(es.Event{Type: name, Data: data})
	require.NoError(t, err)
	require.Equal(t, in, got)

	var m map[string]any
	require.NoError(t, msgpack.Unmarshal(data, &m))
	require.Equal(t, in.Next.ID.String(), m["Next"].(map[string]any)["ID"])
}

func TestDecodeTimeFromRFC3339String(t *testing.T) {
	t.Parallel()
	type ev struct{ At time.Time }
	r := es.NewRegistry()
	require.NoError(t, es.Register[ev](r, "ev"))
	// {"At": "2026-12-06T10:11:12.5+01:00"}: a time as an event written
	// from SQL in JSON carries it.
	data, err := msgpack.Marshal(map[string]any{"At": "2026-12-06T10:11:12.5+01:00"})
	require.NoError(t, err)
	got, err := r.Decode(es.Event{Type: "ev", Data: data})
	require.NoError(t, err)
	require.Equal(t, ev{At: time.Date(2026, 12, 6, 9, 11, 12, 500_000_000, time.UTC)}, got)
	// Not a time: an error, not a zero time.
	data, err = msgpack.Marshal(map[string]any{"At": "yesterday"})
	require.NoError(t, err)
	_, err = r.Decode(es.Event{Type: "ev", Data: data})
	require.Error(t, err)
}
