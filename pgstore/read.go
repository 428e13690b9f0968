package pgstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
)

// ReadStream returns the events of one stream, streaming rows from the
// server as the caller iterates; see [es.Store.ReadStream].
func (s *Store) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	return func(yield func(es.Event, error) bool) {
		if err := es.ValidateStreamID(streamID); err != nil {
			yield(es.Event{}, err)
			return
		}
		var o es.ReadStreamOpts
		if opts != nil {
			o = *opts
		}
		query := s.sql.readStream
		var from, limit any
		if o.From > 0 {
			from = o.From
		}
		if o.MaxCount != 0 {
			limit = o.MaxCount
		}
		if o.Backwards {
			query = s.sql.readStreamBackward
		} else if from == nil {
			from = int64(1)
		}
		rows, err := s.pool.Query(ctx, query, streamID, from, limit)
		if err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, interpretError(err)))
			return
		}
		defer rows.Close()
		for rows.Next() {
			e := es.Event{StreamID: streamID}
			if err := scanEvent(rows, &e, nil); err != nil {
				yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(es.Event{}, fmt.Errorf("pgstore: read stream %q: %w", streamID, interpretError(err)))
		}
	}
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
		after, remaining := o.After, o.MaxCount
		for {
			limit := s.config.ReadBatchSize
			if remaining > 0 && remaining < limit {
				limit = remaining
			}
			n, ok := s.readAllPage(ctx, &after, limit, categories, types, yield)
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
func (s *Store) readAllPage(ctx context.Context, after *es.Position, limit int, categories, types []string,
	yield func(es.Event, error) bool) (int, bool) {
	rows, err := s.pool.Query(ctx, s.sql.readAll, after.TxKey(), after.Global(), limit, categories, types)
	if err != nil {
		yield(es.Event{}, fmt.Errorf("pgstore: read all: %w", interpretError(err)))
		return 0, false
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var e es.Event
		if err := scanEvent(rows, &e, &e.StreamID); err != nil {
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

// scanEvent scans a row of the event columns (preceded by stream_id when
// streamID is not nil) into e.
func scanEvent(rows pgx.Rows, e *es.Event, streamID *string) error {
	var (
		global int64
		txKey  uint64
	)
	dest := []any{&global, &txKey, &e.Version, &e.ID, &e.Type, &e.Data, &e.Metadata, &e.RecordedAt}
	if streamID != nil {
		dest = append([]any{streamID}, dest...)
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	e.Position = es.NewPosition(txKey, global)
	return nil
}

// StreamInfo returns the stream's version and times, or [es.ErrNotFound].
func (s *Store) StreamInfo(ctx context.Context, streamID string) (es.StreamInfo, error) {
	if err := es.ValidateStreamID(streamID); err != nil {
		return es.StreamInfo{}, err
	}
	var (
		info    = es.StreamInfo{StreamID: streamID}
		exists  bool
		created *time.Time
		updated *time.Time
	)
	err := s.pool.QueryRow(ctx, s.sql.streamInfo, streamID).Scan(&info.Version, &exists, &created, &updated)
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
