package es

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"time"

	"github.com/pgevent/es/internal/sqlcheck"
)

// RepositoryConfig configures a [Repository]. A nil *RepositoryConfig uses
// every default.
type RepositoryConfig struct {
	// Category is the stream category: an aggregate with id X lives in the
	// stream "<Category>-<X>". It must not be empty nor contain '-'.
	// Defaults to the aggregate's Go type name in lower case (type Order
	// gives "order").
	Category string
	// MaxRetries bounds how many times [Repository.Update] reloads the
	// aggregate and runs the command again after a version conflict; it
	// must not be negative. Defaults to 3 (0 means the default).
	MaxRetries int

	// SnapshotPolicy decides when a save stores a snapshot with the
	// events (package snapshot: snapshot.Every(n), snapshot.When(f),
	// snapshot.Never()). It applies to aggregates that implement
	// [Snapshotter] saved to a [SnapshotStore]. Defaults to nil: saves
	// store no snapshots (loads still use the snapshots there are).
	SnapshotPolicy SnapshotPolicy
	// OnSnapshotError is told about every snapshot the repository could
	// not use or store: a stored state that failed to decode (the load
	// then replayed the events) or an aggregate that could not encode its
	// state (the save then stored the events without a snapshot). It is
	// called synchronously and must not block. Defaults to nil: such
	// failures are only absorbed.
	OnSnapshotError func(err *SnapshotError)
}

// defaultMaxRetries is the default of [RepositoryConfig.MaxRetries].
const defaultMaxRetries = 3

// Repository loads and saves aggregates of type A, each in its own stream
// "<category>-<id>", through a [Store] and a [Registry]. It works the same
// on every store. A Repository is safe for concurrent use; the aggregates
// it returns are not.
//
// Loading replays the stream through the aggregate's Apply as the events
// are read and decoded, without holding the history in memory. Saving
// appends the aggregate's pending events expecting the stream to be at the
// version the aggregate was loaded at, so a concurrent writer makes the
// save fail with a *[VersionConflictError] rather than be overwritten;
// [Repository.Update] turns that into a reload and a retry.
//
// # Snapshots
//
// An aggregate that implements [Snapshotter], on a store that is a
// [SnapshotStore] (pgstore and memstore are), is loaded from its stream's
// snapshot of the aggregate's schema version and the events after it, in
// one round trip ([SnapshotStore.Load]); without such a snapshot, from all
// its events. At a save, [RepositoryConfig.SnapshotPolicy] decides whether
// the state after the saved events is stored as a snapshot in the same
// call as the events ([SnapshotStore.AppendWithSnapshot]); the stored
// snapshot is then exactly as durable as those events and never ahead of
// the stream.
//
// A snapshot never costs events or correctness: if the aggregate cannot
// encode its state, the events are saved without it; if a stored state
// cannot be restored, the load replays the whole stream instead. The
// repository seals the state with a CRC-32C checksum over the snapshot's
// version and state (a msgpack map {"crc32c": n, "state": <state>}), so a
// damaged or hand-edited snapshot is detected and replayed around, not
// restored into a wrong aggregate. Both cases reach
// [RepositoryConfig.OnSnapshotError] as a *[SnapshotError].
type Repository[A Aggregate] struct {
	store        Store
	registry     *Registry
	newAggregate func() A
	category     string
	maxRetries   int

	snapshots       SnapshotStore // nil when store is not one
	snapshotPolicy  SnapshotPolicy
	onSnapshotError func(err *SnapshotError)
}

