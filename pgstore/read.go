package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// ReadStream returns the events of one stream, streaming rows from the
// server as the caller iterates; see [es.Store.ReadStream]. It pages through
// the stream ReadBatchSize events per query (fetching one more row, so that
// a stream that fits in a page costs one query), so a caller that stops
// early has fetched at most one page more than it used.
func (s *Store) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	return func(yield func(es.Event, error) bool) {
		if err := storekit.ValidateStreamID(streamID); err != nil {
			yield(es.Event{}, err)
			return
		}
		var o es.ReadStreamOpts
		if opts != nil {
			o = *opts
		}
		if o.MaxCount < 0 {
			yield(es.Event{}, fmt.Errorf("%w: MaxCount must not be negative", es.ErrInvalidArgument))
			return
		}
		db, err := s.reader(ctx)
		if err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, err))
			return
		}
		s.readStream(ctx, db, streamID, o, yield)
	}
}

// readStream is ReadStream on db (the primary, the bound transaction or a
// replica: every page of one read on the same one), with valid options.
func (s *Store) readStream(ctx context.Context, db querier, streamID string, o es.ReadStreamOpts, yield func(es.Event, error) bool) {
	query, step := s.sql.readStream, int64(1)
	from := max(o.From, 1)
	if o.Backwards {
		query, step = s.sql.readStreamBackward, -1
		if o.From <= 0 {
			from = math.MaxInt64 // from the stream's last version
		}
	}
	remaining := o.MaxCount // 0: no limit
	for {
		fetch := s.config.ReadBatchSize + 1
		if remaining > 0 && remaining < fetch {
			fetch = remaining
		}
		n, last, ok := s.readStreamPage(ctx, db, query, streamID, from, fetch, yield)
		if !ok || n < fetch {
			return // stopped, failed, or reached the end of the stream
		}
		if remaining > 0 {
			if remaining -= n; remaining == 0 {
				return
			}
		}
		if from = last + step; from < 1 {
			return
		}
	}
}

// readStreamPage reads up to limit events of a stream from version from (in
// the query's direction), yielding each. It returns how many it read, the
// last version read, and false when iteration must stop (the consumer
// stopped, or an error was yielded).
func (s *Store) readStreamPage(ctx context.Context, db querier, query, streamID string, from int64, limit int,
	yield func(es.Event, error) bool) (int, int64, bool) {
	rows, err := db.Query(ctx, query, streamID, from, limit)
	if err != nil {
		yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, interpretError(err)))
		return 0, 0, false
	}
	defer rows.Close()
	n, last := 0, int64(0)
	sc := newEventScanner(false)
	sc.e.StreamID = streamID
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, err))
			return n, last, false
		}
		n, last = n+1, e.Version
		if !yield(e, nil) {
			return n, last, false
		}
	}
	if err := rows.Err(); err != nil {
		yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, interpretError(err)))
		return n, last, false
	}
	return n, last, true
}

// ReadAll returns the global log after opts.After, paging through it
// ReadBatchSize events per query; see [es.Store.ReadAll]. Every page sees
// only events below the current horizon (the oldest running transaction),
// so the iteration never skips an event that commits late: it ends at the
// visible end of the log, and a later ReadAll from the last position
// returns what has committed since.
func (s *Store) ReadAll(ctx context.Context, opts *es.ReadAllOpts) iter.Seq2[es.Event, error] {
	return func(yield func(es.Event, error) bool) {
		var o es.ReadAllOpts
		if opts != nil {
			o = *opts
		}
		if o.MaxCount < 0 {
			yield(es.Event{}, fmt.Errorf("%w: MaxCount must not be negative", es.ErrInvalidArgument))
			return
		}
		var categories, types []string
		if len(o.Categories) > 0 {
			categories = o.Categories
		}
		if len(o.EventTypes) > 0 {
			types = o.EventTypes
		}
		db, err := s.reader(ctx)
		if err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read all: %w", err))
			return
		}
		after, remaining := o.After, o.MaxCount
		for {
			limit := s.config.ReadBatchSize
			if remaining > 0 && remaining < limit {
				limit = remaining
			}
			n, ok := s.readAllPage(ctx, db, &after, limit, categories, types, yield)
			if !ok {
				return
			}
			if n < limit {
				return // reached the visible end
			}
			if remaining > 0 {
				if remaining -= n; remaining == 0 {
					return
				}
			}
		}
	}
}

