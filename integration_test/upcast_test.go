package integration_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
)

// The old shapes, as an earlier version of the program wrote them.
type cartItemAddedV1 struct {
	CartID  uuid.UUID
	Sku     string
	Qty     int
	Comment string
}

type cartCheckedOutV1 struct {
	CartID uuid.UUID
	At     time.Time
}

// The current shapes.
type cartItemAdded struct {
	CartID    uuid.UUID
	ProductID string
	Qty       int
	Currency  string
}

type cartCheckedOut struct {
	CartID uuid.UUID
	At     time.Time
	Via    string
}

func TestUpcastEventsStoredInPostgres(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	store := pgtest.Store(t)

	oldReg := es.NewRegistry()
	require.NoError(t, es.Register[cartItemAddedV1](oldReg, "ItemAdded"))
	require.NoError(t, es.Register[cartCheckedOutV1](oldReg, "CartCheckedOut"))

	cart := uuid.New()
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	stream := "cart-" + cart.String()
	md := &es.Metadata{CorrelationID: "corr-1", CausationID: "cmd-1", Headers: map[string]string{"user": "ann"}}
	var batch []es.NewEvent
	for _, ev := range []any{
		cartItemAddedV1{CartID: cart, Sku: "sku-1", Qty: 2, Comment: "gift"},
		cartItemAddedV1{CartID: cart, Sku: "sku-2", Qty: 1},
		cartCheckedOutV1{CartID: cart, At: at},
	} {
		ne, err := oldReg.NewEvent(ev, md)
		require.NoError(t, err)
		batch = append(batch, ne)
	}
	_, err := store.Append(ctx, stream, es.NoStream, batch)
	require.NoError(t, err)

	// Today's program knows only the new types, plus upcasters.
	r := es.NewRegistry()
	require.NoError(t, es.Register[cartItemAdded](r, "CartItemAdded"))
	require.NoError(t, es.Register[cartCheckedOut](r, "CartCheckedOut.v2"))
	require.NoError(t, r.RegisterUpcaster("ItemAdded", func(m map[string]any) (string, map[string]any, error) {
		m["ProductID"] = m["Sku"]
		delete(m, "Sku")
		delete(m, "Comment")
		return "ItemAdded.v2", m, nil
	}))
	require.NoError(t, r.RegisterUpcaster("ItemAdded.v2", func(m map[string]any) (string, map[string]any, error) {
		m["Currency"] = "EUR"
		return "CartItemAdded", m, nil
	}))
	require.NoError(t, r.RegisterUpcaster("CartCheckedOut", func(m map[string]any) (string, map[string]any, error) {
		m["Via"] = "web"
		return "CartCheckedOut.v2", m, nil
	}))

	var got []any
	for e, err := range store.ReadStream(ctx, stream, nil) {
		require.NoError(t, err)
		v, err := r.Decode(e)
		require.NoError(t, err)
		got = append(got, v)

		meta, err := e.Meta()
		require.NoError(t, err)
		require.Equal(t, *md, meta)
	}
	require.Equal(t, []any{
		cartItemAdded{CartID: cart, ProductID: "sku-1", Qty: 2, Currency: "EUR"},
		cartItemAdded{CartID: cart, ProductID: "sku-2", Qty: 1, Currency: "EUR"},
		cartCheckedOut{CartID: cart, At: at.UTC(), Via: "web"},
	}, got)

	// A registry without the upcasters reports the stored type and stream.
	_, err = es.NewRegistry().Decode(firstEvent(t, store, stream))
	var unknown *es.UnknownEventTypeError
	require.ErrorAs(t, err, &unknown)
	require.Equal(t, es.UnknownEventTypeError{Type: "ItemAdded", StreamID: stream, Version: 1}, *unknown)
}

func TestMetadataStoredInPostgres(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	store := pgtest.Store(t)

	type noted struct{ Text string }
	r := es.NewRegistry()
	require.NoError(t, es.Register[noted](r, "Noted"))

	// Metadata set once on the context, applied to every event of a save.
	ctx = es.WithMetadata(ctx, es.Metadata{CorrelationID: "c-9", Headers: map[string]string{"tenant": "t1"}})
	md, ok := es.MetadataFrom(ctx)
	require.True(t, ok)
	withMeta, err := r.NewEvent(noted{Text: "a"}, &md)
	require.NoError(t, err)
	without, err := r.NewEvent(noted{Text: "b"}, nil)
	require.NoError(t, err)
	_, err = store.Append(ctx, "notes-1", es.Any, []es.NewEvent{withMeta, without})
	require.NoError(t, err)

	var metas []es.Metadata
	var raw [][]byte
	for e, err := range store.ReadStream(ctx, "notes-1", nil) {
		require.NoError(t, err)
		m, err := e.Meta()
		require.NoError(t, err)
		metas = append(metas, m)
		raw = append(raw, e.Metadata)
	}
	require.Equal(t, []es.Metadata{md, {}}, metas)
	require.NotEmpty(t, raw[0])
	require.Empty(t, raw[1], "nil metadata is stored as NULL")
}

func firstEvent(t *testing.T, store es.Store, stream string) es.Event {
	t.Helper()
	for e, err := range store.ReadStream(t.Context(), stream, &es.ReadStreamOpts{MaxCount: 1}) {
		require.NoError(t, err)
		return e
	}
	t.Fatalf("stream %q is empty", stream)
	return es.Event{}
}
