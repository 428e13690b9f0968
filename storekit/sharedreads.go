package storekit

import (
	"context"
	"slices"
	"sync"

	"github.com/pgevent/es"
)

// SharedReads lets the partitions of a consumer group that one process runs
// (one member's, or several members' started in the same process) read the
// log together. Each partition is a subscription with a session of its
// own; read alone, each would scan the whole log to keep its share of it,
// so a process running k partitions would make the server scan the log k
// times. Through SharedReads, a partition that needs events reads the next
// stretch of the log for every partition the process has open (one query,
// filtered to those partitions), keeps it, and the other partitions take
// their events from it.
//
// What it keeps is a chain of contiguous segments, each the complete list
// of the events of a set of partitions in a range (after, last] of the log,
// where last is the last event the read returned. That is sound because
// the log is gapless: once an event at position last is readable, no event
// at or before last can become readable later (every transaction below it
// has ended), so a segment never misses an event that commits afterwards.
//
// A partition whose position is not in the chain, or whose events a
// segment does not hold (it was opened after that segment was read), reads
// alone, as it would without SharedReads; it joins the chain when it
// reaches it. Segments every open partition has passed are dropped, and
// the chain never holds more than maxSharedEvents events.
type SharedReads struct {
	partitions int // the group's partition count

	mu      sync.Mutex
	open    map[int]*openPartition // partitions with a session
	chain   []*segment             // contiguous: chain[i].last == chain[i+1].after
	cached  int                    // events held by the chain
	reading *flight                // the shared read in progress, if any
}

// maxSharedEvents bounds the events the chain holds (a partition that
// stops reading without closing cannot make it grow without bound).
const maxSharedEvents = 64 << 10

// segment is every event of the partitions in set in the range
// (after, last] of the log.
type segment struct {
	after, last es.Position
	set         []int      // sorted
	events      []es.Event // in the global order
	parts       []int      // the partition of each event
}

// openPartition is a partition with a session: how many (two while one
// member hands it to another in the same process), the position it last
// read after (once it has read), and whether it is live (its last read
// returned less than a batch).
type openPartition struct {
	sessions int
	pos      es.Position
	read     bool // pos is set
	live     bool
}

// flight is a shared read in progress from `from`; done is closed when it
// ends.
type flight struct {
	from es.Position
	done chan struct{}
}

// ReadFunc reads up to max events after `after` of the partitions in set,
// in the global order (a store's read of several partitions: SQL
// read_partitions).
type ReadFunc func(ctx context.Context, after es.Position, max int, set []int) ([]es.Event, error)

// NewSharedReads returns the shared reads of a member of a group of
// partitions partitions.
func NewSharedReads(partitions int) *SharedReads {
	return &SharedReads{partitions: partitions, open: make(map[int]*openPartition)}
}

// Open records that partition p has a session: the shared reads include
// it from now on.
func (r *SharedReads) Open(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.open[p]; o != nil {
		o.sessions++
		return
	}
	r.open[p] = &openPartition{sessions: 1}
}

// Close records that partition p's session ended.
func (r *SharedReads) Close(p int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.open[p]; o != nil {
		if o.sessions--; o.sessions == 0 {
			delete(r.open, p)
		}
	}
	r.trimLocked()
}

// Read returns up to max events of partition p after `after`, as read(ctx,
// after, max, []int{p}) would. While p catches up (its last read returned
// a full batch), from the chain when it holds them, else by a shared read
// that extends it (or starts a new one), else by read alone. Once p is live
// (its last read returned less than a batch), it reads alone: at the end
// of the log each wake-up brings a few events, and partitions that waited
// for one another's reads would only add to their lag. Like a read, it
// returns fewer than max events only at the end of what is readable (the
// engine takes a short batch for the end of the log). read runs on the
// caller's connection.
func (r *SharedReads) Read(ctx context.Context, p int, after es.Position, max int, read ReadFunc) ([]es.Event, error) {
	r.mu.Lock()
	o := r.open[p]
	live := o != nil && o.live
	if live {
		r.readingAtLocked(p, after)
	}
	r.mu.Unlock()
	var events []es.Event
	var err error
	if live {
		events, err = read(ctx, after, max, []int{p})
	} else {
		events, err = r.readShared(ctx, p, after, max, read)
	}
	if err == nil {
		r.mu.Lock()
		if o := r.open[p]; o != nil {
			o.live = len(events) < max
		}
		r.mu.Unlock()
	}
	return events, err
}

