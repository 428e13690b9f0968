package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// eventJSON is an event as the --json outputs show it: one JSON line each.
type eventJSON struct {
	Position   string          `json:"position"`
	StreamID   string          `json:"stream_id"`
	Version    int64           `json:"version"`
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type"`
	Data       json.RawMessage `json:"data"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	RecordedAt time.Time       `json:"recorded_at"`
	// SchemaVersion is the version of the event type's shape.
	SchemaVersion int32 `json:"schema_version"`
}

// scanEvent reads a row of (position, stream_id, version, event_id,
// event_type, data::text, metadata::text, recorded_at, schema_version).
func scanEvent(row pgx.CollectableRow) (eventJSON, error) {
	var (
		ev       eventJSON
		data, md *string
	)
	if err := row.Scan(&ev.Position, &ev.StreamID, &ev.Version, &ev.EventID, &ev.EventType, &data, &md, &ev.RecordedAt, &ev.SchemaVersion); err != nil {
		return ev, err
	}
	// Malformed msgpack decodes to SQL NULL: shown as JSON null.
	ev.Data = json.RawMessage("null")
	if data != nil {
		ev.Data = json.RawMessage(*data)
	}
	if md != nil {
		ev.Metadata = json.RawMessage(*md)
	}
	ev.RecordedAt = ev.RecordedAt.UTC()
	return ev, nil
}

// printEvent prints an event as one line, or as JSON.
func printEvent(w io.Writer, ev eventJSON, asJSON bool) error {
	if asJSON {
		return writeJSON(w, ev)
	}
	data, err := json.Marshal(ev.Data) // compacts
	if err != nil {
		return err
	}
	typ := ev.EventType
	if ev.SchemaVersion != 1 {
		typ += fmt.Sprintf(" (v%d)", ev.SchemaVersion)
	}
	line := fmt.Sprintf("%s  %s@%d  %s  %s  %s", ev.Position, ev.StreamID, ev.Version,
		ev.RecordedAt.Format(time.RFC3339Nano), typ, data)
	if len(ev.Metadata) > 0 && string(ev.Metadata) != "null" {
		md, err := json.Marshal(ev.Metadata)
		if err != nil {
			return err
		}
		line += "  metadata=" + string(md)
	}
	_, err = fmt.Fprintln(w, line)
	return err
}

func runStream(ctx context.Context, e *env, args []string) error {
	f := e.flags("stream", "stream show ID [--json]")
	asJSON := f.Bool("json", false, "print JSON lines")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if len(args) == 0 || args[0] != "show" {
		return fmt.Errorf("%w: want show ID", errUsage)
	}
	if err := wantArgs(args[1:], 1, "a stream id"); err != nil {
		return err
	}
	id := args[1]
	pool, err := e.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := `SELECT position, stream_id, version, event_id::text, event_type, data::text, metadata::text, recorded_at,
		schema_version FROM ` + e.ident("events_view") + ` WHERE stream_id = $1 ORDER BY version`
	n := 0
	rows, err := pool.Query(ctx, q, id)
	if err != nil {
		return fmt.Errorf("reading stream %q: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return fmt.Errorf("reading stream %q: %w", id, err)
		}
		if err := printEvent(e.stdout, ev, *asJSON); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading stream %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("stream %q has no events", id)
	}
	return nil
}
