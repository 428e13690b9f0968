package es_test

import (
	"fmt"

	"github.com/pgevent/es"
)

// OrderPlaced is the current shape of an event.
type OrderPlaced struct {
	OrderID  string
	Total    int64
	Currency string `msgpack:"currency"`
}

// orderPlacedV1 is how the event looked before: named "OrderCreated", with
// the amount in a field called "Amount" and no currency.
type orderPlacedV1 struct {
	OrderID string
	Amount  int64
}

// Register event types, encode one, decode it, and upcast an event stored
// under an old name and shape.
func ExampleRegistry() {
	r := es.NewRegistry()
	if err := es.Register[OrderPlaced](r, "OrderPlaced"); err != nil {
		panic(err)
	}
	// OrderCreated{OrderID, Amount} is now OrderPlaced{OrderID, Total, currency}.
	err := r.RegisterUpcaster("OrderCreated", func(m map[string]any) (string, map[string]any, error) {
		m["Total"] = m["Amount"]
		delete(m, "Amount")
		m["currency"] = "EUR"
		return "OrderPlaced", m, nil
	})
	if err != nil {
		panic(err)
	}

	ne, err := r.NewEvent(OrderPlaced{OrderID: "o-1", Total: 1250, Currency: "USD"}, &es.Metadata{CorrelationID: "req-7"})
	if err != nil {
		panic(err)
	}
	stored := es.Event{StreamID: "order-o-1", Version: 1, Type: ne.Type, Data: ne.Data, Metadata: ne.Metadata}
	v, err := r.Decode(stored)
	if err != nil {
		panic(err)
	}
	md, _ := stored.Meta()
	fmt.Printf("%s: %+v (correlation %s)\n", stored.Type, v.(OrderPlaced), md.CorrelationID)

	// An event written long ago, with the old name and shape.
	old := es.NewRegistry()
	_ = es.Register[orderPlacedV1](old, "OrderCreated")
	name, data, _ := old.Encode(orderPlacedV1{OrderID: "o-0", Amount: 990})
	v, err = r.Decode(es.Event{StreamID: "order-o-0", Version: 1, Type: name, Data: data})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s upcast: %+v\n", name, v.(OrderPlaced))

	_, err = r.Decode(es.Event{StreamID: "order-o-0", Version: 2, Type: "OrderExploded"})
	fmt.Println(err)
	// Output:
	// OrderPlaced: {OrderID:o-1 Total:1250 Currency:USD} (correlation req-7)
	// OrderCreated upcast: {OrderID:o-0 Total:990 Currency:EUR}
	// es: unknown event type "OrderExploded" (stream "order-o-0", version 2)
}
