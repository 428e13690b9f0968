package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pgevent/es"
)

// The events of an order. They are plain structs: the registry stores them
// as msgpack under the names given in registerEvents, and decodes them back
// into these types.

// OrderCreated starts an order for a customer.
type OrderCreated struct {
	OrderID    uuid.UUID
	CustomerID string
	CreatedAt  time.Time
}

// ItemAdded adds Quantity units of an article to the order (to the line of
// that SKU when there is one).
type ItemAdded struct {
	SKU        string
	Quantity   int
	PriceCents int64
}

// ItemRemoved removes the whole line of an article.
type ItemRemoved struct {
	SKU string
}

// OrderPlaced closes the order for changes: the customer has committed to
// TotalCents.
type OrderPlaced struct {
	TotalCents int64
	PlacedAt   time.Time
}

// OrderShipped records that a placed order left the warehouse.
type OrderShipped struct {
	Carrier   string
	ShippedAt time.Time
}

// OrderCancelled ends an order that was not shipped.
type OrderCancelled struct {
	Reason      string
	CancelledAt time.Time
}

// registerEvents registers every order event in r under a stable name. The
// name, not the Go type, is what is stored, so Go types can be renamed
// freely later.
func registerEvents(r *es.Registry) error {
	return errors.Join(
		es.Register[OrderCreated](r, "OrderCreated"),
		es.Register[ItemAdded](r, "ItemAdded"),
		es.Register[ItemRemoved](r, "ItemRemoved"),
		es.Register[OrderPlaced](r, "OrderPlaced"),
		es.Register[OrderShipped](r, "OrderShipped"),
		es.Register[OrderCancelled](r, "OrderCancelled"),
	)
}

// The domain errors. Commands return them (possibly wrapped with details),
// so callers test them with errors.Is.
var (
	ErrAlreadyCreated   = errors.New("order: already created")
	ErrNotCreated       = errors.New("order: not created")
	ErrInvalidItem      = errors.New("order: invalid item")
	ErrItemNotInOrder   = errors.New("order: item not in order")
	ErrNotOpen          = errors.New("order: no longer open for changes")
	ErrEmptyOrder       = errors.New("order: has no items")
	ErrNotPlaced        = errors.New("order: not placed")
	ErrAlreadyShipped   = errors.New("order: already shipped")
	ErrAlreadyCancelled = errors.New("order: already cancelled")
)

// Status is where an order is in its life.
type Status string

// The statuses of an order.
const (
	StatusNew       Status = ""          // not created yet
	StatusOpen      Status = "open"      // created, items can be added and removed
	StatusPlaced    Status = "placed"    // placed by the customer, waiting to ship
	StatusShipped   Status = "shipped"   // shipped: final
	StatusCancelled Status = "cancelled" // cancelled: final
)

// Line is one article of an order.
type Line struct {
	SKU        string
	Quantity   int
	PriceCents int64
}

// Order is the aggregate: its state is the result of applying its events.
// es.AggregateBase tracks the id, the version and the pending events.
type Order struct {
	es.AggregateBase

	CustomerID string
	Status     Status
	Lines      []Line
	TotalCents int64 // set when placed
}

// NewOrder returns an empty order; repositories and tests use it as the
// aggregate factory.
func NewOrder() *Order { return &Order{} }

// Apply changes the state by one event. It only applies: the checks are in
// the commands, because history that was accepted once must always replay.
func (o *Order) Apply(event any) error {
	switch e := event.(type) {
	case OrderCreated:
		o.SetID(e.OrderID.String())
		o.CustomerID = e.CustomerID
		o.Status = StatusOpen
	case ItemAdded:
		if i := o.line(e.SKU); i >= 0 {
			o.Lines[i].Quantity += e.Quantity
			o.Lines[i].PriceCents = e.PriceCents
		} else {
			o.Lines = append(o.Lines, Line{SKU: e.SKU, Quantity: e.Quantity, PriceCents: e.PriceCents})
		}
	case ItemRemoved:
		if i := o.line(e.SKU); i >= 0 {
			o.Lines = append(o.Lines[:i:i], o.Lines[i+1:]...)
		}
	case OrderPlaced:
		o.Status = StatusPlaced
		o.TotalCents = e.TotalCents
	case OrderShipped:
		o.Status = StatusShipped
	case OrderCancelled:
		o.Status = StatusCancelled
	default:
		return fmt.Errorf("order: unknown event %T", event)
	}
	return nil
}

