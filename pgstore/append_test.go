package pgstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// An AppendTx called with an already-cancelled context sends nothing; the
// caller's transaction must stay usable and keep its earlier work.
func TestAppendTxCancelledContextKeepsTransaction(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)

	tx := b.begin(t)
	first, err := b.store.AppendTx(b.ctx, tx, "tx-1", es.NoStream, newEvents(1, "E"))
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err = b.store.AppendTx(cancelled, tx, "tx-1", es.Exactly(1), newEvents(1, "E"))
	require.ErrorIs(t, err, context.Canceled)

	var one int
	require.NoError(t, tx.QueryRow(b.ctx, "SELECT 1").Scan(&one), "the transaction is still usable")
	second, err := b.store.AppendTx(b.ctx, tx, "tx-1", es.Exactly(1), newEvents(1, "E"))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(b.ctx))

	info, err := b.store.StreamInfo(b.ctx, "tx-1")
	require.NoError(t, err)
	require.Equal(t, int64(2), info.Version)
	require.Equal(t, first.LastPosition.TxKey(), second.FirstPosition.TxKey(), "one transaction")
}

// A stream id whose JSON escaping is six times its length must not push the
// notification payload over PostgreSQL's 8000-byte limit and fail the append.
func TestAppendNotifiesForLongEscapedStreamIDs(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)

	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(b.ctx, "LISTEN "+b.store.Channel())
	require.NoError(t, err)

	for _, id := range []string{
		strings.Repeat("\x01", es.MaxStreamIDLength),               // 6000 bytes escaped, twice
		"c-" + strings.Repeat("\x01", es.MaxStreamIDLength-2),      // a short category
		strings.Repeat("\x01", 650) + "-" + strings.Repeat("x", 9), // just over the limit with the category
	} {
		res, err := b.store.Append(b.ctx, id, es.NoStream, newEvents(1, "E"))
		require.NoError(t, err, "append to a stream id of %d bytes", len(id))

		n, err := conn.Conn().WaitForNotification(b.ctx) // bounded by the test's deadline
		require.NoError(t, err)
		require.Less(t, len(n.Payload), 8000)
		var p struct {
			StreamID string  `json:"stream_id"`
			Category *string `json:"category"`
			Version  int64   `json:"version"`
			Position string  `json:"position"`
		}
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &p))
		require.Equal(t, id, p.StreamID)
		require.Equal(t, int64(1), p.Version)
		require.Equal(t, res.LastPosition.String(), p.Position)
		if p.Category != nil {
			require.Equal(t, es.Category(id), *p.Category)
		}
	}
}
