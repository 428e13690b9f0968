package memstore

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// ReadStream implements [es.Store.ReadStream]. The events are those stored
// when the iteration starts; the lock is not held while they are yielded.
func (s *Store) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	var o es.ReadStreamOpts
	if opts != nil {
		o = *opts
	}
	return func(yield func(es.Event, error) bool) {
		if err := storekit.ValidateStreamID(streamID); err != nil {
			yield(es.Event{}, err)
			return
		}
		if o.MaxCount < 0 {
			yield(es.Event{}, fmt.Errorf("%w: reading stream %q: max count %d is negative", es.ErrInvalidArgument, streamID, o.MaxCount))
			return
		}
		if err := ctx.Err(); err != nil {
			yield(es.Event{}, fmt.Errorf("memstore: reading stream %q: %w", streamID, err))
			return
		}

		s.mu.RLock()
		log := s.log
		var events []int
		first := int64(math.MaxInt64)
		if st := s.streams[streamID]; st != nil {
			events, first = st.events, st.visibleFrom()
		}
		s.mu.RUnlock()

		version, step := max(o.From, first), int64(1)
		if o.Backwards {
			version, step = int64(len(events)), -1
			if o.From > 0 {
				version = min(o.From, version)
			}
		}
		for n := 0; version >= first && version <= int64(len(events)); version += step {
			if o.MaxCount > 0 && n == o.MaxCount {
				return
			}
			if err := ctx.Err(); err != nil {
				yield(es.Event{}, fmt.Errorf("memstore: reading stream %q: %w", streamID, err))
				return
			}
			if !yield(clone(log[events[version-1]]), nil) {
				return
			}
			n++
		}
	}
}

// ReadAll implements [es.Store.ReadAll]. When it reaches the end of the log
// it looks again, so events appended while it runs are returned too; it
// stops when a look finds nothing new. The lock is not held while events are
// yielded.
func (s *Store) ReadAll(ctx context.Context, opts *es.ReadAllOpts) iter.Seq2[es.Event, error] {
	var o es.ReadAllOpts
	if opts != nil {
		o = *opts
		o.Categories = slices.Clone(o.Categories)
		o.EventTypes = slices.Clone(o.EventTypes)
	}
	return func(yield func(es.Event, error) bool) {
		if o.MaxCount < 0 {
			yield(es.Event{}, fmt.Errorf("%w: reading all: max count %d is negative", es.ErrInvalidArgument, o.MaxCount))
			return
		}
		if err := ctx.Err(); err != nil {
			yield(es.Event{}, fmt.Errorf("memstore: reading all: %w", err))
			return
		}
		keep := func(e *es.Event) bool {
			return (len(o.Categories) == 0 || slices.Contains(o.Categories, es.Category(e.StreamID))) &&
				(len(o.EventTypes) == 0 || slices.Contains(o.EventTypes, e.Type))
		}

		s.mu.RLock()
		log := s.log
		s.mu.RUnlock()
		// The log is in position order: find the first event after o.After.
		i := sort.Search(len(log), func(i int) bool { return o.After.Before(log[i].Position) })
		n := 0
		for {
			for ; i < len(log); i++ {
				if o.MaxCount > 0 && n == o.MaxCount {
					return
				}
				if err := ctx.Err(); err != nil {
					yield(es.Event{}, fmt.Errorf("memstore: reading all: %w", err))
					return
				}
				if !keep(&log[i]) {
					continue
				}
				if !yield(clone(log[i]), nil) {
					return
				}
				n++
			}
			s.mu.RLock()
			next := s.log
			s.mu.RUnlock()
			// A removal (lifecycle.go) makes a new log: look up where
			// this one ended in it.
			last := es.Position{}
			if len(log) > 0 {
				last = log[len(log)-1].Position
			}
			j := sort.Search(len(next), func(j int) bool { return last.Before(next[j].Position) })
			if j == len(next) {
				return
			}
			log, i = next, j
		}
	}
}
