package es_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
)

// Appending with an expected version, and what a conflict looks like.
func Example_expectedVersion() {
	ctx := context.Background()
	store := memstore.New(nil)

	res, err := store.Append(ctx, "order-42", es.NoStream, []es.NewEvent{
		{Type: "OrderCreated"},
		{Type: "ItemAdded"},
	})
	fmt.Println(res.StreamVersion, err)

	// A writer that still believes the stream is new loses.
	_, err = store.Append(ctx, "order-42", es.NoStream, []es.NewEvent{{Type: "OrderCreated"}})
	var conflict *es.VersionConflictError
	fmt.Println(errors.Is(err, es.ErrWrongVersion), errors.As(err, &conflict), conflict.Actual)

	for ev, err := range store.ReadStream(ctx, "order-42", nil) {
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.Version, ev.Type, ev.Category())
	}
	// Output:
	// 2 <nil>
	// true true 2
	// 1 OrderCreated order
	// 2 ItemAdded order
}

// Positions are opaque but can be stored as text and compared.
func ExampleParsePosition() {
	p, err := es.ParsePosition("771/42")
	fmt.Println(p, err, p.Before(es.NewPosition(772, 1)))
	// Output: 771/42 <nil> true
}