// readShared is Read while p catches up.
func (r *SharedReads) readShared(ctx context.Context, p int, after es.Position, max int, read ReadFunc) ([]es.Event, error) {
	out := make([]es.Event, 0, max)
	pos := after
	atEnd := false // a shared read of this call found the end of the readable log
	for len(out) < max {
		r.mu.Lock()
		r.readingAtLocked(p, pos)
		r.trimLocked()
		var from *es.Position
		var served bool
		out, from, served = r.serveLocked(p, pos, out, max)
		switch {
		case served:
			r.mu.Unlock()
			pos = out[len(out)-1].Position
			continue
		case atEnd:
			r.mu.Unlock()
			return out, nil
		case from == nil:
			// Outside the chain: read alone.
			r.mu.Unlock()
			events, err := read(ctx, pos, max-len(out), []int{p})
			if err != nil {
				return partial(out, err)
			}
			return append(out, events...), nil
		}
		if f := r.reading; f != nil {
			// Another partition is reading: its read may hold these
			// events (or move the chain); look again when it ends.
			r.mu.Unlock()
			select {
			case <-f.done:
				continue
			case <-ctx.Done():
				return partial(out, ctx.Err())
			}
		}
		f := &flight{from: *from, done: make(chan struct{})}
		r.reading = f
		set := r.setLocked(p)
		r.mu.Unlock()

		limit := max * len(set)
		events, err := read(ctx, f.from, limit, set)

		r.mu.Lock()
		r.reading = nil
		close(f.done)
		if err == nil && len(events) > 0 {
			r.addLocked(&segment{after: f.from, last: events[len(events)-1].Position, set: set, events: events, parts: r.partsOf(events)})
		}
		r.mu.Unlock()
		if err != nil {
			return partial(out, err)
		}
		if len(events) == 0 {
			// Nothing readable after f.from, which is at or after pos,
			// with none of p's events in between (serveLocked).
			return out, nil
		}
		atEnd = len(events) < limit
	}
	return out, nil
}

// partial returns the events read so far, or err when there are none (the
// next read meets the error again).
func partial(out []es.Event, err error) ([]es.Event, error) {
	if len(out) > 0 {
		return out, nil
	}
	return nil, err
}

// serveLocked appends to out, up to max in all, p's events after `after`
// from the chain (served) or, when the chain has none, reports where a
// shared read should start (from: the chain's end when the chain holds
// every event of p from `after` to its end, `after` when the chain is empty
// or ends before it) or that p must read alone (from nil).
func (r *SharedReads) serveLocked(p int, after es.Position, out []es.Event, max int) (_ []es.Event, from *es.Position, served bool) {
	if len(r.chain) == 0 {
		return out, &after, false
	}
	end := r.chain[len(r.chain)-1].last
	if !after.Before(end) {
		// At or past the end: extend the chain, or start a new one
		// from a position the others have not reached.
		return out, &after, false
	}
	if after.Before(r.chain[0].after) {
		return out, nil, false
	}
	found := len(out)
	i, _ := slices.BinarySearchFunc(r.chain, after, func(s *segment, a es.Position) int {
		// The segment whose range (after, last] holds the position
		// just after `after`: the first with last > after.
		if s.last.Compare(a) <= 0 {
			return -1
		}
		return 1
	})
	for ; i < len(r.chain); i++ {
		s := r.chain[i]
		if _, ok := slices.BinarySearch(s.set, p); !ok {
			// This segment does not hold p's events: what was found
			// before it is complete; with nothing found, read alone.
			return out, nil, len(out) > found
		}
		j, _ := slices.BinarySearchFunc(s.events, after, func(e es.Event, a es.Position) int { return e.Position.Compare(a) })
		for ; j < len(s.events); j++ {
			if e := s.events[j]; s.parts[j] == p && after.Before(e.Position) {
				out = append(out, e)
				if len(out) == max {
					return out, nil, true
				}
			}
		}
	}
	if len(out) > found {
		return out, nil, true
	}
	return out, &end, false
}

