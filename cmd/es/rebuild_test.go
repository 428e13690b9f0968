package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/syncbuf"
)

func TestRebuild(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	ctx := context.Background()
	for i := range 40 {
		b.appendJSON(t, "order-1", "Noted", `{"n": `+strings.Repeat("1", 1+i%3)+`}`)
	}
	var last string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT max(position) FROM (SELECT position, transaction_id, global_position FROM es.events_view ORDER BY transaction_id DESC, global_position DESC LIMIT 1) AS l").Scan(&last))

	// The projection has run to the end once.
	handled := make(chan es.Event, 100)
	runProjection := func(ctx context.Context, slow bool) error {
		return b.store.Subscribe(ctx, "totals", func(ctx context.Context, e es.Event) error {
			if slow {
				time.Sleep(20 * time.Millisecond) // a projection that takes some time per event
			}
			select {
			case handled <- e:
			default:
			}
			return nil
		}, &es.SubscribeOpts{CheckpointEvery: 1, BatchSize: 5, ProgressInterval: 50 * time.Millisecond})
	}
	first, stopFirst := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runProjection(first, false) }()
	waitUntil(t, "the first build", func() bool {
		cp, _, err := b.store.Checkpoint(ctx, "totals")
		require.NoError(t, err)
		return cp.String() == last
	})
	stopFirst()
	require.NoError(t, <-done)
	waitUntil(t, "the projection to stop running", func() bool {
		var running bool
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT es.subscription_running('totals')").Scan(&running))
		return !running
	})

	// es rebuild --reset resets it, waits for an instance, and follows the
	// rebuild to the end.
	cmdCtx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var out, errOut syncbuf.Buffer
	cmd := b.command(cmdCtx, "rebuild", "totals", "--reset")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	waitUntil(t, "es rebuild to wait for an instance", func() bool { return strings.Contains(out.String(), "waiting for an instance") })
	second, stopSecond := context.WithCancel(ctx)
	defer stopSecond()
	go func() { done <- runProjection(second, true) }()
	require.NoError(t, cmd.Wait(), "stderr: %s", errOut.String())
	t.Logf("es rebuild:\n%s", out.String())
	require.Contains(t, out.String(), "totals: checkpoint reset to the start of the log")
	require.Contains(t, out.String(), "totals: 40 events to handle")
	require.Contains(t, out.String(), "totals: caught up at "+last)
	require.Regexp(t, `totals\s+\d+\.\d% \d+/40 events`, out.String(), "progress lines")
	stopSecond()
	require.NoError(t, <-done)

	// Refused while an instance runs.
	third, stopThird := context.WithCancel(ctx)
	go func() { done <- runProjection(third, false) }()
	waitUntil(t, "the projection to run", func() bool {
		var running bool
		require.NoError(t, b.pool.QueryRow(ctx, "SELECT es.subscription_running('totals')").Scan(&running))
		return running
	})
	_, stderr, code := b.es(t, "rebuild", "totals", "--reset")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "running")
	stopThird()
	require.NoError(t, <-done)
}
