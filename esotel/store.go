package esotel

import (
	"context"
	"errors"
	"iter"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pgevent/es"
)

// errUnsupported is returned by the methods of an instrumented store that
// the wrapped store does not have.
var errUnsupported = errors.New("esotel: the wrapped store does not support this")

// Store returns s with spans and metrics around its operations. It has the
// methods of es.SnapshotStore and es.TxSubscriber; those s lacks fail. Its
// subscriptions are s's (wrap their handlers with Handler or TxHandler).
func (in *Instrumentation) Store(s es.Store) *Store {
	return &Store{in: in, s: s}
}

// Store is an instrumented store ([Instrumentation.Store]).
type Store struct {
	in *Instrumentation
	s  es.Store
}

var (
	_ es.SnapshotStore = (*Store)(nil)
	_ es.TxSubscriber  = (*Store)(nil)
)

// Unwrap returns the wrapped store.
func (st *Store) Unwrap() es.Store { return st.s }

func streamAttr(id string) attribute.KeyValue { return attribute.String("es.stream_id", id) }

// Append implements [es.Store.Append].
func (st *Store) Append(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent) (es.AppendResult, error) {
	ctx, done := st.in.span(ctx, "append", streamAttr(streamID), attribute.Int("es.events", len(events)))
	res, err := st.s.Append(ctx, streamID, expected, events)
	done(err)
	if err == nil {
		st.in.appended.Add(ctx, int64(len(events)))
	}
	return res, err
}

// AppendWithSnapshot implements [es.SnapshotStore.AppendWithSnapshot].
func (st *Store) AppendWithSnapshot(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent, snapshot es.NewSnapshot) (es.AppendResult, error) {
	ss, ok := st.s.(es.SnapshotStore)
	if !ok {
		return es.AppendResult{}, errUnsupported
	}
	ctx, done := st.in.span(ctx, "append", streamAttr(streamID), attribute.Int("es.events", len(events)), attribute.Bool("es.snapshot", true))
	res, err := ss.AppendWithSnapshot(ctx, streamID, expected, events, snapshot)
	done(err)
	if err == nil {
		st.in.appended.Add(ctx, int64(len(events)))
	}
	return res, err
}

// seq instruments an iterator: the span covers the whole iteration.
func seq[T any](in *Instrumentation, ctx context.Context, op string, read func(context.Context) iter.Seq2[T, error], attrs ...attribute.KeyValue) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		ctx, done := in.span(ctx, op, attrs...)
		var failed error
		for v, err := range read(ctx) {
			if err != nil {
				failed = err
			}
			if !yield(v, err) {
				break
			}
		}
		done(failed)
	}
}

// ReadStream implements [es.Store.ReadStream].
func (st *Store) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	return seq(st.in, ctx, "read_stream", func(ctx context.Context) iter.Seq2[es.Event, error] {
		return st.s.ReadStream(ctx, streamID, opts)
	}, streamAttr(streamID))
}

// ReadAll implements [es.Store.ReadAll].
func (st *Store) ReadAll(ctx context.Context, opts *es.ReadAllOpts) iter.Seq2[es.Event, error] {
	return seq(st.in, ctx, "read_all", func(ctx context.Context) iter.Seq2[es.Event, error] {
		return st.s.ReadAll(ctx, opts)
	})
}

// Load implements [es.SnapshotStore.Load].
func (st *Store) Load(ctx context.Context, streamID string, schemaVersion int) iter.Seq2[es.Loaded, error] {
	ss, ok := st.s.(es.SnapshotStore)
	if !ok {
		return func(yield func(es.Loaded, error) bool) { yield(es.Loaded{}, errUnsupported) }
	}
	return seq(st.in, ctx, "load", func(ctx context.Context) iter.Seq2[es.Loaded, error] {
		return ss.Load(ctx, streamID, schemaVersion)
	}, streamAttr(streamID))
}

// StreamInfo implements [es.Store.StreamInfo].
func (st *Store) StreamInfo(ctx context.Context, streamID string) (es.StreamInfo, error) {
	ctx, done := st.in.span(ctx, "stream_info", streamAttr(streamID))
	info, err := st.s.StreamInfo(ctx, streamID)
	if errors.Is(err, es.ErrNotFound) {
		done(nil) // an answer, not a failure
	} else {
		done(err)
	}
	return info, err
}

// SaveSnapshot implements [es.SnapshotStore.SaveSnapshot].
func (st *Store) SaveSnapshot(ctx context.Context, snapshot es.Snapshot) (bool, error) {
	ss, ok := st.s.(es.SnapshotStore)
	if !ok {
		return false, errUnsupported
	}
	ctx, done := st.in.span(ctx, "save_snapshot", streamAttr(snapshot.StreamID))
	stored, err := ss.SaveSnapshot(ctx, snapshot)
	done(err)
	return stored, err
}