// readingAtLocked records that open partition p reads after pos (the
// chain keeps what some open partition has not passed).
func (r *SharedReads) readingAtLocked(p int, pos es.Position) {
	if o := r.open[p]; o != nil {
		o.pos, o.read = pos, true
	}
}

// setLocked returns the partitions a shared read reads: every open one,
// and p.
func (r *SharedReads) setLocked(p int) []int {
	set := []int{p}
	for q := range r.open {
		if q != p {
			set = append(set, q)
		}
	}
	slices.Sort(set)
	return set
}

// addLocked adds s to the chain: at its end when s continues it, else as a
// new chain (s starts where no chain is, ahead of it or with none).
func (r *SharedReads) addLocked(s *segment) {
	if n := len(r.chain); n > 0 && r.chain[n-1].last != s.after {
		if !r.chain[n-1].last.Before(s.after) {
			// s overlaps the chain (it ended meanwhile past s's start,
			// through another read): keep the chain.
			return
		}
		r.chain, r.cached = nil, 0
	}
	r.chain = append(r.chain, s)
	r.cached += len(s.events)
	r.trimLocked()
}

// trimLocked drops the segments every open partition has passed, and the
// oldest ones beyond maxSharedEvents (the last segment is always kept).
func (r *SharedReads) trimLocked() {
	var low *es.Position
	for _, o := range r.open {
		if o.read && (low == nil || o.pos.Before(*low)) {
			low = &o.pos
		}
	}
	drop := 0
	for drop < len(r.chain)-1 {
		s := r.chain[drop]
		if r.cached <= maxSharedEvents && (low == nil || low.Before(s.last)) {
			break
		}
		r.cached -= len(s.events)
		drop++
	}
	if drop > 0 {
		clear(r.chain[:drop])
		r.chain = r.chain[drop:]
	}
}

// partsOf returns the partition of each event.
func (r *SharedReads) partsOf(events []es.Event) []int {
	parts := make([]int, len(events))
	for i, e := range events {
		parts[i] = es.StreamPartition(e.StreamID, r.partitions)
	}
	return parts
}

// SharedReadsByGroup holds the SharedReads of the consumer groups a process
// runs, one per group (and filters): every member of a group started in
// the process reads through the same one.
type SharedReadsByGroup struct {
	mu     sync.Mutex
	groups map[string]*sharedReadsUse
}

type sharedReadsUse struct {
	reads *SharedReads
	users int
}

// Acquire returns the SharedReads of the group whose key is key (the
// group's name, partition count and filters), of partitions partitions,
// creating it for the first member; Release it when the member stops.
func (g *SharedReadsByGroup) Acquire(key string, partitions int) *SharedReads {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.groups == nil {
		g.groups = make(map[string]*sharedReadsUse)
	}
	u := g.groups[key]
	if u == nil {
		u = &sharedReadsUse{reads: NewSharedReads(partitions)}
		g.groups[key] = u
	}
	u.users++
	return u.reads
}

// Release ends a member's use of the group's SharedReads.
func (g *SharedReadsByGroup) Release(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.groups[key]; u != nil {
		if u.users--; u.users == 0 {
			delete(g.groups, key)
		}
	}
}
