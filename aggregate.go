package es

import (
	"fmt"
	"iter"
	"reflect"
	"slices"
	"time"
)

// Aggregate is an event-sourced aggregate: a Go type whose state is the
// result of applying its events in order.
//
// A type satisfies Aggregate by embedding [AggregateBase] (by value) and
// writing an Apply method on its pointer type. Apply is a plain type switch
// over the aggregate's events that changes the state and nothing else: no
// validation that history could fail, no I/O. Whether an unknown event is an
// error is the type's choice:
//
//	type Account struct {
//		es.AggregateBase
//		Balance int
//	}
//
//	func (a *Account) Apply(event any) error {
//		switch e := event.(type) {
//		case Opened:
//			a.SetID(e.AccountID)
//		case Deposited:
//			a.Balance += e.Amount
//		default:
//			return fmt.Errorf("account: unknown event %T", event)
//		}
//		return nil
//	}
//
// Commands are methods that check the state and then call [Record]:
//
//	func (a *Account) Deposit(amount int) error {
//		if amount <= 0 {
//			return errors.New("account: amount must be positive")
//		}
//		return es.Record(a, Deposited{Amount: amount})
//	}
//
// The methods other than Apply come from the embedded [AggregateBase]; the
// interface cannot be satisfied without it. An aggregate is not safe for
// concurrent use.
type Aggregate interface {
	// Apply changes the aggregate's state by one event. It is called for
	// every event recorded by a command ([Record]) and for every event of
	// its history ([Rehydrate], [RehydrateSeq]).
	Apply(event any) error

	// ID returns the aggregate's id. See [AggregateBase.ID].
	ID() string
	// SetID sets the aggregate's id. See [AggregateBase.SetID].
	SetID(id string)
	// Version returns the version of the last event applied. See
	// [AggregateBase.Version].
	Version() int64
	// StoredVersion returns the version of the last stored event applied.
	// See [AggregateBase.StoredVersion].
	StoredVersion() int64
	// Pending returns the recorded events not yet stored. See
	// [AggregateBase.Pending].
	Pending() []any
	// Commit marks the pending events as stored. See
	// [AggregateBase.Commit].
	Commit()

	// aggregateBase seals the interface: only types embedding AggregateBase
	// implement it.
	aggregateBase() *AggregateBase
}

// AggregateBase holds the bookkeeping every [Aggregate] needs: its id, the
// version of the stored events it has applied, and the events its commands
// have recorded but that are not stored yet. Embed it by value in the
// aggregate's struct; its zero value is a new aggregate with no id, at
// version 0, with nothing pending.
//
// Version numbers are stream versions: the first event of a stream is
// version 1. After loading n stored events and recording p new ones,
// [AggregateBase.StoredVersion] is n and [AggregateBase.Version] is n+p.
type AggregateBase struct {
	id      string
	stored  int64
	pending []any

	// The last snapshot known for this aggregate (loaded from or saved
	// with it), for the repository's [SnapshotPolicy]: its version (0:
	// none) and when it was stored.
	snapshotVersion int64
	snapshotAt      time.Time

	// subjects are the data subjects whose personal fields the repository
	// decrypted into the aggregate or encrypted from it: a snapshot of its
	// state is encrypted for each of them (repository_snapshot.go).
	subjects []string
}

// addSubjects adds subjects to the aggregate's.
func (b *AggregateBase) addSubjects(subjects []string) {
	for _, s := range subjects {
		if !slices.Contains(b.subjects, s) {
			b.subjects = append(b.subjects, s)
		}
	}
}

// aggregateBase implements the sealing method of [Aggregate].
func (b *AggregateBase) aggregateBase() *AggregateBase { return b }

// ID returns the aggregate's id, or "" when none was set.
func (b *AggregateBase) ID() string { return b.id }

// SetID sets the aggregate's id. A repository sets it before replaying a
// loaded stream; Apply may set it from a creation event; code that creates a
// new aggregate may set it before the first command.
func (b *AggregateBase) SetID(id string) { b.id = id }

// Version returns the version of the last event applied to the aggregate,
// whether stored or pending: [AggregateBase.StoredVersion] plus the number of
// pending events. It is 0 for a new aggregate with nothing recorded.
func (b *AggregateBase) Version() int64 { return b.stored + int64(len(b.pending)) }

