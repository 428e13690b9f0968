package main_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	ctx := context.Background()
	// What the lifecycle of streams does is no finding: a stream truncated
	// and its first events removed, a tombstoned one, events archived.
	for range 3 {
		b.appendJSON(t, "cart-1", "CartNoted", `{}`)
	}
	b.appendJSON(t, "cart-2", "CartNoted", `{}`)
	_, err := b.store.TruncateStream(ctx, "cart-1", 3)
	require.NoError(t, err)
	_, err = b.store.ApplyRetention(ctx, nil)
	require.NoError(t, err)
	_, err = b.store.TombstoneStream(ctx, "cart-2", es.Any)
	require.NoError(t, err)
	for range 3 {
		b.appendJSON(t, "order-1", "OrderNoted", `{}`)
	}
	b.appendJSON(t, "order-2", "OrderPlaced", `{}`)
	var first es.Position
	for e, err := range b.store.ReadStream(ctx, "order-1", nil) {
		require.NoError(t, err)
		first = e.Position
		break
	}
	_, err = b.store.ArchiveEvents(ctx, first, nil) // cart-1's version 3
	require.NoError(t, err)
	require.NoError(t, b.store.ResetCheckpoint(ctx, "projector", es.Position{}))

	out := b.ok(t, "verify")
	require.Equal(t, "ok    stream versions run without gaps to streams.version (from 1, or from where retention removed them)\n"+
		"ok    each stream's versions follow the log's order\n"+
		"ok    every checkpoint is at or before the log's last event (or the last one removed)\n"+
		"ok    the immutability triggers are on events and enabled\n", out)

	// Tamper as the table's owner: disable the trigger, delete an event,
	// drop the other trigger, move a checkpoint past the log's end.
	b.exec(t, "ALTER TABLE es.events DISABLE TRIGGER events_immutable")
	b.exec(t, "DELETE FROM es.events WHERE stream_id = 'order-1' AND version = 2")
	b.exec(t, "DROP TRIGGER events_no_truncate ON es.events")
	b.exec(t, "UPDATE es.checkpoints SET transaction_id = '999999999', global_position = 1000000 WHERE subscription_id = 'projector'")

	for _, args := range [][]string{{"verify"}, {"verify", "--chunk", "1"}} {
		out, stderr, code := b.es(t, args...)
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "verify 100.0% 4/4 streams", "progress on stderr")
		requireFindings(t, out)
	}
	_, stderr, code := b.es(t, "verify", "--schema", "nothing_here")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "schema nothing_here is not installed")
}

// requireFindings checks the findings of the tampered database.
func requireFindings(t *testing.T, out string) {
	t.Helper()
	require.Contains(t, out, "FAIL  stream versions run without gaps to streams.version (from 1, or from where retention removed them)\n"+
		`      stream "order-1": 2 events, versions 1..3, streams.version 3`+"\n")
	require.Contains(t, out, "FAIL  each stream's versions follow the log's order\n"+
		`      stream "order-1": version 3 follows version 1 in the log`+"\n")
	require.Contains(t, out, "FAIL  every checkpoint is at or before the log's last event (or the last one removed)\n"+
		`      subscription "projector": checkpoint 999999999/1000000 is after the log's last event `)
	require.Contains(t, out, "FAIL  the immutability triggers are on events and enabled\n"+
		"      trigger events_immutable on es.events is disabled\n"+
		"      trigger events_no_truncate is missing on es.events\n")
	require.Contains(t, out, "5 findings\n")
}
