package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var concurrencyTests = []test{
	{"SameExpectedVersionOneWins", testSameExpectedVersionOneWins},
	{"NoStreamOneWins", testNoStreamOneWins},
	{"AnyLosesNothing", testAnyLosesNothing},
	{"StreamsDoNotConflict", testStreamsDoNotConflict},
	{"ReaderSkipsNothing", testReaderSkipsNothing},
}

// appenders is the number of concurrent appenders in these tests.
const appenders = 8

// outcome is the result of one concurrent append.
type outcome struct {
	batch []es.NewEvent
	res   es.AppendResult
	err   error
}

// race runs n appends at once, released together by a barrier, and returns
// their outcomes. appendOne must not call require: it runs off the test's
// goroutine.
func race(n int, appendOne func(i int, batch []es.NewEvent) (es.AppendResult, error), batchSize int) []outcome {
	out := make([]outcome, n)
	start := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range n {
		ready.Add(1)
		done.Go(func() {
			out[i].batch = eventsWithIDs(batchSize)
			ready.Done()
			<-start
			out[i].res, out[i].err = appendOne(i, out[i].batch)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

// requireOneWinner checks that exactly one outcome succeeded, that every
// other one is a conflict reporting the winner's version, and that the
// stream holds seed then the winner's batch.
func requireOneWinner(t *testing.T, s es.Store, id string, expected es.ExpectedVersion, seed []es.NewEvent, outcomes []outcome) {
	t.Helper()
	winner := -1
	for i, o := range outcomes {
		if o.err == nil {
			require.Equal(t, -1, winner, "appenders %d and %d both won", winner, i)
			winner = i
		}
	}
	require.NotEqual(t, -1, winner, "no appender won: first error %v", outcomes[0].err)
	w := outcomes[winner]
	size := int64(len(w.batch))
	initial := int64(len(seed))
	require.Equal(t, initial+1, w.res.FirstVersion)
	require.Equal(t, initial+size, w.res.StreamVersion)
	for i, o := range outcomes {
		if i != winner {
			requireConflict(t, o.err, id, expected, initial+size)
		}
	}
	requireStreamIDs(t, s, id, newIDsOf(concat(seed, w.batch)))
}

// testSameExpectedVersionOneWins races appenders that all expect the
// stream's current version.
func testSameExpectedVersionOneWins(t *testing.T, s es.Store) {
	id := streamID("race")
	seed := eventsWithIDs(2)
	mustAppend(t, s, id, es.NoStream, seed)
	outcomes := race(appenders, func(_ int, batch []es.NewEvent) (es.AppendResult, error) {
		return s.Append(t.Context(), id, es.Exactly(2), batch)
	}, 2)
	requireOneWinner(t, s, id, es.Exactly(2), seed, outcomes)
}

// testNoStreamOneWins races appenders that all create the same stream.
func testNoStreamOneWins(t *testing.T, s es.Store) {
	id := streamID("race")
	outcomes := race(appenders, func(_ int, batch []es.NewEvent) (es.AppendResult, error) {
		return s.Append(t.Context(), id, es.NoStream, batch)
	}, 1)
	requireOneWinner(t, s, id, es.NoStream, nil, outcomes)
}

// testAnyLosesNothing runs many concurrent appends of various sizes to one
// stream without a condition.
func testAnyLosesNothing(t *testing.T, s es.Store) {
	const rounds = 20
	id := streamID("any")
	results := make([][]outcome, appenders)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			<-start
			for i := range rounds {
				batch := eventsWithIDs((g+i)%3 + 1)
				res, err := s.Append(t.Context(), id, es.Any, batch)
				results[g] = append(results[g], outcome{batch, res, err})
				if err != nil {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	var total int64
	want := map[uuid.UUID]bool{}
	for g := range results {
		for _, o := range results[g] {
			require.NoError(t, o.err, "appender %d", g)
			total += int64(len(o.batch))
			for _, e := range o.batch {
				want[e.ID] = true
			}
		}
	}
	require.Equal(t, int64(appenders*rounds*2), total, "1+2+3 events in turn")

	stream := readStream(t, s, id, nil)
	requireVersion(t, s, id, total)
	require.Len(t, stream, int(total))
	got := map[uuid.UUID]bool{}
	for _, e := range stream {
		require.False(t, got[e.ID], "event %s twice", e.ID)
		got[e.ID] = true
	}
	require.Equal(t, want, got)
	requirePositionsIncrease(t, stream)

	// Each batch is stored as one run at the versions its result reports,
	// and each appender's batches are in the order it appended them.
	for g := range results {
		prev := int64(0)
		for _, o := range results[g] {
			require.Greater(t, o.res.FirstVersion, prev, "appender %d", g)
			prev = o.res.StreamVersion
			run := stream[o.res.FirstVersion-1 : o.res.StreamVersion]
			require.Equal(t, newIDsOf(o.batch), idsOf(run), "appender %d, result %+v", g, o.res)
			require.Equal(t, run[0].Position, o.res.FirstPosition)
			require.Equal(t, run[len(run)-1].Position, o.res.LastPosition)
		}
	}

	// The global log holds the stream's events in version order.
	awaitVisible(t, s, stream[len(stream)-1].Position)
	requireIDs(t, idsOf(stream), idsOf(readAll(t, s, nil)), "the global log against the stream")
}

// testStreamsDoNotConflict runs concurrent appenders, each on its own
// stream with exact expected versions: none may fail.
func testStreamsDoNotConflict(t *testing.T, s es.Store) {
	const rounds = 10
	ids := make([]string, appenders)
	errs := make([]error, appenders)
	for g := range ids {
		ids[g] = streamID("own")
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			<-start
			for i := range rounds {
				if _, err := s.Append(t.Context(), ids[g], es.Exactly(int64(2*i)), Events(2)); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for g, id := range ids {
		require.NoError(t, errs[g], "appender %d", g)
		requireVersion(t, s, id, 2*rounds)
	}

	var last es.Position
	for _, id := range ids {
		if p := readStream(t, s, id, &es.ReadStreamOpts{Backwards: true, MaxCount: 1})[0].Position; last.Before(p) {
			last = p
		}
	}
	awaitVisible(t, s, last)
	all := readAll(t, s, nil)
	require.Len(t, all, appenders*rounds*2)
	requirePositionsIncrease(t, all)
	versions := map[string]int64{}
	for _, e := range all {
		require.Equal(t, versions[e.StreamID]+1, e.Version, "stream %q in the global log", e.StreamID)
		versions[e.StreamID] = e.Version
	}
}

// testReaderSkipsNothing follows the global log, resuming after the last
// position seen, while writers append: the reader must end up with exactly
// the log, in order, never skipping an event that became visible late.
func testReaderSkipsNothing(t *testing.T, s es.Store) {
	const writers, rounds = 4, 25
	shared := streamID("shared")
	errs := make([]error, writers)
	lasts := make([]es.Position, writers)
	start, done := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		own := streamID("writer")
		wg.Go(func() {
			<-start
			for i := range rounds {
				id := own
				if i%3 == 0 {
					id = shared
				}
				res, err := s.Append(t.Context(), id, es.Any, Events(i%2+1))
				if err != nil {
					errs[g] = err
					return
				}
				lasts[g] = res.LastPosition
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	var seen []es.Event
	var after es.Position
	follow := func() int {
		page := readAll(t, s, &es.ReadAllOpts{After: after})
		for _, e := range page {
			require.True(t, after.Before(e.Position), "position %s after %s", e.Position, after)
			after = e.Position
		}
		seen = append(seen, page...)
		return len(page)
	}
	close(start)
	for writing := true; writing; {
		select {
		case <-done:
			writing = false
		default:
		}
		if follow() == 0 && writing {
			time.Sleep(time.Millisecond) // poll
		}
	}

	var last es.Position
	for g, err := range errs {
		require.NoError(t, err, "writer %d", g)
		if last.Before(lasts[g]) {
			last = lasts[g]
		}
	}
	awaitVisible(t, s, last)
	follow()
	all := readAll(t, s, nil)
	total := 0
	for i := range rounds {
		total += writers * (i%2 + 1)
	}
	require.Len(t, all, total)
	requireIDs(t, idsOf(all), idsOf(seen), "the reader's log against the final log")
	versions := map[string]int64{}
	for _, e := range all {
		require.Equal(t, versions[e.StreamID]+1, e.Version, "stream %q in the global log", e.StreamID)
		versions[e.StreamID] = e.Version
	}
}
