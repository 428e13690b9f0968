package es

import (
	"context"
	"errors"
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
// *SubscribeOpts uses every default. Fields marked "PostgreSQL" are used by
// pgstore only; memstore wakes up in-process and ignores them.
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

	// BatchSize is how many events are read per query. In pgstore's
	// transactional form it is also the most events handled in one
	// transaction. Defaults to 1000.
	BatchSize int
	// TxMaxDuration bounds how long the transactional form's transaction
	// runs: once it has run this long it commits the events handled so
	// far (at least one) and goes on in a new transaction. While open, it
	// holds an xid that holds back every reader of the global log in the
	// cluster, other subscriptions included, so keep it short. Defaults
	// to 20 milliseconds.
	TxMaxDuration time.Duration
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
	// it doubles with each further retry. Defaults to 100 milliseconds.
	RetryBackoff time.Duration

	// PollInterval is the fallback poll (PostgreSQL): the subscription
	// reads the log at least this often even when no notification comes,
	// so no committed event waits longer than this when a wake-up was
	// coalesced away or notifications are off (es.notify = off). Defaults
	// to 1 second.
	PollInterval time.Duration
	// RepollDelay is how soon the subscription reads again after a read
	// that found events or followed a notification (PostgreSQL): appends
	// that skipped notifying (notifications are coalesced) or that were
	// hidden behind an older running transaction are picked up then.
	// While events keep coming it is also the shortest time between two
	// reads. Defaults to 10 milliseconds.
	RepollDelay time.Duration
	// ReconnectBackoff is the first wait before reconnecting after the
	// listener connection failed (PostgreSQL); it doubles with each failed
	// attempt up to ReconnectBackoffMax. Defaults to 100 milliseconds.
	ReconnectBackoff time.Duration
	// ReconnectBackoffMax caps the reconnect wait (PostgreSQL). Defaults
	// to 5 seconds.
	ReconnectBackoffMax time.Duration
	// KeepaliveInterval is how often an idle listener connection is pinged
	// (PostgreSQL), when PollInterval is longer. Defaults to 30 seconds.
	KeepaliveInterval time.Duration
	// LockPollInterval is how often an instance waiting for the
	// subscription's lease (another instance is active) tries again
	// (PostgreSQL). Defaults to 1 second.
	LockPollInterval time.Duration
	// LeaseTTL is how long the active instance's lease lasts unless
	// renewed (PostgreSQL); it is renewed every third of it. Another
	// instance takes over once the lease expires, or at once when the
	// active instance's connection is gone. Defaults to 30 seconds.
	LeaseTTL time.Duration
	// OnError, when set, is called with each error the subscription
	// recovers from by itself (PostgreSQL: a lost or failed connection,
	// before reconnecting; a checkpoint conflict, before waiting for the
	// lock again), for logging. It must not block. Defaults to nil.
	OnError func(err error)
}

// WithDefaults returns a copy of o (which may be nil) with every unset
// field set to its default. Stores call it; users need not.
func (o *SubscribeOpts) WithDefaults() SubscribeOpts {
	var c SubscribeOpts
	if o != nil {
		c = *o
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 100
	}
	def(&c.CheckpointInterval, time.Second)
	def(&c.TxMaxDuration, 20*time.Millisecond)
	def(&c.RetryBackoff, 100*time.Millisecond)
	def(&c.PollInterval, time.Second)
	def(&c.RepollDelay, 10*time.Millisecond)
	def(&c.ReconnectBackoff, 100*time.Millisecond)
	def(&c.ReconnectBackoffMax, 5*time.Second)
	def(&c.KeepaliveInterval, 30*time.Second)
	def(&c.LockPollInterval, time.Second)
	def(&c.LeaseTTL, 30*time.Second)
	return c
}

// Validate checks options filled by [SubscribeOpts.WithDefaults] and
// returns an error wrapping [ErrInvalidArgument] for the first bad one.
func (o *SubscribeOpts) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: subscription options: "+format, append([]any{ErrInvalidArgument}, args...)...)
	}
	switch {
	case o.Start != StartFromBeginning && o.Start != StartFromEnd:
		return bad("unknown Start %d", int(o.Start))
	case o.BatchSize < 1 || o.BatchSize > 1_000_000:
		return bad("BatchSize must be between 1 and 1000000, got %d", o.BatchSize)
	case o.CheckpointEvery < 1:
		return bad("CheckpointEvery must be positive, got %d", o.CheckpointEvery)
	case o.HandlerRetries < 0:
		return bad("HandlerRetries must not be negative, got %d", o.HandlerRetries)
	}
	for name, d := range map[string]time.Duration{
		"CheckpointInterval": o.CheckpointInterval, "RetryBackoff": o.RetryBackoff, "TxMaxDuration": o.TxMaxDuration,
		"PollInterval": o.PollInterval, "RepollDelay": o.RepollDelay,
		"ReconnectBackoff": o.ReconnectBackoff, "ReconnectBackoffMax": o.ReconnectBackoffMax,
		"KeepaliveInterval": o.KeepaliveInterval, "LockPollInterval": o.LockPollInterval,
		"LeaseTTL": o.LeaseTTL,
	} {
		if d < 0 {
			return bad("%s must not be negative, got %v", name, d)
		}
	}
	for _, c := range o.Categories {
		if c == "" {
			return bad("empty category")
		}
	}
	for _, t := range o.EventTypes {
		if t == "" {
			return bad("empty event type")
		}
	}
	return nil
}

// Matches reports whether the options' filters keep e.
func (o *SubscribeOpts) Matches(e *Event) bool {
	return (len(o.Categories) == 0 || contains(o.Categories, e.Category())) &&
		(len(o.EventTypes) == 0 || contains(o.EventTypes, e.Type))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MaxSubscriptionNameLength is the longest subscription name accepted, in
// bytes.
const MaxSubscriptionNameLength = 1000

// Subscriber is a [Store] that runs named subscriptions. pgstore and
// memstore implement it with the same semantics, checked by the
// conformance suite in package estest.
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

// ErrCheckpointConflict is returned when a subscription's checkpoint is not
// where the instance saving it expected: another instance of the
// subscription moved it. The checkpoint is left as it is; a running
// subscription that meets it reads the checkpoint again and carries on
// from there.
var ErrCheckpointConflict = errors.New("es: checkpoint conflict")

// HandlerError is the error a subscription stops with when its handler
// fails (after any retries). The checkpoint stays before Event.
type HandlerError struct {
	// Subscription is the subscription's name.
	Subscription string
	// Event is the event the handler failed on.
	Event Event
	// Attempts is how many times the handler was called with Event.
	Attempts int
	// Err is the handler's last error.
	Err error
}

// Error implements error.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("es: subscription %q: handler failed on event %s (stream %q version %d, position %s) after %d attempt(s): %v",
		e.Subscription, e.Event.ID, e.Event.StreamID, e.Event.Version, e.Event.Position, e.Attempts, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }

// RetryWait returns how long to wait before handing an event to the
// handler again after its attempt-th failure: RetryBackoff doubled for
// each earlier failure, at most a minute. Stores call it.
func (o *SubscribeOpts) RetryWait(attempt int) time.Duration {
	d := o.RetryBackoff
	for i := 1; i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
