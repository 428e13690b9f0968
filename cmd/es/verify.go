package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// errFindings is returned by es verify when it found something wrong: it
// has printed the findings, and the exit status is 1.
var errFindings = errors.New("findings")

// maxShown bounds the findings listed per check.
const maxShown = 20

// check is one audit of es verify: a query whose rows are findings, each
// described by scan. A check by stream runs over the streams a chunk at a
// time: its query takes the chunk's bounds as $1 (exclusive) and $2
// (inclusive), NULL for none.
type check struct {
	name     string
	query    string
	args     []any
	scan     func(scan func(...any) error) (string, error)
	byStream bool
}

// defaultVerifyChunk is how many streams a check by stream reads at a
// time, unless --chunk says otherwise.
const defaultVerifyChunk = 10_000

// inChunk is the condition that puts a stream id column in the chunk.
func inChunk(col string) string {
	return "($1::text IS NULL OR " + col + " > $1) AND ($2::text IS NULL OR " + col + " <= $2)"
}

func runVerify(ctx context.Context, e *env, args []string) error {
	f := e.flags("verify", "verify [--chunk N]")
	chunk := f.Int("chunk", defaultVerifyChunk, "streams checked per query (progress is shown after each)")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	if *chunk < 1 {
		return fmt.Errorf("%w: --chunk must be positive", errUsage)
	}
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, err := schemaVersion(ctx, pool, e.schema)
	if err != nil {
		return err
	}
	if v == 0 {
		return fmt.Errorf("schema %s is not installed: run es migrate up", e.schema)
	}
	events, streams, checkpoints := e.ident("events"), e.ident("streams"), e.ident("checkpoints")
	// From migration 006 on, the log is events and events_archive
	// (all_events), and a stream's first versions may have been removed
	// (a tombstone, retention: streams.removed_before and
	// truncate_before), as may the log's last events (the key base's row
	// records the last one removed).
	log, removedEnd := events, "(SELECT NULL::xid8 AS transaction_id, NULL::bigint AS global_position)"
	streamRows := `SELECT stream_id, version, 1::bigint AS removed_before, 1::bigint AS truncate_before FROM ` + streams
	if v >= 6 {
		log = e.ident("all_events")
		removedEnd = "(SELECT removed_transaction_id AS transaction_id, removed_global_position AS global_position FROM " +
			e.ident("transaction_key_base") + ")"
		streamRows = `SELECT stream_id, version, coalesce(removed_before, 1) AS removed_before,
			       coalesce(truncate_before, 1) AS truncate_before FROM ` + streams
	}
	checks := []check{{
		name:     "stream versions run without gaps to streams.version (from 1, or from where retention removed them)",
		byStream: true,
		query: `SELECT coalesce(s.stream_id, e.stream_id), s.version, coalesce(e.n, 0), coalesce(e.min_version, 0), coalesce(e.max_version, 0)
			FROM (` + streamRows + ` WHERE ` + inChunk("stream_id") + `) AS s
			FULL JOIN (SELECT stream_id, count(*) AS n, min(version) AS min_version, max(version) AS max_version
			             FROM ` + log + ` WHERE ` + inChunk("stream_id") + ` GROUP BY stream_id) AS e ON e.stream_id = s.stream_id
			WHERE s.stream_id IS NULL
			   OR (e.n IS NOT NULL AND (e.n <> e.max_version - e.min_version + 1 OR e.max_version <> s.version
			                            OR e.min_version < s.removed_before OR e.min_version > s.truncate_before))
			   OR (e.n IS NULL AND s.version > 0 AND s.truncate_before <= s.version)
			ORDER BY 1`,
		scan: func(scan func(...any) error) (string, error) {
			var id string
			var sv *int64
			var n, lo, hi int64
			if err := scan(&id, &sv, &n, &lo, &hi); err != nil {
				return "", err
			}
			if sv == nil {
				return fmt.Sprintf("stream %q: %s (versions %d..%d) but no row in streams", id, plural(n, "event"), lo, hi), nil
			}
			return fmt.Sprintf("stream %q: %s, versions %d..%d, streams.version %d", id, plural(n, "event"), lo, hi, *sv), nil
		},
	}, {
		name:     "each stream's versions follow the log's order",
		byStream: true,
		query: `SELECT stream_id, version, prev FROM (
			SELECT stream_id, version, lag(version) OVER (PARTITION BY stream_id ORDER BY transaction_id, global_position) AS prev
			  FROM ` + log + ` WHERE ` + inChunk("stream_id") + `) AS x
			WHERE prev IS NOT NULL AND version <> prev + 1
			ORDER BY 1, 2`,
		scan: func(scan func(...any) error) (string, error) {
			var id string
			var v, prev int64
			if err := scan(&id, &v, &prev); err != nil {
				return "", err
			}
			return fmt.Sprintf("stream %q: version %d follows version %d in the log", id, v, prev), nil
		},
	}, {
		name: "every checkpoint is at or before the log's last event (or the last one removed)",
		query: `SELECT c.subscription_id, c.transaction_id::text || '/' || c.global_position::text,
			       coalesce(l.transaction_id::text || '/' || l.global_position::text, '0/0')
			  FROM ` + checkpoints + ` AS c
			  LEFT JOIN (SELECT transaction_id, global_position
			               FROM (SELECT transaction_id, global_position FROM ` + log + `
			                     UNION ALL SELECT transaction_id, global_position FROM ` + removedEnd + ` AS r) AS a
			              WHERE transaction_id IS NOT NULL
			              ORDER BY transaction_id DESC, global_position DESC LIMIT 1) AS l ON true
			 WHERE (c.transaction_id, c.global_position) > (coalesce(l.transaction_id, '0'), coalesce(l.global_position, 0))
			 ORDER BY 1`,
		scan: func(scan func(...any) error) (string, error) {
			var name, cp, last string
			if err := scan(&name, &cp, &last); err != nil {
				return "", err
			}
			return fmt.Sprintf("subscription %q: checkpoint %s is after the log's last event %s", name, cp, last), nil
		},
	}, {
		name: "the immutability triggers are on events and enabled",
		args: []any{events},
		query: `SELECT t.name, coalesce(tg.tgenabled::text, '')
			  FROM (VALUES ('events_immutable'), ('events_no_truncate')) AS t(name)
			  LEFT JOIN pg_catalog.pg_trigger AS tg
			    ON tg.tgname = t.name AND tg.tgrelid = $1::regclass
			 WHERE tg.oid IS NULL OR tg.tgenabled = 'D'
			 ORDER BY 1`,
		scan: func(scan func(...any) error) (string, error) {
			var name, enabled string
			if err := scan(&name, &enabled); err != nil {
				return "", err
			}
			if enabled == "" {
				return fmt.Sprintf("trigger %s is missing on %s.events", name, e.schema), nil
			}
			return fmt.Sprintf("trigger %s on %s.events is disabled", name, e.schema), nil
		},
	}}
	bounds, err := chunkBounds(ctx, pool, streams, *chunk)
	if err != nil {
		return err
	}
	found := 0
	for _, c := range checks {
		var findings []string
		var err error
		if c.byStream {
			p := newProgress(e.stderr, "verify")
			p.unit = "streams"
			findings, err = runByStream(ctx, pool, c, bounds, p)
		} else {
			findings, err = runCheck(ctx, pool, c)
		}
		if err != nil {
			return fmt.Errorf("checking that %s: %w", c.name, err)
		}
		if len(findings) == 0 {
			fmt.Fprintf(e.stdout, "ok    %s\n", c.name)
			continue
		}
		found += len(findings)
		fmt.Fprintf(e.stdout, "FAIL  %s\n", c.name)
		for i, f := range findings {
			if i == maxShown {
				fmt.Fprintf(e.stdout, "      ... and %d more\n", len(findings)-maxShown)
				break
			}
			fmt.Fprintf(e.stdout, "      %s\n", f)
		}
	}
	if found > 0 {
		fmt.Fprintf(e.stdout, "%s\n", plural(int64(found), "finding"))
		return errFindings
	}
	return nil
}

