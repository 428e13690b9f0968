package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
)

// listFlag is a flag that may repeat and takes comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

var _ flag.Value = (*listFlag)(nil)

// tailPoll is how often es tail reads the log when it is idle.
const tailPoll = 200 * time.Millisecond

// tailBatch is how many events es tail reads per query.
const tailBatch = 1000

func runTail(ctx context.Context, e *env, args []string) error {
	f := e.flags("tail", "tail [--category c] [--type t] [--from start|end|POS] [--json]")
	var categories, types listFlag
	f.Var(&categories, "category", "only events of this stream category (repeat or comma-separate for several)")
	f.Var(&types, "type", "only events of this type (repeat or comma-separate for several)")
	from := f.String("from", "end", "where to start: start, end (only new events) or a position")
	asJSON := f.Bool("json", false, "print JSON lines")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	var after es.Position
	switch *from {
	case "start", "end":
	default:
		if after, err = es.ParsePosition(*from); err != nil {
			return fmt.Errorf("%w: --from: want start, end or a position: %v", errUsage, err)
		}
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *from == "end" {
		var end string
		if err := pool.QueryRow(ctx, "SELECT transaction_id::text || '/' || global_position::text FROM "+e.ident("log_end")+"()").Scan(&end); err != nil {
			return fmt.Errorf("reading the log's end: %w", err)
		}
		if after, err = es.ParsePosition(end); err != nil {
			return fmt.Errorf("reading the log's end: %w", err)
		}
	}
	q := fmt.Sprintf(`SELECT r.transaction_id::text || '/' || r.global_position::text, r.stream_id, r.version,
		r.event_id::text, r.event_type, %[1]s.try_msgpack_to_jsonb(r.data)::text,
		%[1]s.try_msgpack_to_jsonb(r.metadata)::text, r.recorded_at
		FROM %[1]s.read_all($1::text::xid8, $2, $3, $4, $5) AS r`, pgxIdent(e.schema))
	cats, typs := []string(categories), []string(types)
	for {
		n, err := tailOnce(ctx, pool, q, &after, cats, typs, func(ev eventJSON) error {
			return printEvent(e.stdout, ev, *asJSON)
		})
		if ctx.Err() != nil {
			return nil // interrupted: a normal end
		}
		if err != nil {
			return err
		}
		if n == tailBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tailPoll):
		}
	}
}

// tailOnce reads one page of the log after *after, prints it, and moves
// *after past it.
func tailOnce(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, q string, after *es.Position, cats, types []string, print func(eventJSON) error) (int, error) {
	rows, err := db.Query(ctx, q, fmt.Sprint(after.TxKey()), after.Global(), tailBatch, cats, types)
	if err != nil {
		return 0, fmt.Errorf("reading the log: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			ev       eventJSON
			data, md *string
		)
		if err := rows.Scan(&ev.Position, &ev.StreamID, &ev.Version, &ev.EventID, &ev.EventType, &data, &md, &ev.RecordedAt); err != nil {
			return n, fmt.Errorf("reading the log: %w", err)
		}
		ev.Data = []byte("null")
		if data != nil {
			ev.Data = []byte(*data)
		}
		if md != nil {
			ev.Metadata = []byte(*md)
		}
		ev.RecordedAt = ev.RecordedAt.UTC()
		if err := print(ev); err != nil {
			return n, err
		}
		if *after, err = es.ParsePosition(ev.Position); err != nil {
			return n, fmt.Errorf("reading the log: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return n, fmt.Errorf("reading the log: %w", err)
	}
	return n, nil
}