// ReadSnapshot implements [es.SnapshotStore.ReadSnapshot].
func (st *Store) ReadSnapshot(ctx context.Context, streamID string) (es.Snapshot, error) {
	ss, ok := st.s.(es.SnapshotStore)
	if !ok {
		return es.Snapshot{}, errUnsupported
	}
	return ss.ReadSnapshot(ctx, streamID)
}

// subscriber returns the wrapped store as an es.TxSubscriber.
func (st *Store) subscriber() (es.TxSubscriber, error) {
	sub, ok := st.s.(es.TxSubscriber)
	if !ok {
		return nil, errUnsupported
	}
	return sub, nil
}

// Subscribe implements [es.Subscriber.Subscribe], with the handler
// instrumented (Handler).
func (st *Store) Subscribe(ctx context.Context, name string, handler es.Handler, opts *es.SubscribeOpts) error {
	sub, err := st.subscriber()
	if err != nil {
		return err
	}
	if handler != nil {
		handler = st.in.Handler(name, handler)
	}
	return sub.Subscribe(ctx, name, handler, opts)
}

// SubscribeTx implements [es.TxSubscriber.SubscribeTx], with the handler
// instrumented (TxHandler).
func (st *Store) SubscribeTx(ctx context.Context, name string, handler es.TxHandler, opts *es.SubscribeOpts) error {
	sub, err := st.subscriber()
	if err != nil {
		return err
	}
	if handler != nil {
		handler = st.in.TxHandler(name, handler)
	}
	return sub.SubscribeTx(ctx, name, handler, opts)
}

// Checkpoint implements [es.Subscriber.Checkpoint].
func (st *Store) Checkpoint(ctx context.Context, name string) (es.Position, bool, error) {
	sub, err := st.subscriber()
	if err != nil {
		return es.Position{}, false, err
	}
	return sub.Checkpoint(ctx, name)
}

// DeleteCheckpoint implements [es.Subscriber.DeleteCheckpoint].
func (st *Store) DeleteCheckpoint(ctx context.Context, name string) (bool, error) {
	sub, err := st.subscriber()
	if err != nil {
		return false, err
	}
	return sub.DeleteCheckpoint(ctx, name)
}

// ResetCheckpoint implements [es.Subscriber.ResetCheckpoint].
func (st *Store) ResetCheckpoint(ctx context.Context, name string, pos es.Position) error {
	sub, err := st.subscriber()
	if err != nil {
		return err
	}
	return sub.ResetCheckpoint(ctx, name, pos)
}

// WaitFor implements [es.Subscriber.WaitFor].
func (st *Store) WaitFor(ctx context.Context, name string, pos es.Position) error {
	sub, err := st.subscriber()
	if err != nil {
		return err
	}
	ctx, done := st.in.span(ctx, "wait_for", attribute.String("es.subscription", name), attribute.String("es.position", pos.String()))
	err = sub.WaitFor(ctx, name, pos)
	done(err)
	return err
}

// SubscriptionStatus implements [es.Subscriber.SubscriptionStatus].
func (st *Store) SubscriptionStatus(name string) es.SubscriptionStatus {
	sub, err := st.subscriber()
	if err != nil {
		return es.SubscriptionStatus{Name: name}
	}
	return sub.SubscriptionStatus(name)
}

// SubscriptionHealth implements [es.Subscriber.SubscriptionHealth].
func (st *Store) SubscriptionHealth(ctx context.Context, name string) (es.SubscriptionHealth, error) {
	sub, err := st.subscriber()
	if err != nil {
		return es.SubscriptionHealth{}, err
	}
	return sub.SubscriptionHealth(ctx, name)
}

// ParkedEvents implements [es.Subscriber.ParkedEvents].
func (st *Store) ParkedEvents(ctx context.Context, name string) ([]es.ParkedEvent, error) {
	sub, err := st.subscriber()
	if err != nil {
		return nil, err
	}
	return sub.ParkedEvents(ctx, name)
}

// RetryParked implements [es.Subscriber.RetryParked].
func (st *Store) RetryParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	sub, err := st.subscriber()
	if err != nil {
		return false, err
	}
	return sub.RetryParked(ctx, name, pos)
}

// SkipParked implements [es.Subscriber.SkipParked].
func (st *Store) SkipParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	sub, err := st.subscriber()
	if err != nil {
		return false, err
	}
	return sub.SkipParked(ctx, name, pos)
}
