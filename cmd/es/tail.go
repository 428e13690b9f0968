package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// tailPoll is how often es tail reads the log when it is idle and no
// notification comes.
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
		%[1]s.try_msgpack_to_jsonb(r.metadata)::text, r.recorded_at, r.schema_version
		FROM %[1]s.read_all($1::text::xid8, $2, $3, $4, $5) AS r`, pgxIdent(e.schema))
	cats, typs := []string(categories), []string(types)

	// A connection of its own, out of the pool, LISTENs on the store's
	// channel, so that an append wakes the reader at once; the poll
	// remains for what a notification does not announce (events that
	// were hidden behind an older transaction, notifications turned off).
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	conn := c.Hijack()
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgxIdent(e.schema+"_events")); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	for {
		n, err := tailOnce(ctx, conn, q, &after, cats, typs, func(ev eventJSON) error {
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
		if err := waitNotification(ctx, conn, tailPoll); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("waiting for events: %w", err)
		}
	}
}

// waitNotification waits up to d for a notification on conn and discards
// the others already received: one read covers them all. A timeout is not
// an error: pgconn interrupts the wait with a deadline, which leaves the
// connection usable.
func waitNotification(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	_, err := conn.WaitForNotification(wctx)
	cancel()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)) && !conn.IsClosed():
		return nil
	case err != nil:
		return err
	}
	done, stop := context.WithCancel(ctx)
	stop()
	for {
		if n, err := conn.WaitForNotification(done); err != nil || n == nil {
			return nil
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
		if err := rows.Scan(&ev.Position, &ev.StreamID, &ev.Version, &ev.EventID, &ev.EventType, &data, &md, &ev.RecordedAt, &ev.SchemaVersion); err != nil {
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
