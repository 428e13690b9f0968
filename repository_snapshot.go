package es

// The repository's snapshots: loading an aggregate from its stream's
// snapshot and the events after it, and storing one with a save when the
// policy says so (see [Repository] and [Snapshotter]).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/pgevent/es/internal/codec"
	"github.com/pgevent/es/internal/sqlcheck"
)

// loadFromSnapshot rebuilds agg from the stream's snapshot of sn's schema
// version, if any, and the events after it, read in one round trip. It
// returns restored=false and no error when the stream has such a snapshot
// but it could not be restored: agg is then spoiled (a restore may have
// half-happened) and the caller replays the whole stream into a fresh
// aggregate.
func (r *Repository[A]) loadFromSnapshot(ctx context.Context, agg A, sn Snapshotter, streamID string) (restored bool, err error) {
	schema := sn.SnapshotSchemaVersion()
	if !sqlcheck.Int32(schema) {
		return false, fmt.Errorf("%w: %T.SnapshotSchemaVersion: %d does not fit in 32 bits", ErrInvalidArgument, agg, schema)
	}
	b, err := baseOf(agg)
	if err != nil {
		return false, err
	}
	failed := false
	events := func(yield func(any, error) bool) {
		var want int64
		first := true
		for item, err := range r.snapshots.Load(ctx, streamID, schema) {
			if err != nil {
				yield(nil, err)
				return
			}
			if s := item.Snapshot; s != nil {
				if !first {
					yield(nil, fmt.Errorf("store returned a snapshot after the first item"))
					return
				}
				first = false
				if err := r.restoreSnapshot(ctx, sn, b, s); err != nil {
					r.snapshotFailed(&SnapshotError{StreamID: streamID, Version: s.Version, Op: "restore", Err: err})
					failed = true
					return
				}
				b.stored, want = s.Version, s.Version
				b.snapshotVersion, b.snapshotAt = s.Version, s.CreatedAt
				continue
			}
			event, err := r.decodeNext(ctx, b, item.Event, &want, first || want == b.snapshotVersion)
			first = false
			if !yield(event, err) || err != nil {
				return
			}
		}
	}
	err = RehydrateSeq(agg, events)
	if failed {
		return false, nil
	}
	return true, err
}

// restoreSnapshot opens the sealed state of s, decrypting it when it holds
// personal data (the subjects it was encrypted for then become b's), and
// hands it to sn.
func (r *Repository[A]) restoreSnapshot(ctx context.Context, sn Snapshotter, b *AggregateBase, s *Snapshot) error {
	state, personal, err := codec.OpenAny(s.Version, s.State)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if personal {
		var subjects []string
		if state, subjects, err = r.decryptState(ctx, state); err != nil {
			return err
		}
		b.addSubjects(subjects)
	}
	return sn.UnmarshalSnapshot(state)
}

// A snapshot state holding personal data is encrypted once for each
// subject whose personal fields went into the aggregate, one inside the
// other, so that forgetting any of them makes the snapshot unreadable (a
// load then replays the events, in which that subject's fields are
// erased). Each layer is an encrypted personal value (as an event's
// personal field) whose plaintext is a byte saying what follows (layerState:
// the state; layerNext: the next layer) and that.
const (
	layerState = 0
	layerNext  = 1
)

// encryptState encrypts state for each of subjects. A subject without a
// key (forgotten since its fields were decrypted) is an error wrapping
// [ErrSubjectForgotten]: the state may hold its data, so it is not stored.
func (r *Repository[A]) encryptState(ctx context.Context, state []byte, subjects []string) ([]byte, error) {
	kr := r.registry.keyring()
	if kr == nil {
		return nil, ErrNoKeyring
	}
	subjects = slices.Sorted(slices.Values(subjects))
	data := append([]byte{layerState}, state...)
	for i, subject := range subjects {
		aead, err := kr.cipherFor(ctx, subject, false)
		if err != nil {
			return nil, err
		}
		if aead == nil {
			return nil, fmt.Errorf("subject %q: %w", subject, ErrSubjectForgotten)
		}
		value := codec.AppendSealedValue(nil, codec.AppendSealed(nil, aead, subject, data))
		if i == len(subjects)-1 {
			return value, nil
		}
		data = append([]byte{layerNext}, value...)
	}
	return nil, errors.New("no subject")
}