// NewRepository returns a repository of aggregates of type A in store,
// with events encoded and decoded by registry. newAggregate returns a fresh,
// empty, non-nil aggregate (for example func() *Order { return &Order{} });
// it is called for every load and every [Repository.New].
//
// It returns an error wrapping [ErrInvalidArgument] for a nil store,
// registry or newAggregate, or an invalid config.
func NewRepository[A Aggregate](store Store, registry *Registry, newAggregate func() A, config *RepositoryConfig) (*Repository[A], error) {
	if store == nil {
		return nil, fmt.Errorf("%w: repository: nil store", ErrInvalidArgument)
	}
	if registry == nil {
		return nil, fmt.Errorf("%w: repository: nil registry", ErrInvalidArgument)
	}
	if newAggregate == nil {
		return nil, fmt.Errorf("%w: repository: nil newAggregate", ErrInvalidArgument)
	}
	var c RepositoryConfig
	if config != nil {
		c = *config
	}
	if c.Category == "" {
		c.Category = defaultCategory[A](newAggregate)
	}
	c.MaxRetries = cmp.Or(c.MaxRetries, defaultMaxRetries)
	if err := c.validate(); err != nil {
		return nil, err
	}
	snapshots, _ := store.(SnapshotStore)
	return &Repository[A]{
		store:           store,
		registry:        registry,
		newAggregate:    newAggregate,
		category:        c.Category,
		maxRetries:      c.MaxRetries,
		snapshots:       snapshots,
		snapshotPolicy:  c.SnapshotPolicy,
		onSnapshotError: c.OnSnapshotError,
	}, nil
}

// validate checks a config whose defaults are filled in.
func (c *RepositoryConfig) validate() error {
	switch {
	case c.Category == "":
		return fmt.Errorf("%w: repository: empty category", ErrInvalidArgument)
	case strings.Contains(c.Category, "-"):
		return fmt.Errorf("%w: repository: category %q contains '-'", ErrInvalidArgument, c.Category)
	case !sqlcheck.Text(c.Category):
		return fmt.Errorf("%w: repository: category contains a NUL byte or invalid UTF-8", ErrInvalidArgument)
	case c.MaxRetries < 0:
		return fmt.Errorf("%w: repository: negative MaxRetries %d", ErrInvalidArgument, c.MaxRetries)
	}
	return nil
}

// defaultCategory returns the lower-cased name of A's type, pointers
// dereferenced. When A is an interface type, the dynamic type of an
// aggregate newAggregate returns is used instead.
func defaultCategory[A Aggregate](newAggregate func() A) string {
	t := reflect.TypeFor[A]()
	if t.Kind() == reflect.Interface {
		t = reflect.TypeOf(newAggregate())
		if t == nil {
			return ""
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return strings.ToLower(t.Name())
}

// WithStore returns a repository like r (same registry, aggregates,
// category and snapshot policy) on another store: typically a store bound
// to the caller's transaction, so that loads and saves run in it, e.g.
// orders.WithStore(pgStore.WithTx(tx)).
func (r *Repository[A]) WithStore(store Store) *Repository[A] {
	c := *r
	c.store = store
	c.snapshots, _ = store.(SnapshotStore)
	return &c
}

// StreamID returns the id of the stream of the aggregate with id id:
// "<category>-<id>".
func (r *Repository[A]) StreamID(id string) string { return r.category + "-" + id }

// New returns a fresh aggregate with its id set to id, for creating a new
// aggregate: record its first events with commands, then [Repository.Save]
// it (which fails with a *[VersionConflictError] if the stream already
// exists). Nothing is stored until then.
func (r *Repository[A]) New(id string) A {
	agg := r.newAggregate()
	agg.SetID(id)
	return agg
}

// Load reads the aggregate's stream and replays it: every event is decoded
// with the registry and applied as it is read, without holding the history
// in memory. The aggregate returned has its id set (before the first event
// is applied), nothing pending, and StoredVersion equal to the stream's
// version.
//
// An aggregate that implements [Snapshotter] is restored from the stream's
// snapshot of its schema version, when the store keeps one, and only the
// events after the snapshot are replayed (see [Repository] on snapshots); a
// snapshot that cannot be restored is skipped for a full replay.
//
// Errors: [ErrNotFound] (wrapped) when the stream has no events or is
// deleted ([StreamLifecycle]); [ErrStreamTruncated] when its first events
// were removed and no snapshot at or after the truncation point stands in
// for them;
// [ErrInvalidArgument] for an empty id; a read, decode (such as
// [ErrUnknownEventType]) or Apply error, wrapped with the stream id.
func (r *Repository[A]) Load(ctx context.Context, id string) (A, error) {
	var zero A
	if id == "" {
		return zero, fmt.Errorf("%w: loading %s: empty aggregate id", ErrInvalidArgument, r.category)
	}
	streamID := r.StreamID(id)
	agg, err := r.fresh(id, streamID)
	if err != nil {
		return zero, err
	}
	if sn, ok := any(agg).(Snapshotter); ok && r.snapshots != nil {
		restored, err := r.loadFromSnapshot(ctx, agg, sn, streamID)
		if err != nil {
			return zero, fmt.Errorf("loading %q: %w", streamID, err)
		}
		if !restored { // a snapshot that could not be restored: replay all
			if agg, err = r.fresh(id, streamID); err != nil {
				return zero, err
			}
			err = RehydrateSeq(agg, r.decoded(ctx, agg, streamID))
		}
		if err != nil {
			return zero, fmt.Errorf("loading %q: %w", streamID, err)
		}
	} else if err := RehydrateSeq(agg, r.decoded(ctx, agg, streamID)); err != nil {
		return zero, fmt.Errorf("loading %q: %w", streamID, err)
	}
	if agg.StoredVersion() == 0 {
		// No event to read: a stream that does not exist (or is deleted),
		// or one whose every event was removed (retention, truncation).
		if info, err := r.store.StreamInfo(ctx, streamID); err == nil && info.Version > 0 {
			return zero, fmt.Errorf("loading %q: %w: its events up to version %d were removed, and no snapshot at that version stands in for them",
				streamID, ErrStreamTruncated, info.Version)
		}
		return zero, fmt.Errorf("loading %q: %w", streamID, ErrNotFound)
	}
	return agg, nil
}

// fresh returns a new aggregate from newAggregate with its id set.
func (r *Repository[A]) fresh(id, streamID string) (A, error) {
	agg := r.newAggregate()
	if _, err := baseOf(agg); err != nil {
		var zero A
		return zero, fmt.Errorf("loading %q: newAggregate: %w", streamID, err)
	}
	agg.SetID(id)
	return agg, nil
}

// decoded returns the events of the stream, read and decoded one at a time,
// for agg. It checks that versions run 1, 2, 3... so that the aggregate's
// stored version is the stream's.
func (r *Repository[A]) decoded(ctx context.Context, agg A, streamID string) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		var want int64
		b := agg.aggregateBase()
		for e, err := range r.store.ReadStream(ctx, streamID, nil) {
			if err != nil {
				yield(nil, err)
				return
			}
			event, err := r.decodeNext(ctx, b, e, &want, want == 0)
			if !yield(event, err) || err != nil {
				return
			}
		}
	}
}