// bounds are the stream ids that end the chunks of verifyChunk streams
// (the last chunk runs on to the end), and the number of streams.
type bounds struct {
	ends    []string
	streams int64
	chunk   int
}

// chunkBounds reads the bounds of the chunks.
func chunkBounds(ctx context.Context, pool *pgxpool.Pool, streams string, chunk int) (bounds, error) {
	b := bounds{chunk: chunk}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+streams).Scan(&b.streams); err != nil {
		return b, err
	}
	rows, err := pool.Query(ctx, `SELECT stream_id FROM (SELECT stream_id, row_number() OVER (ORDER BY stream_id) AS n FROM `+
		streams+`) AS s WHERE n % $1 = 0 ORDER BY stream_id`, chunk)
	if err != nil {
		return b, err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return b, err
		}
		b.ends = append(b.ends, id)
	}
	return b, rows.Err()
}

// runByStream runs a check by stream over every chunk, showing progress.
func runByStream(ctx context.Context, pool *pgxpool.Pool, c check, b bounds, p *progress) ([]string, error) {
	var findings []string
	var lo *string
	start := time.Now()
	for i := 0; i <= len(b.ends); i++ {
		var hi *string
		if i < len(b.ends) {
			hi = &b.ends[i]
		}
		cc := c
		cc.args = append([]any{lo, hi}, c.args...)
		f, err := runCheck(ctx, pool, cc)
		if err != nil {
			return nil, err
		}
		findings = append(findings, f...)
		done := min(int64(i+1)*int64(b.chunk), b.streams)
		p.show(done, b.streams, float64(done)/max(time.Since(start).Seconds(), 1e-9))
		lo = hi
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	return findings, nil
}

func runCheck(ctx context.Context, pool *pgxpool.Pool, c check) ([]string, error) {
	rows, err := pool.Query(ctx, c.query, c.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var findings []string
	for rows.Next() {
		f, err := c.scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		findings = append(findings, f)
	}
	return findings, rows.Err()
}

// plural returns "1 event", "2 events".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