// decryptState undoes encryptState and returns the state and the subjects
// it was encrypted for. A subject without a key (forgotten) is an error
// wrapping [ErrSubjectForgotten].
func (r *Repository[A]) decryptState(ctx context.Context, value []byte) ([]byte, []string, error) {
	kr := r.registry.keyring()
	if kr == nil {
		return nil, nil, ErrNoKeyring
	}
	var subjects []string
	for {
		data, ok := codec.SealedData(value)
		if !ok {
			return nil, nil, fmt.Errorf("%w: encrypted state is not an encrypted value", ErrCorruptSnapshot)
		}
		subject, err := codec.SealedSubject(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
		aead, err := kr.cipherFor(ctx, subject, false)
		if err != nil {
			return nil, nil, err
		}
		if aead == nil {
			return nil, nil, fmt.Errorf("subject %q: %w", subject, ErrSubjectForgotten)
		}
		pt, err := codec.OpenSealed(nil, aead, subject, data)
		if err != nil || len(pt) == 0 {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptSnapshot, cmp.Or(err, errors.New("empty layer")))
		}
		subjects = append(subjects, subject)
		switch pt[0] {
		case layerState:
			return pt[1:], subjects, nil
		case layerNext:
			value = pt[1:]
		default:
			return nil, nil, fmt.Errorf("%w: unknown layer %d", ErrCorruptSnapshot, pt[0])
		}
	}
}

// snapshotFailed reports a snapshot the repository could not use.
func (r *Repository[A]) snapshotFailed(err *SnapshotError) {
	if r.onSnapshotError != nil {
		r.onSnapshotError(err)
	}
}

// dueSnapshot asks the policy whether a snapshot is due with the save of
// agg's pending events and, if so, returns the state after them, sealed.
// A state that cannot be encoded is reported and skipped: the save goes on
// without a snapshot.
func (r *Repository[A]) dueSnapshot(ctx context.Context, agg A, b *AggregateBase, streamID string) (NewSnapshot, bool) {
	sn, ok := any(agg).(Snapshotter)
	if !ok || r.snapshotPolicy == nil {
		return NewSnapshot{}, false
	}
	c := SnapshotCandidate{
		StreamID:            streamID,
		Version:             agg.Version(),
		PreviousVersion:     agg.StoredVersion(),
		LastSnapshotVersion: b.snapshotVersion,
		LastSnapshotAt:      b.snapshotAt,
		SinceSnapshot:       math.MaxInt64,
	}
	c.EventsSinceSnapshot = c.Version - c.LastSnapshotVersion
	if !c.LastSnapshotAt.IsZero() {
		c.SinceSnapshot = time.Since(c.LastSnapshotAt)
	}
	if !r.snapshotPolicy.SnapshotDue(c) {
		return NewSnapshot{}, false
	}
	fail := func(err error) (NewSnapshot, bool) {
		r.snapshotFailed(&SnapshotError{StreamID: streamID, Version: c.Version, Op: "marshal", Err: err})
		return NewSnapshot{}, false
	}
	schema := sn.SnapshotSchemaVersion()
	if !sqlcheck.Int32(schema) {
		return fail(fmt.Errorf("%w: %T.SnapshotSchemaVersion: %d does not fit in 32 bits", ErrInvalidArgument, agg, schema))
	}
	state, err := sn.MarshalSnapshot()
	if err != nil {
		return fail(err)
	}
	if len(b.subjects) > 0 {
		sealed, err := r.encryptState(ctx, state, b.subjects)
		if err != nil {
			return fail(err)
		}
		return NewSnapshot{SchemaVersion: schema, State: codec.SealPersonal(c.Version, sealed)}, true
	}
	return NewSnapshot{SchemaVersion: schema, State: codec.Seal(c.Version, state)}, true
}
