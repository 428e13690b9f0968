package es

import (
	"context"
	"fmt"
	"time"
)

// Handler handles one event delivered by a subscription. Returning an error
// stops the subscription (after [SubscribeOpts.HandlerRetries] retries); the
// event is never skipped: the checkpoint stays before it, so the next run
// of the subscription delivers it again.
type Handler func(ctx context.Context, e Event) error

// StartPosition says where a subscription without a checkpoint starts.
type StartPosition int

const (
	// StartFromBeginning delivers the whole log, from its first event.
	StartFromBeginning StartPosition = iota
	// StartFromEnd skips the events visible when the subscription first
	// runs and delivers only those that come after them. The end is saved
	// as the subscription's checkpoint at once, so a restart does not skip
	// events appended in between.
	StartFromEnd
)

// String returns "beginning" or "end".
func (p StartPosition) String() string {
	switch p {
	case StartFromBeginning:
		return "beginning"
	case StartFromEnd:
		return "end"
	}
	return fmt.Sprintf("StartPosition(%d)", int(p))
}

// SubscribeOpts shapes a subscription ([Subscriber.Subscribe]). A nil
// *SubscribeOpts uses every default. How a store follows the log (polling,
// reconnecting, leases) is the store's own configuration (pgstore.Config).
type SubscribeOpts struct {
	// Categories, when not empty, delivers only events whose stream
	// category is one of them. Defaults to all categories.
	Categories []string
	// EventTypes, when not empty, delivers only events of these types.
	// Defaults to all types.
	EventTypes []string
	// Start is where a subscription without a checkpoint starts. A
	// subscription with a checkpoint always resumes after it. Defaults to
	// StartFromBeginning.
	Start StartPosition

	// BatchSize is how many events are read at a time. In the
	// transactional form it is also the most events handled in one
	// transaction. Defaults to 1000.
	BatchSize int
	// CheckpointEvery is how many handled events the plain (at-least-once)
	// form lets pass before it saves the checkpoint; after a crash up to
	// that many events (or those of CheckpointInterval) are delivered
	// again. The transactional form saves it with every transaction.
	// Defaults to 100.
	CheckpointEvery int
	// CheckpointInterval is how long the plain form keeps handled events
	// unsaved at most. Defaults to 1 second.
	CheckpointInterval time.Duration

	// HandlerRetries is how many times an event whose handler failed is
	// handed to the handler again before the subscription stops with a
	// *[HandlerError]. Defaults to 0: stop at the first failure.
	HandlerRetries int
	// RetryBackoff is the wait before the first retry of a failed handler;
	// it doubles with each further retry, up to a minute. Defaults to 100
	// milliseconds.
	RetryBackoff time.Duration

	// OnError, when set, is called with each error the subscription
	// recovers from by itself (a lost or failed connection, before
	// reconnecting; a checkpoint conflict, before taking over again), for
	// logging. It must not block. Defaults to nil.
	OnError func(err error)
}

// MaxSubscriptionNameLength is the longest subscription name accepted, in
// bytes.
const MaxSubscriptionNameLength = 1000

// Subscriber is a [Store] that runs named subscriptions. pgstore and
// memstore implement it with the same semantics, checked by the
// conformance suite in package storetest.
//
// A subscription delivers the events of the global log after its
// checkpoint to its handler, one at a time, in the global order (so every
// stream's events in version order), skipping none, and saves its
// checkpoint as it goes. At most one instance of a subscription name is
// active at a time; others wait and take over when it stops.
type Subscriber interface {
	Store

	// Subscribe runs the subscription name with handler until ctx is
	// cancelled (it then saves the checkpoint of the events handled and
	// returns nil) or the handler fails (it returns a *[HandlerError]).
	// It catches up from the checkpoint, then waits for new events.
	//
	// Delivery is at least once: events handled after the last saved
	// checkpoint (see [SubscribeOpts.CheckpointEvery]) are delivered again
	// after a crash. pgstore's SubscribeTx gives exactly-once effects.
	//
	// While another instance of name is active, Subscribe waits for it to
	// stop. Errors: [ErrInvalidArgument] for a bad name, a nil handler or
	// bad options.
	Subscribe(ctx context.Context, name string, handler Handler, opts *SubscribeOpts) error

	// Checkpoint returns the saved position of the subscription name and
	// whether it has one (the zero Position and false when not).
	Checkpoint(ctx context.Context, name string) (Position, bool, error)

	// DeleteCheckpoint removes the subscription's checkpoint, so that its
	// next run starts as its options say, and reports whether it had one.
	// Use it with no instance running, e.g. to rebuild a read model.
	DeleteCheckpoint(ctx context.Context, name string) (bool, error)
}