// StoredVersion returns the version of the last stored event applied: the
// stream version the aggregate was loaded at, moved forward by
// [AggregateBase.Commit]. It is the expected version for the next save of the
// pending events (0, that is [NoStream], for a new aggregate).
func (b *AggregateBase) StoredVersion() int64 { return b.stored }

// Pending returns the events recorded by commands and not yet stored, in the
// order they were recorded, or nil when there are none. The slice is a copy;
// the events themselves are not copied.
func (b *AggregateBase) Pending() []any { return slices.Clone(b.pending) }

// Commit marks the pending events as stored: StoredVersion moves to Version
// and nothing is pending any more. It is for repositories, to call after the
// pending events have been appended at expected version StoredVersion (the
// append's resulting stream version is then Version). Commands do not call
// it.
func (b *AggregateBase) Commit() {
	b.stored += int64(len(b.pending))
	b.pending = nil
}

// Record applies event to agg and, if Apply succeeds, appends it to agg's
// pending events. It is the one call a command makes to change an aggregate:
//
//	return es.Record(order, ItemAdded{SKU: sku, Qty: qty})
//
// When Apply fails, Record returns Apply's error unchanged and queues
// nothing (Apply should not change the state before failing). A nil
// aggregate or a nil event is an error wrapping [ErrInvalidArgument].
func Record(agg Aggregate, event any) error {
	b, err := baseOf(agg)
	if err != nil {
		return err
	}
	if event == nil {
		return fmt.Errorf("%w: recording a nil event on %T", ErrInvalidArgument, agg)
	}
	if err := agg.Apply(event); err != nil {
		return err
	}
	b.pending = append(b.pending, event)
	return nil
}

// Rehydrate applies events to agg as stored history, without any store: each
// event moves [AggregateBase.StoredVersion] (and Version) forward by one and
// nothing becomes pending. Use it to build an aggregate in a unit test, or to
// continue from a snapshot; repositories use [RehydrateSeq].
//
// agg must have no pending events. Rehydrate stops at the first event that
// Apply refuses and returns an error naming its version and wrapping Apply's
// error; the aggregate then holds the events before it and should be thrown
// away. A nil aggregate or a nil event is an error wrapping
// [ErrInvalidArgument].
func Rehydrate(agg Aggregate, events ...any) error {
	return RehydrateSeq(agg, func(yield func(any, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	})
}

// RehydrateSeq is [Rehydrate] for a sequence of events, such as a stream
// being read and decoded: events are applied as they arrive and not held in
// memory. It stops at the first error, whether the sequence yields it
// (returned wrapped, with the version it would have had) or Apply returns it,
// and then asks no more events of the sequence. A nil sequence is an empty
// one.
func RehydrateSeq(agg Aggregate, events iter.Seq2[any, error]) error {
	b, err := baseOf(agg)
	if err != nil {
		return err
	}
	if n := len(b.pending); n > 0 {
		return fmt.Errorf("%w: rehydrating %T which has %d pending events", ErrInvalidArgument, agg, n)
	}
	if events == nil {
		return nil
	}
	for event, err := range events {
		version := b.stored + 1
		if err != nil {
			return fmt.Errorf("rehydrating %T at version %d: %w", agg, version, err)
		}
		if event == nil {
			return fmt.Errorf("%w: rehydrating %T: nil event at version %d", ErrInvalidArgument, agg, version)
		}
		if err := agg.Apply(event); err != nil {
			return fmt.Errorf("rehydrating %T: applying %T at version %d: %w", agg, event, version, err)
		}
		b.stored = version
	}
	return nil
}

// baseOf returns agg's base, or an error when agg is nil or a nil pointer.
func baseOf(agg Aggregate) (*AggregateBase, error) {
	if agg == nil {
		return nil, fmt.Errorf("%w: nil aggregate", ErrInvalidArgument)
	}
	if v := reflect.ValueOf(agg); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("%w: nil aggregate (%T)", ErrInvalidArgument, agg)
	}
	b := agg.aggregateBase()
	if b == nil { // embedded as a nil *AggregateBase
		return nil, fmt.Errorf("%w: %T has a nil AggregateBase", ErrInvalidArgument, agg)
	}
	return b, nil
}