// decodeNext decodes e, which must be the stream's event right after
// version *last, and advances *last: a store that skips or repeats a
// version is an error, so that the aggregate's stored version is the
// stream's. The subjects whose personal fields it decrypted are added to
// b's (they decide how a snapshot of the aggregate is encrypted).
//
// The first event read (first) may start later than expected when the
// stream was truncated (retention): that is [ErrStreamTruncated], since no
// snapshot at or after the truncation point stood in for the events
// removed.
func (r *Repository[A]) decodeNext(ctx context.Context, b *AggregateBase, e Event, last *int64, first bool) (any, error) {
	if *last++; e.Version != *last {
		if first && e.Version > *last {
			return nil, fmt.Errorf("%w: its events before version %d were removed, and no snapshot at version %d or later stands in for them",
				ErrStreamTruncated, e.Version, e.Version-1)
		}
		return nil, fmt.Errorf("store returned version %d where %d was expected", e.Version, *last)
	}
	event, subjects, err := r.registry.decode(ctx, e, nil)
	b.addSubjects(subjects)
	return event, err
}

// Save appends the aggregate's pending events to its stream, expecting the
// stream to be at the aggregate's StoredVersion ([NoStream] for a new
// aggregate), and then marks them committed ([Aggregate.Commit]). It
// returns the append's result: its LastPosition is what
// [Subscriber.WaitFor] takes to wait until a read model shows the save.
// With nothing pending it does nothing and returns the zero AppendResult
// (whose position WaitFor does not wait for).
//
// Every event is encoded with the registry; metadata set on ctx with
// [WithMetadata] is stored on every event of the save. Either all the
// events are stored or none is.
//
// On a version conflict the error is the store's *[VersionConflictError]
// (errors.Is(err, [ErrWrongVersion]) and errors.As work) and the pending
// events are kept: reload and run the command again, or use
// [Repository.Update], which does. A nil aggregate, an empty id or an
// event of an unregistered type is an error wrapping [ErrInvalidArgument],
// and nothing is written.
//
// To save in a transaction of your own (with a read-model row, an outbox
// message), save through a repository on a store bound to it:
// r.WithStore(pgStore.WithTx(tx)).Save(ctx, agg). The aggregate is marked
// committed as soon as the append succeeds, before tx commits; if tx then
// rolls back, the aggregate no longer matches the store: throw it away and
// load it again.
func (r *Repository[A]) Save(ctx context.Context, agg A) (AppendResult, error) {
	b, err := baseOf(agg)
	if err != nil {
		return AppendResult{}, fmt.Errorf("saving %s: %w", r.category, err)
	}
	id := agg.ID()
	if id == "" {
		return AppendResult{}, fmt.Errorf("%w: saving %s: aggregate has an empty id", ErrInvalidArgument, r.category)
	}
	streamID := r.StreamID(id)
	pending := agg.Pending()
	if len(pending) == 0 {
		return AppendResult{}, nil
	}
	var meta []byte
	if md, ok := MetadataFrom(ctx); ok {
		var err error
		if meta, err = EncodeMetadata(&md); err != nil {
			return AppendResult{}, fmt.Errorf("saving %q: %w", streamID, err)
		}
	}
	events := make([]NewEvent, len(pending))
	for i, p := range pending {
		// Personal fields are the stream's subject's unless the event
		// names its own.
		et, data, subjects, err := r.registry.encode(ctx, p, streamID)
		if err != nil {
			return AppendResult{}, fmt.Errorf("saving %q: pending event %d (%T): %w", streamID, i, p, err)
		}
		b.addSubjects(subjects)
		events[i] = NewEvent{Type: et.name, SchemaVersion: et.version, Data: data, Metadata: meta}
	}
	expected := NoStream
	if v := agg.StoredVersion(); v > 0 {
		expected = Exactly(v)
	}
	if r.snapshots != nil {
		if snapshot, ok := r.dueSnapshot(ctx, agg, b, streamID); ok {
			res, err := r.snapshots.AppendWithSnapshot(ctx, streamID, expected, events, snapshot)
			if err != nil {
				return AppendResult{}, fmt.Errorf("saving %q: %w", streamID, err)
			}
			agg.Commit()
			b.snapshotVersion, b.snapshotAt = agg.StoredVersion(), time.Now()
			return res, nil
		}
	}
	res, err := r.store.Append(ctx, streamID, expected, events)
	if err != nil {
		return AppendResult{}, fmt.Errorf("saving %q: %w", streamID, err)
	}
	agg.Commit()
	return res, nil
}

