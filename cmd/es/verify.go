package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// errFindings is returned by es verify when it found something wrong: it
// has printed the findings, and the exit status is 1.
var errFindings = errors.New("findings")

// maxShown bounds the findings listed per check.
const maxShown = 20

// check is one audit of es verify: a query whose rows are findings, each
// described by scan.
type check struct {
	name  string
	query string
	args  []any
	scan  func(scan func(...any) error) (string, error)
}

func runVerify(ctx context.Context, e *env, args []string) error {
	f := e.flags("verify", "verify")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
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
	checks := []check{{
		name: "stream versions are 1..n without gaps, and streams.version is n",
		query: `SELECT coalesce(s.stream_id, e.stream_id), s.version, coalesce(e.n, 0), coalesce(e.min_version, 0), coalesce(e.max_version, 0)
			FROM ` + streams + ` AS s
			FULL JOIN (SELECT stream_id, count(*) AS n, min(version) AS min_version, max(version) AS max_version
			             FROM ` + events + ` GROUP BY stream_id) AS e ON e.stream_id = s.stream_id
			WHERE s.stream_id IS NULL OR coalesce(e.n, 0) <> coalesce(e.max_version, 0)
			   OR coalesce(e.min_version, 1) <> 1 OR s.version <> coalesce(e.max_version, 0)
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
		name: "each stream's versions follow the log's order",
		query: `SELECT stream_id, version, prev FROM (
			SELECT stream_id, version, lag(version) OVER (PARTITION BY stream_id ORDER BY transaction_id, global_position) AS prev
			  FROM ` + events + `) AS x
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
		name: "every checkpoint is at or before the log's last event",
		query: `SELECT c.subscription_id, c.transaction_id::text || '/' || c.global_position::text,
			       coalesce(l.transaction_id::text || '/' || l.global_position::text, '0/0')
			  FROM ` + checkpoints + ` AS c
			  LEFT JOIN (SELECT transaction_id, global_position FROM ` + events + `
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
	found := 0
	for _, c := range checks {
		findings, err := runCheck(ctx, pool, c)
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