// line returns the index of the line of sku, or -1.
func (o *Order) line(sku string) int {
	for i, l := range o.Lines {
		if l.SKU == sku {
			return i
		}
	}
	return -1
}

// Total returns the sum of the lines, in cents.
func (o *Order) Total() int64 {
	var total int64
	for _, l := range o.Lines {
		total += int64(l.Quantity) * l.PriceCents
	}
	return total
}

// Create starts the order for customerID.
func (o *Order) Create(id uuid.UUID, customerID string, now time.Time) error {
	if o.Status != StatusNew {
		return ErrAlreadyCreated
	}
	if id == uuid.Nil || customerID == "" {
		return fmt.Errorf("order: creating needs an order id and a customer id")
	}
	return es.Record(o, OrderCreated{OrderID: id, CustomerID: customerID, CreatedAt: now})
}

// AddItem adds quantity units of sku at priceCents each to an open order.
func (o *Order) AddItem(sku string, quantity int, priceCents int64) error {
	if err := o.checkOpen(); err != nil {
		return err
	}
	if sku == "" || quantity <= 0 || priceCents < 0 {
		return fmt.Errorf("%w: sku %q, quantity %d, price %d", ErrInvalidItem, sku, quantity, priceCents)
	}
	return es.Record(o, ItemAdded{SKU: sku, Quantity: quantity, PriceCents: priceCents})
}

// RemoveItem removes the line of sku from an open order.
func (o *Order) RemoveItem(sku string) error {
	if err := o.checkOpen(); err != nil {
		return err
	}
	if o.line(sku) < 0 {
		return fmt.Errorf("%w: %q", ErrItemNotInOrder, sku)
	}
	return es.Record(o, ItemRemoved{SKU: sku})
}

// Place closes an open order for changes. An empty order cannot be placed.
func (o *Order) Place(now time.Time) error {
	if err := o.checkOpen(); err != nil {
		return err
	}
	if len(o.Lines) == 0 {
		return ErrEmptyOrder
	}
	return es.Record(o, OrderPlaced{TotalCents: o.Total(), PlacedAt: now})
}

// Ship ships a placed order.
func (o *Order) Ship(carrier string, now time.Time) error {
	switch o.Status {
	case StatusNew:
		return ErrNotCreated
	case StatusShipped:
		return ErrAlreadyShipped
	case StatusPlaced:
		return es.Record(o, OrderShipped{Carrier: carrier, ShippedAt: now})
	default: // open or cancelled
		return fmt.Errorf("%w (status %s)", ErrNotPlaced, o.Status)
	}
}

// Cancel cancels an order that is not shipped and not already cancelled.
func (o *Order) Cancel(reason string, now time.Time) error {
	switch o.Status {
	case StatusNew:
		return ErrNotCreated
	case StatusShipped:
		return ErrAlreadyShipped
	case StatusCancelled:
		return ErrAlreadyCancelled
	default: // open or placed
		return es.Record(o, OrderCancelled{Reason: reason, CancelledAt: now})
	}
}

// checkOpen returns nil when items may be changed.
func (o *Order) checkOpen() error {
	switch o.Status {
	case StatusOpen:
		return nil
	case StatusNew:
		return ErrNotCreated
	default:
		return fmt.Errorf("%w (status %s)", ErrNotOpen, o.Status)
	}
}