// Update loads the aggregate, runs command on it and saves the events the
// command recorded. When the save meets a version conflict (another writer
// appended to the stream since the load), it loads the aggregate again and
// reruns command on the fresh state, at most MaxRetries more times
// ([RepositoryConfig.MaxRetries]); after that it returns the last conflict
// error (a *[VersionConflictError]). command must therefore be safe to run
// more than once, and must only change the aggregate (through [Record]).
//
// It returns the saved aggregate and the append's result (see
// [Repository.Save]). An error returned by command is returned
// as is and nothing is saved. Update of an aggregate whose stream has no
// events fails with [ErrNotFound]: create aggregates with
// [Repository.New], commands and [Repository.Save].
func (r *Repository[A]) Update(ctx context.Context, id string, command func(A) error) (A, AppendResult, error) {
	var zero A
	if command == nil {
		return zero, AppendResult{}, fmt.Errorf("%w: updating %s: nil command", ErrInvalidArgument, r.category)
	}
	// From the primary: a load from a lagging replica would only make the
	// save fail with a version conflict, and load again.
	readCtx := ReadFromPrimary(ctx)
	for attempt := 0; ; attempt++ {
		agg, err := r.Load(readCtx, id)
		if err != nil {
			return zero, AppendResult{}, err
		}
		if err := command(agg); err != nil {
			return zero, AppendResult{}, err
		}
		res, err := r.Save(ctx, agg)
		if err == nil {
			return agg, res, nil
		}
		if !errors.Is(err, ErrWrongVersion) {
			return zero, AppendResult{}, err
		}
		if attempt >= r.maxRetries {
			return zero, AppendResult{}, fmt.Errorf("updating %q: giving up after %d retries: %w", r.StreamID(id), r.maxRetries, err)
		}
	}
}
