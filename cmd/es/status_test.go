package main_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// appendJSON appends one event in SQL (append_json).
func (b *testBundle) appendJSON(t *testing.T, stream, typ, data string) {
	t.Helper()
	b.exec(t, "SELECT * FROM es.append_json($1, $2, $3::jsonb)", stream, typ, data)
}

// position parses a position.
func position(t *testing.T, s string) es.Position {
	t.Helper()
	p, err := es.ParsePosition(s)
	require.NoError(t, err)
	return p
}

func TestStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	ctx := context.Background()

	b.appendJSON(t, "order-1", "OrderPlaced", `{"total": 12.5}`)
	b.appendJSON(t, "order-1", "OrderShipped", `{}`)
	b.appendJSON(t, "user-7", "UserRegistered", `{"name": "Ada"}`)
	require.NoError(t, b.store.ResetCheckpoint(ctx, "projector", es.Position{}))

	// The log's head is the last event once no transaction anywhere in the
	// cluster holds the horizon back (a parallel test creating its
	// database does, for a moment).
	var last string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT position FROM es.events_view ORDER BY transaction_id DESC, global_position DESC LIMIT 1").Scan(&last))
	deadline := time.Now().Add(commandTimeout)
	for {
		var head string
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT transaction_id::text || '/' || global_position::text FROM es.log_end()").Scan(&head))
		if head == last {
			break
		}
		require.True(t, time.Now().Before(deadline), "the horizon is still held back")
		time.Sleep(50 * time.Millisecond) // polling, with a deadline
	}

	out := b.ok(t, "status")
	require.Contains(t, out, "schema    es, version 6 of 6\n")
	require.Contains(t, out, "events    3 in 2 streams\n")
	require.Regexp(t, `log head  \d+/\d+\n`, out)
	require.Contains(t, out, "subscriptions (1)\n")
	require.Regexp(t, `projector\s+idle\s+0/0\s+3\s+\d+`, out)
	require.Contains(t, out, "horizon\n")

	var s struct {
		Schema        string `json:"schema"`
		Version       int    `json:"version"`
		LatestVersion int    `json:"latest_version"`
		Events        int64  `json:"events"`
		Streams       int64  `json:"streams"`
		LogHead       string `json:"log_head"`
		Subscriptions []struct {
			Name         string  `json:"name"`
			Health       string  `json:"health"`
			Checkpoint   *string `json:"checkpoint"`
			EventsBehind int64   `json:"events_behind"`
		} `json:"subscriptions"`
		HorizonHolders []json.RawMessage `json:"horizon_holders"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, "status", "--json")), &s))
	require.Equal(t, "es", s.Schema)
	require.Equal(t, 6, s.Version)
	require.Equal(t, 6, s.LatestVersion)
	require.EqualValues(t, 3, s.Events)
	require.EqualValues(t, 2, s.Streams)
	require.Regexp(t, `^\d+/\d+$`, s.LogHead)
	require.LessOrEqual(t, position(t, s.LogHead).Compare(position(t, last)), 0)
	require.Len(t, s.Subscriptions, 1)
	require.Equal(t, "projector", s.Subscriptions[0].Name)
	require.Equal(t, "idle", s.Subscriptions[0].Health)
	require.NotNil(t, s.Subscriptions[0].Checkpoint)
	require.Equal(t, "0/0", *s.Subscriptions[0].Checkpoint)
	require.EqualValues(t, 3, s.Subscriptions[0].EventsBehind)
	require.NotNil(t, s.HorizonHolders)
}

// TestStatusHorizonHolder holds the horizon back for the whole cluster:
// it does not run in parallel, so that the other tests do not wait for it.
func TestStatusHorizonHolder(t *testing.T) {
	b := setup(t, true)
	ctx := context.Background()

	// A transaction that has written and stays open holds the horizon back.
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, err = tx.Exec(ctx, "SET LOCAL application_name = 'held-open'")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT * FROM es.append_json('order-1', 'OrderPlaced', '{}')")
	require.NoError(t, err)

	out := b.ok(t, "status")
	require.Contains(t, out, "held-open")
	require.Contains(t, out, "idle in transaction")
}

func TestStatusNotInstalled(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	_, stderr, code := b.es(t, "status")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "schema es is not installed: run es migrate up")
}
