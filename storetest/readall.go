package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var readAllTests = []test{
	{"Empty", testReadAllEmpty},
	{"GlobalOrder", testReadAllGlobalOrder},
	{"After", testReadAllAfter},
	{"MaxCount", testReadAllMaxCount},
	{"Paging", testReadAllPaging},
	{"Filters", testReadAllFilters},
	{"PositionText", testReadAllPositionText},
	{"LongLog", testReadAllLongLog},
	{"EarlyBreak", testReadAllEarlyBreak},
	{"AppendWhileReading", testReadAllAppendWhileReading},
}

// seededLog is a small global log across categories.
type seededLog struct {
	// all is the log as ReadAll returns it, checked against the appends.
	all []es.Event
	// category maps each stream id to its category, as the suite knows it.
	category map[string]string
	// results are the append results, in order.
	results []es.AppendResult
	// plain is the id of the stream without '-'.
	plain string
}

// seedLog appends events to several streams in a known order and waits
// until they are all visible. The store must be empty.
func seedLog(t *testing.T, s es.Store) seededLog {
	t.Helper()
	order1 := "order-" + uniq()
	order2 := "order-" + uniq() + "-with-dashes"
	invoice := "invoice-" + uniq()
	plain := plainStreamID()
	orders := "orders-" + uniq()
	log := seededLog{plain: plain, category: map[string]string{
		order1: "order", order2: "order", invoice: "invoice", plain: plain, orders: "orders", "order": "order",
	}}
	var want []uuid.UUID
	add := func(id string, expected es.ExpectedVersion, types ...string) {
		events := eventsWithIDs(len(types))
		for i, typ := range types {
			events[i].Type = typ
		}
		log.results = append(log.results, mustAppend(t, s, id, expected, events))
		want = append(want, newIDsOf(events)...)
	}
	add(order1, es.NoStream, "OrderPlaced", "OrderPaid")
	add(invoice, es.Any, "InvoiceSent")
	add(order2, es.NoStream, "OrderPlaced")
	add(plain, es.NoStream, "Note", "Note")
	add(order1, es.Exactly(2), "OrderShipped")
	add(invoice, es.Exactly(1), "InvoiceSent", "InvoicePaid")
	add(orders, es.Any, "OrderPlaced")
	add("order", es.Any, "Note")

	awaitVisible(t, s, log.results[len(log.results)-1].LastPosition)
	log.all = readAll(t, s, nil)
	require.Equal(t, want, idsOf(log.all), "ReadAll on a fresh store returns the appended events in append order")
	return log
}

