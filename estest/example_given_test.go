package estest_test

import (
	"errors"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/estest"
	"github.com/pgevent/es/internal/exampletb"
)

// The events of a shopping cart.
type (
	ItemAdded struct {
		SKU string
		Qty int
	}
	CheckedOut struct{}
)

// ErrEmptyCart is the cart's domain error.
var ErrEmptyCart = errors.New("cart: empty")

// Cart is an aggregate (see es.Aggregate).
type Cart struct {
	es.AggregateBase
	Items      int
	CheckedOut bool
}

func (c *Cart) Apply(event any) error {
	switch e := event.(type) {
	case ItemAdded:
		c.Items += e.Qty
	case CheckedOut:
		c.CheckedOut = true
	default:
		return fmt.Errorf("cart: unknown event %T", event)
	}
	return nil
}

// CheckOut refuses an empty cart and records nothing for a cart already
// checked out.
func (c *Cart) CheckOut() error {
	switch {
	case c.CheckedOut:
		return nil
	case c.Items == 0:
		return ErrEmptyCart
	}
	return es.Record(c, CheckedOut{})
}

// Given past events, when a command runs, then it records these events,
// none, or fails with this error. A mismatch fails the test through t (in
// a test, the test's *testing.T) and shows what was recorded. Then and
// ThenNothing return the aggregate for checks of its state.
func ExampleGiven() {
	t, done := exampletb.New() // in a test: the test's t
	defer done()
	newCart := func() *Cart { return &Cart{} }

	cart := estest.Given(t, newCart, ItemAdded{SKU: "book", Qty: 2}).
		When(func(c *Cart) error { return c.CheckOut() }).
		Then(CheckedOut{})
	fmt.Println("items:", cart.Items, "checked out:", cart.CheckedOut)

	estest.Given(t, newCart).
		When(func(c *Cart) error { return c.CheckOut() }).
		ThenError(ErrEmptyCart)

	cart = estest.Given(t, newCart, ItemAdded{SKU: "book", Qty: 2}, CheckedOut{}).
		When(func(c *Cart) error { return c.CheckOut() }).
		ThenNothing()
	fmt.Println("version:", cart.Version(), "pending:", len(cart.Pending()))

	fmt.Println("failed:", t.Failed())
	// Output:
	// items: 2 checked out: true
	// version: 2 pending: 0
	// failed: false
}
