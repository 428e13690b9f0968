package storekit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgevent/es"
)

// fakeLog is a log whose readable part grows: a read returns only events
// below visible, as a store's read returns only events below the horizon.
type fakeLog struct {
	events     []es.Event
	visible    atomic.Int64
	partitions int
	reads      atomic.Int64 // reads of more than one partition
}

func newFakeLog(n, streams, partitions int, seed uint64) *fakeLog {
	rng := rand.New(rand.NewPCG(seed, 1))
	l := &fakeLog{partitions: partitions}
	tx := uint64(100)
	for i := range n {
		if rng.IntN(4) == 0 {
			tx += uint64(1 + rng.IntN(3))
		}
		l.events = append(l.events, es.Event{
			StreamID: fmt.Sprintf("s-%d", rng.IntN(streams)),
			Position: es.NewPosition(tx, int64(i+1)),
		})
	}
	return l
}

func (l *fakeLog) read(_ context.Context, after es.Position, max int, set []int) ([]es.Event, error) {
	if len(set) > 1 {
		l.reads.Add(1)
	}
	var out []es.Event
	for _, e := range l.events[:l.visible.Load()] {
		if after.Before(e.Position) && slices.Contains(set, es.StreamPartition(e.StreamID, l.partitions)) {
			out = append(out, e)
			if len(out) == max {
				break
			}
		}
	}
	return out, nil
}

// of returns partition p's events.
func (l *fakeLog) of(p int) []es.Event {
	var out []es.Event
	for _, e := range l.events {
		if es.StreamPartition(e.StreamID, l.partitions) == p {
			out = append(out, e)
		}
	}
	return out
}

// TestSharedReadsWholeLog: partitions reading a fully readable log through
// shared reads get exactly their events, in order, in full batches until
// their last one (a short batch means the end).
func TestSharedReadsWholeLog(t *testing.T) {
	const partitions = 8
	l := newFakeLog(20000, 300, partitions, 1)
	l.visible.Store(int64(len(l.events)))
	r := NewSharedReads(partitions)
	held := []int{1, 3, 4, 6}
	for _, p := range held {
		r.Open(p)
	}
	var wg sync.WaitGroup
	for _, p := range held {
		wg.Go(func() {
			want := l.of(p)
			var got []es.Event
			var after es.Position
			for {
				batch, err := r.Read(t.Context(), p, after, 100, l.read)
				if err != nil {
					t.Error(err)
					return
				}
				got = append(got, batch...)
				if len(batch) < 100 {
					break
				}
				after = batch[len(batch)-1].Position
			}
			if firstDiff(got, want) != len(want) || len(got) != len(want) {
				t.Errorf("partition %d: got %d events, want %d (first difference at %d)", p, len(got), len(want), firstDiff(got, want))
			}
		})
	}
	wg.Wait()
	if n := l.reads.Load(); n == 0 {
		t.Error("no read was shared")
	}
	// Four partitions read alone would read 4 x 20,000 rows' worth; shared,
	// the reads of more than one partition cover the log about once.
	t.Logf("shared reads: %d", l.reads.Load())
}

// TestSharedReadsGrowingLog: while the readable log grows and partitions
// close and open again (hand-overs), every partition still reads each of
// its events exactly once, in order.
func TestSharedReadsGrowingLog(t *testing.T) {
	const partitions = 6
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			l := newFakeLog(15000, 200, partitions, seed)
			r := NewSharedReads(partitions)
			for p := range partitions {
				r.Open(p)
			}
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { // the log grows
				defer close(done)
				rng := rand.New(rand.NewPCG(seed, 2))
				for v := 0; v < len(l.events); {
					v = min(v+1+rng.IntN(300), len(l.events))
					l.visible.Store(int64(v))
					for range rng.IntN(50) {
						runtime.Gosched() // let the readers run between growth steps
					}
				}
			})
			for p := range partitions {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(seed, uint64(10+p)))
					want := l.of(p)
					var got []es.Event
					var after es.Position
					finished := false
					for !finished {
						select {
						case <-done:
							finished = true // one more pass reads the rest
						default:
						}
						for {
							max := 1 + rng.IntN(120)
							batch, err := r.Read(t.Context(), p, after, max, l.read)
							if err != nil {
								t.Error(err)
								return
							}
							got = append(got, batch...)
							if len(batch) > 0 {
								after = batch[len(batch)-1].Position
							}
							if len(batch) < max {
								break
							}
						}
						if rng.IntN(10) == 0 {
							// Handed over, and taken back after the
							// others have read without it.
							r.Close(p)
							for n := l.reads.Load(); l.reads.Load() < n+2; {
								select {
								case <-done:
								default:
									runtime.Gosched()
									continue
								}
								break
							}
							r.Open(p)
						}
					}
					if firstDiff(got, want) != len(want) || len(got) != len(want) {
						t.Errorf("partition %d: got %d events, want %d (first difference at %d)", p, len(got), len(want), firstDiff(got, want))
					}
				})
			}
			wg.Wait()
		})
	}
}

func firstDiff(a, b []es.Event) int {
	for i := range min(len(a), len(b)) {
		if a[i].Position != b[i].Position {
			return i
		}
	}
	return min(len(a), len(b))
}