// filter returns the events for which keep is true (nil when none).
func filter(events []es.Event, keep func(es.Event) bool) []es.Event {
	var out []es.Event
	for _, e := range events {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// testReadAllEmpty reads the log of an empty store.
func testReadAllEmpty(t *testing.T, s es.Store) {
	for _, opts := range []*es.ReadAllOpts{nil, {}, {MaxCount: 10}, {Categories: []string{"order"}}, {EventTypes: []string{"X"}}} {
		require.Empty(t, readAll(t, s, opts))
	}
}

// testReadAllGlobalOrder checks the order, the positions and the fields of
// the global log.
func testReadAllGlobalOrder(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	require.Len(t, log.all, 11)
	requirePositionsIncrease(t, log.all)

	i := 0
	for _, r := range log.results {
		n := int(r.StreamVersion - r.FirstVersion + 1)
		batch := log.all[i : i+n]
		require.Equal(t, r.FirstPosition, batch[0].Position)
		require.Equal(t, r.LastPosition, batch[n-1].Position)
		for j, e := range batch {
			require.Equal(t, r.StreamID, e.StreamID)
			require.Equal(t, r.FirstVersion+int64(j), e.Version)
		}
		i += n
	}

	// Per stream, versions run 1, 2, ... along the global log, and the
	// events are those ReadStream returns, with the same positions.
	byStream := map[string][]es.Event{}
	for _, e := range log.all {
		require.Equal(t, log.category[e.StreamID], e.Category())
		require.False(t, e.RecordedAt.IsZero())
		byStream[e.StreamID] = append(byStream[e.StreamID], e)
	}
	for id, events := range byStream {
		require.Equal(t, span(1, int64(len(events))), versionsOf(events), "versions of %q in the global log", id)
		stream := readStream(t, s, id, nil)
		require.Equal(t, len(stream), len(events))
		for j := range stream {
			require.Equal(t, stream[j].ID, events[j].ID)
			require.Equal(t, stream[j].Position, events[j].Position, "ReadStream and ReadAll positions of %s", events[j].ID)
			require.Equal(t, stream[j].Type, events[j].Type)
			require.Equal(t, stream[j].Data, events[j].Data)
		}
	}
}

// testReadAllAfter resumes after each event of the log.
func testReadAllAfter(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	require.Equal(t, idsOf(log.all), idsOf(readAll(t, s, &es.ReadAllOpts{After: es.Position{}})))
	for i, e := range log.all {
		got := readAll(t, s, &es.ReadAllOpts{After: e.Position})
		require.Equal(t, nilIfEmpty(idsOf(log.all[i+1:])), nilIfEmpty(idsOf(got)), "after event %d at %s", i, e.Position)
	}
}

// testReadAllMaxCount caps the number of events.
func testReadAllMaxCount(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	n := len(log.all)
	cases := []struct {
		opts es.ReadAllOpts
		want []es.Event
	}{
		{es.ReadAllOpts{MaxCount: 1}, log.all[:1]},
		{es.ReadAllOpts{MaxCount: 3}, log.all[:3]},
		{es.ReadAllOpts{MaxCount: n}, log.all},
		{es.ReadAllOpts{MaxCount: 100}, log.all},
		{es.ReadAllOpts{After: log.all[1].Position, MaxCount: 2}, log.all[2:4]},
		{es.ReadAllOpts{After: log.all[n-2].Position, MaxCount: 5}, log.all[n-1:]},
		{es.ReadAllOpts{After: log.all[n-1].Position, MaxCount: 5}, nil},
	}
	for i, c := range cases {
		opts := c.opts
		require.Equal(t, nilIfEmpty(idsOf(c.want)), nilIfEmpty(idsOf(readAll(t, s, &opts))), "case %d: %+v", i, c.opts)
	}
}

// readAllPaged reads the log page by page, each page resuming after the
// previous one, and returns everything.
func readAllPaged(t *testing.T, s es.Store, opts es.ReadAllOpts) []es.Event {
	t.Helper()
	var out []es.Event
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10000, "paging does not end")
		page := readAll(t, s, &opts)
		require.LessOrEqual(t, len(page), opts.MaxCount)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		opts.After = page[len(page)-1].Position
	}
}

// testReadAllPaging reads the log in pages of several sizes.
func testReadAllPaging(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	for _, size := range []int{1, 2, 4, 11, 12} {
		got := readAllPaged(t, s, es.ReadAllOpts{MaxCount: size})
		require.Equal(t, idsOf(log.all), idsOf(got), "pages of %d", size)
	}
}

// testReadAllFilters filters by category and event type, whole and paged.
func testReadAllFilters(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	cases := []struct {
		categories []string
		types      []string
	}{
		{[]string{"order"}, nil},
		{[]string{"orders"}, nil},
		{[]string{"invoice", "order"}, nil},
		{[]string{log.plain}, nil}, // the stream without '-' is its own category
		{[]string{"nosuch"}, nil},
		{nil, []string{"OrderPlaced"}},
		{nil, []string{"Note", "InvoicePaid"}},
		{nil, []string{"nosuch"}},
		{[]string{"order"}, []string{"OrderPlaced"}},
		{[]string{"order", "orders"}, []string{"OrderPlaced", "Note"}},
		{[]string{"invoice"}, []string{"OrderPlaced"}},
		{[]string{}, []string{}},
	}
	for _, c := range cases {
		// Keep subtest names stable: the plain stream id is random.
		name := strings.ReplaceAll(fmt.Sprintf("categories=%s,types=%s",
			strings.Join(c.categories, "+"), strings.Join(c.types, "+")), log.plain, "plain")
		t.Run(name, func(t *testing.T) {
			want := filter(log.all, func(e es.Event) bool {
				return (len(c.categories) == 0 || slices.Contains(c.categories, log.category[e.StreamID])) &&
					(len(c.types) == 0 || slices.Contains(c.types, e.Type))
			})
			opts := es.ReadAllOpts{Categories: c.categories, EventTypes: c.types}
			require.Equal(t, nilIfEmpty(idsOf(want)), nilIfEmpty(idsOf(readAll(t, s, &opts))))
			opts.MaxCount = 1
			require.Equal(t, nilIfEmpty(idsOf(want)), nilIfEmpty(idsOf(readAllPaged(t, s, opts))), "paged")
			if len(want) > 1 {
				opts = es.ReadAllOpts{Categories: c.categories, EventTypes: c.types, After: want[0].Position, MaxCount: 1}
				require.Equal(t, idsOf(want[1:2]), idsOf(readAll(t, s, &opts)), "after the first match")
			}
		})
	}
}

