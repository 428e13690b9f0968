package es_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// The history of one event: "ItemAdded" (v1: Sku, Qty, Comment) became
// "ItemAdded.v2" (ProductID instead of Sku, no Comment) and then
// "OrderItemAdded" (plus Currency, defaulting to "EUR").
type itemAddedV1 struct {
	Sku     string
	Qty     int
	Comment string
}

type itemAddedV2 struct {
	ProductID string
	Qty       int
}

type orderItemAdded struct {
	ProductID string
	Qty       int
	Currency  string
	AddedBy   uuid.UUID
	At        time.Time
}

var defaultUser = uuid.MustParse("00000000-0000-7000-8000-000000000001")

func itemUpcasters(t *testing.T, r *es.Registry) {
	t.Helper()
	require.NoError(t, r.RegisterUpcaster("ItemAdded", func(m map[string]any) (string, map[string]any, error) {
		m["ProductID"] = m["Sku"] // rename a field
		delete(m, "Sku")
		delete(m, "Comment") // remove a field
		return "ItemAdded.v2", m, nil
	}))
	require.NoError(t, r.RegisterUpcaster("ItemAdded.v2", func(m map[string]any) (string, map[string]any, error) {
		if _, ok := m["Currency"]; !ok {
			m["Currency"] = "EUR" // add a field with a default
		}
		m["AddedBy"] = defaultUser // values of any type the codec knows
		m["At"] = time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
		return "OrderItemAdded", m, nil
	}))
}

func TestUpcasterChain(t *testing.T) {
	t.Parallel()
	old := es.NewRegistry()
	require.NoError(t, es.Register[itemAddedV1](old, "ItemAdded"))
	require.NoError(t, es.Register[itemAddedV2](old, "ItemAdded.v2"))

	r := es.NewRegistry()
	require.NoError(t, es.Register[orderItemAdded](r, "OrderItemAdded"))
	itemUpcasters(t, r)

	want := orderItemAdded{ProductID: "sku-1", Qty: 3, Currency: "EUR", AddedBy: defaultUser,
		At: time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)}

	for _, ev := range []any{itemAddedV1{Sku: "sku-1", Qty: 3, Comment: "gone"}, itemAddedV2{ProductID: "sku-1", Qty: 3}} {
		name, data, err := old.Encode(ev)
		require.NoError(t, err)
		got, err := r.Decode(es.Event{Type: name, Data: data, StreamID: "order-1", Version: 1})
		require.NoError(t, err)
		require.Equal(t, want, got, "from %s", name)
	}

	// The current type is decoded directly, without upcasters.
	cur := orderItemAdded{ProductID: "p", Qty: 1, Currency: "USD"}
	name, data, err := r.Encode(cur)
	require.NoError(t, err)
	got, err := r.Decode(es.Event{Type: name, Data: data})
	require.NoError(t, err)
	require.Equal(t, cur, got)
}

func TestUpcasterToUnknownType(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, r.RegisterUpcaster("Old", func(m map[string]any) (string, map[string]any, error) {
		return "Missing", m, nil
	}))
	e := es.Event{Type: "Old", Data: []byte{0x80}, StreamID: "s-1", Version: 2}
	_, err := r.Decode(e)
	var unknown *es.UnknownEventTypeError
	require.ErrorAs(t, err, &unknown)
	require.Equal(t, "Missing", unknown.Type)

	got, err := r.DecodeWith(e, &es.DecodeOpts{AllowUnknown: true})
	require.NoError(t, err)
	require.Equal(t, es.RawEvent{Event: e}, got)
}

func TestUpcasterLoop(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	next := map[string]string{"A": "B", "B": "C", "C": "A"}
	for from, to := range next {
		require.NoError(t, r.RegisterUpcaster(from, func(m map[string]any) (string, map[string]any, error) {
			return to, m, nil
		}))
	}
	_, err := r.Decode(es.Event{Type: "A", Data: []byte{0x80}, StreamID: "loop-1", Version: 5})
	require.ErrorIs(t, err, es.ErrUpcasterLoop)
	require.ErrorContains(t, err, "loop-1")

	// A rename loop across versions: "X" v1 -> "Y" v2 -> "X" v1.
	require.NoError(t, r.RegisterUpcasterWith("X", func(m map[string]any) (string, map[string]any, error) {
		return "Y", m, nil
	}, &es.UpcasterOpts{ToVersion: 2}))
	require.NoError(t, r.RegisterUpcasterWith("Y", func(m map[string]any) (string, map[string]any, error) {
		return "X", m, nil
	}, &es.UpcasterOpts{FromVersion: 2, ToVersion: 1}))
	_, err = r.Decode(es.Event{Type: "X", Data: []byte{0x80}})
	require.ErrorIs(t, err, es.ErrUpcasterLoop)
	require.ErrorContains(t, err, `"X" v1 -> "Y" v2 -> "X" v1`)

	// An upcaster that keeps its name moves the version up (an upcaster
	// that returns its own name is no loop: it is the next version); one
	// told to stay at or below its version is an error.
	require.NoError(t, r.RegisterUpcasterWith("Self", func(m map[string]any) (string, map[string]any, error) {
		return "Self", m, nil
	}, &es.UpcasterOpts{FromVersion: 3, ToVersion: 3}))
	_, err = r.Decode(es.Event{Type: "Self", SchemaVersion: 3, Data: []byte{0x80}})
	require.ErrorContains(t, err, "not above")
}

func TestUpcasterError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	r := es.NewRegistry()
	require.NoError(t, r.RegisterUpcaster("Bad", func(map[string]any) (string, map[string]any, error) {
		return "", nil, boom
	}))
	require.NoError(t, r.RegisterUpcaster("Empty", func(m map[string]any) (string, map[string]any, error) {
		return "", m, nil
	}))
	_, err := r.Decode(es.Event{Type: "Bad", Data: []byte{0x80}, StreamID: "order-9", Version: 12})
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, `"order-9"`)
	require.ErrorContains(t, err, "version 12")

	_, err = r.Decode(es.Event{Type: "Empty", Data: []byte{0x80}})
	require.ErrorContains(t, err, "empty type name")

	// A body that is not a map cannot be upcast.
	_, err = r.Decode(es.Event{Type: "Bad", Data: []byte{0x01}, StreamID: "order-9", Version: 13})
	require.Error(t, err)
	require.NotErrorIs(t, err, boom)
}

func TestRegisterUpcasterErrors(t *testing.T) {
	t.Parallel()
	noop := func(m map[string]any) (string, map[string]any, error) { return "Current", m, nil }
	r := es.NewRegistry()
	require.NoError(t, es.Register[orderItemAdded](r, "Current"))
	require.NoError(t, r.RegisterUpcaster("Old", noop))

	for name, err := range map[string]error{
		"empty name":     r.RegisterUpcaster("", noop),
		"nil upcaster":   r.RegisterUpcaster("Older", nil),
		"current type":   r.RegisterUpcaster("Current", noop),
		"second for one": r.RegisterUpcaster("Old", noop),
		// And the other way round: a type cannot take a name being upcast.
		"type on upcast name": es.Register[itemAddedV1](r, "Old"),
	} {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
}
