// Package snapshot holds snapshot policies and the msgpack encoding of
// snapshot state for [es.Repository].
//
// An aggregate opts in to snapshots by implementing [es.Snapshotter]; the
// functions here make that three one-line methods:
//
//	func (a *Account) SnapshotSchemaVersion() int           { return 1 }
//	func (a *Account) MarshalSnapshot() ([]byte, error)     { return snapshot.Marshal(a) }
//	func (a *Account) UnmarshalSnapshot(state []byte) error { return snapshot.Unmarshal(state, a) }
//
// and a repository stores snapshots when its policy says so:
//
//	accounts, err := es.NewRepository(store, reg, newAccount,
//		&es.RepositoryConfig{SnapshotPolicy: snapshot.Every(1000)})
//
// # Schema versions
//
// A snapshot is stored with the schema version its aggregate declared when
// it was taken, and a load asks only for snapshots of the aggregate's
// current schema version. Bump SnapshotSchemaVersion whenever the encoded
// state changes shape (a field added, renamed, retyped, or given a new
// meaning): loads then ignore the old snapshots and replay the events, and
// the next due snapshot replaces them. Forgetting to bump it is the one way
// to get a wrong aggregate from a snapshot, so when in doubt, bump.
//
// # Policies
//
// A policy sees each save as an [es.SnapshotCandidate]: the stream's
// version before and after it, and the version and time of the last known
// snapshot. [Every] stores one when a save crosses a multiple of n, [When]
// asks a predicate, [Never] never does.
package snapshot

import (
	"fmt"
	"reflect"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/codec"
)

// Every returns the policy that stores a snapshot whenever a save moves the
// stream across a multiple of n: from version PreviousVersion to Version,
// with PreviousVersion/n < Version/n. A save that lands on a multiple counts,
// and so does one that jumps over it (saving 5 events from version 98 to 103
// with n = 100), so a stream never goes more than n versions plus one save
// past a multiple without a snapshot. The snapshot then has the save's
// version (103), not the multiple. It panics if n < 1.
func Every(n int64) es.SnapshotPolicy {
	if n < 1 {
		panic(fmt.Sprintf("snapshot.Every: n must be at least 1, got %d", n))
	}
	return every(n)
}

type every int64

func (n every) SnapshotDue(c es.SnapshotCandidate) bool {
	return c.PreviousVersion/int64(n) < c.Version/int64(n)
}

// String describes the policy.
func (n every) String() string { return fmt.Sprintf("every %d events", int64(n)) }

// When returns the policy that stores a snapshot when due returns true. The
// candidate carries the stream's version after the save, the events since
// the last snapshot and the time since it, for predicates such as
//
//	snapshot.When(func(c es.SnapshotCandidate) bool {
//		return c.EventsSinceSnapshot >= 500 || (c.EventsSinceSnapshot > 0 && c.SinceSnapshot > time.Hour)
//	})
//
// due is called once per save, from the saving goroutine: it must be safe
// for concurrent use when the repository is. A nil due never stores one.
func When(due func(c es.SnapshotCandidate) bool) es.SnapshotPolicy {
	if due == nil {
		return Never()
	}
	return es.SnapshotPolicyFunc(due)
}

// Never returns the policy that never stores a snapshot. Loads still use
// the snapshots there are.
func Never() es.SnapshotPolicy { return never{} }

type never struct{}

func (never) SnapshotDue(es.SnapshotCandidate) bool { return false }

// String describes the policy.
func (never) String() string { return "never" }

// Marshal encodes v, an aggregate (a pointer to a struct) or a state
// struct, with msgpack: its exported fields by name (msgpack tags honoured;
// `msgpack:"-"` leaves a field out), uuid.UUID as its canonical string,
// times as msgpack timestamps read back in UTC, by the same rules as event
// payloads ([es.Registry]). The embedded [es.AggregateBase] is not part of
// the state: the repository keeps the id and version.
//
// Unexported fields cannot be encoded, and silently dropping them would
// restore a different aggregate: Marshal returns an error when v's struct
// has any (other than the embedded es.AggregateBase). Give such an
// aggregate a state struct of exported fields, or its own encoding.
func Marshal(v any) ([]byte, error) {
	if err := checkExported(v); err != nil {
		return nil, err
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if !rv.IsValid() || rv.Kind() == reflect.Pointer {
		return nil, fmt.Errorf("%w: encoding state: nil value", es.ErrInvalidArgument)
	}
	c, err := codec.For(rv.Type())
	if err != nil {
		return nil, fmt.Errorf("%w: encoding state %s: %w", es.ErrInvalidArgument, rv.Type(), err)
	}
	data, err := c.Encode(rv)
	if err != nil {
		return nil, fmt.Errorf("encoding state %s: %w", rv.Type(), err)
	}
	return data, nil
}

// Unmarshal decodes state, as [Marshal] wrote it, into the struct v points
// to. Fields absent from state keep their value; unknown keys are skipped.
// A state that is not one complete msgpack map (empty, nil, truncated,
// trailing bytes, a value of the wrong type) is an error, so that the
// repository replays the events instead of restoring a partial aggregate.
func Unmarshal(state []byte, v any) error {
	if err := checkExported(v); err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: decoding state: need a non-nil pointer, got %T", es.ErrInvalidArgument, v)
	}
	target := rv.Elem()
	c, err := codec.For(target.Type())
	if err != nil {
		return fmt.Errorf("%w: decoding state %s: %w", es.ErrInvalidArgument, target.Type(), err)
	}
	if len(state) == 0 || state[0] == 0xc0 { // nil: would zero the whole value
		return fmt.Errorf("%w: decoding state %s: empty or nil state", es.ErrCorruptSnapshot, target.Type())
	}
	if err := c.DecodeStrict(state, target); err != nil {
		return fmt.Errorf("%w: decoding state %s: %w", es.ErrCorruptSnapshot, target.Type(), err)
	}
	return nil
}

var aggregateBaseType = reflect.TypeFor[es.AggregateBase]()

// checkExported refuses a struct with unexported fields (but for an
// embedded es.AggregateBase).
func checkExported(v any) error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() || (f.Anonymous && f.Type == aggregateBaseType) {
			continue
		}
		if f.Tag.Get("msgpack") == "-" {
			continue
		}
		return fmt.Errorf("%w: snapshot state %s has the unexported field %s, which msgpack cannot store (export it, tag it `msgpack:\"-\"` if it is derived, or write MarshalSnapshot by hand)",
			es.ErrInvalidArgument, t, f.Name)
	}
	return nil
}