// readAllPage reads one page of the global log after *after, yielding each
// event and advancing *after. It returns how many events it read and false
// when iteration must stop (the consumer stopped, or an error was yielded).
func (s *Store) readAllPage(ctx context.Context, db querier, after *es.Position, limit int, categories, types []string,
	yield func(es.Event, error) bool) (int, bool) {
	rows, err := db.Query(ctx, s.sql.readAll, after.TxKey(), after.Global(), limit, categories, types)
	if err != nil {
		yield(es.Event{}, fmt.Errorf("pgstore: read all: %w", interpretError(err)))
		return 0, false
	}
	defer rows.Close()
	n := 0
	sc := newEventScanner(true)
	for rows.Next() {
		e, err := sc.scan(rows)
		if err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read all: %w", err))
			return n, false
		}
		n++
		*after = e.Position
		if !yield(e, nil) {
			return n, false
		}
	}
	if err := rows.Err(); err != nil {
		yield(es.Event{}, fmt.Errorf("pgstore: read all: %w", interpretError(err)))
		return n, false
	}
	return n, true
}

// eventScanner scans rows of the event columns (preceded by stream_id when
// withStream) into events, reusing its scan destinations across rows.
type eventScanner struct {
	e      es.Event
	global int64
	txKey  uint64
	dest   []any
}

func newEventScanner(withStream bool) *eventScanner {
	sc := &eventScanner{}
	// event_id is scanned as [16]byte, pgx's native form for uuid; a
	// uuid.UUID destination would go through its slower sql.Scanner path.
	sc.dest = []any{&sc.global, &sc.txKey, &sc.e.Version, (*[16]byte)(&sc.e.ID), &sc.e.Type,
		&sc.e.Data, &sc.e.Metadata, &sc.e.RecordedAt, &sc.e.SchemaVersion}
	if withStream {
		sc.dest = append([]any{&sc.e.StreamID}, sc.dest...)
	}
	return sc
}

// scan reads the current row into a new event; the row's first columns go
// to extra, when given.
func (sc *eventScanner) scan(rows pgx.Rows, extra ...any) (es.Event, error) {
	sc.e.Data, sc.e.Metadata = nil, nil // fresh slices for every event
	dest := sc.dest
	if len(extra) > 0 {
		dest = append(extra, sc.dest...)
	}
	if err := rows.Scan(dest...); err != nil {
		return es.Event{}, err
	}
	e := sc.e
	e.Position = es.NewPosition(sc.txKey, sc.global)
	return e, nil
}

// StreamInfo returns the stream's version and times, or [es.ErrNotFound].
func (s *Store) StreamInfo(ctx context.Context, streamID string) (es.StreamInfo, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return es.StreamInfo{}, err
	}
	var (
		info    = es.StreamInfo{StreamID: streamID}
		exists  bool
		created *time.Time
		updated *time.Time
	)
	db, err := s.reader(ctx)
	if err != nil {
		return es.StreamInfo{}, fmt.Errorf("pgstore: stream info %q: %w", streamID, err)
	}
	err = db.QueryRow(ctx, s.sql.streamInfo, streamID).Scan(&info.Version, &exists, &created, &updated)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return es.StreamInfo{}, fmt.Errorf("pgstore: stream %q: %w", streamID, es.ErrNotFound)
		}
		return es.StreamInfo{}, fmt.Errorf("pgstore: stream info %q: %w", streamID, interpretError(err))
	}
	if !exists {
		return es.StreamInfo{}, fmt.Errorf("pgstore: stream %q: %w", streamID, es.ErrNotFound)
	}
	info.CreatedAt, info.UpdatedAt = *created, *updated
	return info, nil
}
