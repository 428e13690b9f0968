package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// Append appends events to a stream atomically in one round trip; see
// [es.Store.Append] for the semantics and errors. On a store bound to a
// transaction ([Store.WithTx]) it appends in that transaction, inside a
// savepoint.
func (s *Store) Append(ctx context.Context, streamID string, expected es.ExpectedVersion, events []es.NewEvent) (es.AppendResult, error) {
	args, err := appendArgs(streamID, expected, events)
	if err != nil {
		return es.AppendResult{}, err
	}
	return s.runAppend(ctx, streamID, s.sql.append, args)
}

// runAppend runs query (an append) with args: in one round trip on the
// pool, or in the bound transaction inside a savepoint.
func (s *Store) runAppend(ctx context.Context, streamID, query string, args []any) (es.AppendResult, error) {
	if s.tx != nil {
		return s.appendTx(ctx, s.tx, streamID, query, args)
	}
	res, err := scanAppendResult(s.db.QueryRow(ctx, query, args...), streamID)
	if err != nil {
		return es.AppendResult{}, fmt.Errorf("pgstore: append to %q: %w", streamID, interpretError(err))
	}
	return res, nil
}

// appendTx runs query (an append) with args in tx inside a savepoint; see
// WithTx.
func (s *Store) appendTx(ctx context.Context, tx pgx.Tx, streamID, query string, args []any) (es.AppendResult, error) {
	// One round trip: SAVEPOINT, append, RELEASE, pipelined.
	b := &pgx.Batch{}
	b.Queue("SAVEPOINT es_append")
	b.Queue(query, args...)
	b.Queue("RELEASE SAVEPOINT es_append")
	br := tx.SendBatch(ctx, b)
	var res es.AppendResult
	_, err := br.Exec()
	if err == nil {
		res, err = scanAppendResult(br.QueryRow(), streamID)
		if err == nil {
			_, err = br.Exec()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Undo the failed append, keeping the caller's transaction usable.
		// Only when the server reports the transaction failed: when
		// nothing was sent (ctx already cancelled) there is no savepoint,
		// and rolling back to it would itself fail the transaction. A
		// cancelled ctx must not stop the cleanup.
		if tx.Conn().PgConn().TxStatus() == 'E' {
			cleanup := context.WithoutCancel(ctx)
			if _, rerr := tx.Exec(cleanup, "ROLLBACK TO SAVEPOINT es_append"); rerr == nil {
				_, _ = tx.Exec(cleanup, "RELEASE SAVEPOINT es_append")
			}
		}
		return es.AppendResult{}, fmt.Errorf("pgstore: append to %q: %w", streamID, interpretError(err))
	}
	return res, nil
}

// appendArgs validates an append and turns it into the arguments of the SQL
// append function (the columns as arrays).
func appendArgs(streamID string, expected es.ExpectedVersion, events []es.NewEvent) ([]any, error) {
	events, err := storekit.PrepareAppend(streamID, expected, events)
	if err != nil {
		return nil, err
	}
	// Types pgx encodes without reflection: the ids as [16]byte, not
	// uuid.UUID (a []uuid.UUID goes through reflection and each id's
	// driver.Valuer, its text form parsed back: the largest share of an
	// append's client CPU and allocations, docs/benchmarks.md), the byte
	// strings as a FlatArray.
	ids := make([][16]byte, len(events))
	types := make([]string, len(events))
	data := make(pgtype.FlatArray[[]byte], len(events))
	var metadata pgtype.FlatArray[[]byte] // NULL unless some event has metadata
	var versions []int32                  // NULL (all 1) unless some event is at another schema version
	for i, e := range events {
		ids[i], types[i], data[i] = e.ID, e.Type, e.Data
		if e.Metadata != nil {
			if metadata == nil {
				metadata = make(pgtype.FlatArray[[]byte], len(events))
			}
			metadata[i] = e.Metadata
		}
		if e.SchemaVersion != 1 && versions == nil {
			versions = make([]int32, len(events))
			for j := range versions {
				versions[j] = 1
			}
		}
		if versions != nil {
			versions[i] = int32(e.SchemaVersion) // validated: 1 to MaxInt32
		}
	}
	return []any{streamID, expected.SQL(), ids, types, data, metadata, versions}, nil
}

func scanAppendResult(row pgx.Row, streamID string) (es.AppendResult, error) {
	var (
		r                 es.AppendResult
		lastPos, firstPos int64
		lastKey, firstKey uint64
	)
	if err := row.Scan(&r.StreamVersion, &lastPos, &lastKey, &r.FirstVersion, &firstPos, &firstKey); err != nil {
		return es.AppendResult{}, err
	}
	r.StreamID = streamID
	r.FirstPosition = es.NewPosition(firstKey, firstPos)
	r.LastPosition = es.NewPosition(lastKey, lastPos)
	return r, nil
}