// testReadAllPositionText prints positions and reads them back.
func testReadAllPositionText(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	for _, e := range log.all {
		text := e.Position.String()
		p, err := es.ParsePosition(text)
		require.NoError(t, err, "parsing %q", text)
		require.Equal(t, e.Position, p)
		require.Equal(t, 0, p.Compare(e.Position))

		b, err := e.Position.MarshalText()
		require.NoError(t, err)
		var q es.Position
		require.NoError(t, q.UnmarshalText(b))
		require.Equal(t, e.Position, q)

		// A position read back resumes the log where it was printed.
		require.Equal(t, nilIfEmpty(idsOf(readAll(t, s, &es.ReadAllOpts{After: e.Position}))),
			nilIfEmpty(idsOf(readAll(t, s, &es.ReadAllOpts{After: p}))))
	}
}

// testReadAllLongLog reads a log longer than any sensible page size.
func testReadAllLongLog(t *testing.T, s es.Store) {
	const batches, size = 25, 100
	streams := []string{streamID("long"), streamID("long"), plainStreamID()}
	var last es.Position
	var want []uuid.UUID
	for i := range batches {
		events := eventsWithIDs(size)
		last = mustAppend(t, s, streams[i%len(streams)], es.Any, events).LastPosition
		want = append(want, newIDsOf(events)...)
	}
	awaitVisible(t, s, last)
	got := readAll(t, s, nil)
	requireIDs(t, want, idsOf(got), "the whole log")
	requirePositionsIncrease(t, got)
	requireIDs(t, want[:1500], idsOf(readAll(t, s, &es.ReadAllOpts{MaxCount: 1500})), "MaxCount 1500")
	requireIDs(t, want[1001:2001], idsOf(readAll(t, s, &es.ReadAllOpts{After: got[1000].Position, MaxCount: 1000})),
		"1000 after the 1001st event")
	requireIDs(t, want[1:], idsOf(readAll(t, s, &es.ReadAllOpts{After: got[0].Position})), "after the first event")
}

// testReadAllEarlyBreak stops iterations early, many times.
func testReadAllEarlyBreak(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	for i := range 50 {
		n := 0
		for e, err := range s.ReadAll(t.Context(), &es.ReadAllOpts{MaxCount: i % 3}) {
			require.NoError(t, err)
			require.Equal(t, log.all[n].ID, e.ID)
			n++
			if n == 1 {
				break
			}
		}
		require.Equal(t, 1, n)
	}
	res := mustAppend(t, s, streamID("after"), es.NoStream, Events(1))
	awaitVisible(t, s, res.LastPosition)
	require.Len(t, readAll(t, s, nil), len(log.all)+1)
}

// testReadAllAppendWhileReading appends from inside the loop: a store must
// not hold a lock that Append needs while it yields. Events appended
// meanwhile may or may not be returned, but the order holds.
func testReadAllAppendWhileReading(t *testing.T, s es.Store) {
	log := seedLog(t, s)
	id := streamID("meanwhile")
	var got []es.Event
	var last es.Position
	for e, err := range s.ReadAll(t.Context(), nil) {
		require.NoError(t, err)
		got = append(got, e)
		if len(got) <= 5 {
			last = mustAppend(t, s, id, es.Any, Events(1)).LastPosition
		}
	}
	require.GreaterOrEqual(t, len(got), len(log.all))
	require.LessOrEqual(t, len(got), len(log.all)+5)
	require.Equal(t, idsOf(log.all), idsOf(got[:len(log.all)]))
	requirePositionsIncrease(t, got)
	awaitVisible(t, s, last)
	all := readAll(t, s, nil)
	require.Len(t, all, len(log.all)+5)
	require.Equal(t, idsOf(got), idsOf(all[:len(got)]), "what was returned is a prefix of the log")
}
