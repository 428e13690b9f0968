package main_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// waitUntil polls cond until it holds, failing t at a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(commandTimeout)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "waiting for %s", what)
		time.Sleep(50 * time.Millisecond) // polling, with a deadline
	}
}

func TestSub(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	ctx := context.Background()

	require.Equal(t, "no subscriptions\n", b.ok(t, "sub", "list"))

	b.appendJSON(t, "order-1", "OrderPlaced", `{}`)
	b.appendJSON(t, "order-1", "OrderShipped", `{}`)
	var second string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT position FROM es.events_view WHERE stream_id = 'order-1' AND version = 2").Scan(&second))

	// A subscription that handles every event, then is stopped.
	handled := make(chan es.Event, 10)
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.store.Subscribe(subCtx, "projector", func(_ context.Context, e es.Event) error {
			handled <- e
			return nil
		}, nil)
	}()
	for range 2 {
		select {
		case <-handled:
		case <-time.After(commandTimeout):
			t.Fatal("the subscription handled no event")
		}
	}
	waitUntil(t, "the checkpoint", func() bool {
		cp, _, err := b.store.Checkpoint(ctx, "projector")
		require.NoError(t, err)
		return cp.String() == second
	})

	// Refused while it runs.
	_, stderr, code := b.es(t, "sub", "reset", "projector")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `subscription "projector" is running: stop its instances, then reset it`)
	_, stderr, code = b.es(t, "sub", "rewind", "projector", "--to", "0/0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `subscription "projector" is running`)

	out := b.ok(t, "sub", "list")
	require.Regexp(t, `projector\s+live\s+`+second+`\s+0\s+0`, out)

	stop()
	select {
	case <-done:
	case <-time.After(commandTimeout):
		t.Fatal("the subscription did not stop")
	}
	waitUntil(t, "the subscription to stop running", func() bool {
		var running bool
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT es.subscription_running('projector')").Scan(&running))
		return !running
	})

	out = b.ok(t, "sub", "show", "projector")
	require.Contains(t, out, "name           projector\n")
	require.Contains(t, out, "checkpoint     "+second+"\n")
	require.Contains(t, out, "behind         0 events (0 hidden)\n")

	out = b.ok(t, "sub", "reset", "projector")
	require.Equal(t, "subscription projector: checkpoint reset to the start of the log\n", out)
	var h struct {
		Name         string  `json:"name"`
		Health       string  `json:"health"`
		Checkpoint   *string `json:"checkpoint"`
		EventsBehind int64   `json:"events_behind"`
	}
	require.NoError(t, json.Unmarshal([]byte(b.ok(t, "sub", "show", "projector", "--json")), &h))
	require.Equal(t, "projector", h.Name)
	require.NotNil(t, h.Checkpoint)
	require.Equal(t, "0/0", *h.Checkpoint)
	require.EqualValues(t, 2, h.EventsBehind)

	out = b.ok(t, "sub", "rewind", "projector", "--to", second)
	require.Equal(t, "subscription projector: checkpoint set to "+second+"\n", out)
	cp, ok, err := b.store.Checkpoint(ctx, "projector")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, second, cp.String())

	out = b.ok(t, "sub", "list", "--json")
	require.NoError(t, json.Unmarshal([]byte(out), &h))
	require.Equal(t, second, *h.Checkpoint)

	_, stderr, code = b.es(t, "sub", "rewind", "projector")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "rewind needs --to POS")
	_, stderr, code = b.es(t, "sub", "rewind", "projector", "--to", "nowhere")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `position "nowhere"`)
}
