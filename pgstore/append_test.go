package pgstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// An AppendTx called with an already-cancelled context sends nothing; the
// caller's transaction must stay usable and keep its earlier work.
func TestAppendTxCancelledContextKeepsTransaction(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)

	tx := b.begin(t)
	first, err := b.store.WithTx(tx).Append(b.ctx, "tx-1", es.NoStream, newEvents(1, "E"))
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(b.ctx)
	cancel()
	_, err = b.store.WithTx(tx).Append(cancelled, "tx-1", es.Exactly(1), newEvents(1, "E"))
	require.ErrorIs(t, err, context.Canceled)

	var one int
	require.NoError(t, tx.QueryRow(b.ctx, "SELECT 1").Scan(&one), "the transaction is still usable")
	second, err := b.store.WithTx(tx).Append(b.ctx, "tx-1", es.Exactly(1), newEvents(1, "E"))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(b.ctx))

	info, err := b.store.StreamInfo(b.ctx, "tx-1")
	require.NoError(t, err)
	require.Equal(t, int64(2), info.Version)
	require.Equal(t, first.LastPosition.TxKey(), second.FirstPosition.TxKey(), "one transaction")
}

// payloadStore returns a store on b's schema whose connections set
// es.notify_payload to mode ("" leaves it unset).
func payloadStore(t *testing.T, b *orderingBundle, mode string) *pgstore.Store {
	t.Helper()
	cfg := b.pool.Config()
	if mode != "" {
		cfg.ConnConfig.RuntimeParams["es.notify_payload"] = mode
	}
	pool, err := pgxpool.NewWithConfig(b.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: b.schema})
	require.NoError(t, err)
	return store
}

// By default the payload carries only the position: any login may LISTEN
// on the channel, and stream ids are the application's data.
func TestAppendNotifiesMinimalPayloadByDefault(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(b.ctx, "LISTEN "+b.store.Channel())
	require.NoError(t, err)

	for _, mode := range []string{"", "minimal", "anything else"} {
		store := payloadStore(t, b, mode)
		res, err := store.Append(b.ctx, "secret-"+mode, es.NoStream, newEvents(1, "E"))
		require.NoError(t, err)
		wait, cancel := context.WithTimeout(b.ctx, time.Minute)
		n, err := conn.Conn().WaitForNotification(wait)
		cancel()
		require.NoError(t, err)
		require.NotContains(t, n.Payload, "secret", "mode %q", mode)
		var p map[string]string
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &p))
		require.Equal(t, map[string]string{"position": res.LastPosition.String()}, p, "mode %q", mode)
	}
}

// A stream id whose JSON escaping is six times its length must not push the
// full notification payload over PostgreSQL's 8000-byte limit and fail the
// append.
func TestAppendNotifiesForLongEscapedStreamIDs(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)
	full := payloadStore(t, b, "full")

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
		res, err := full.Append(b.ctx, id, es.NoStream, newEvents(1, "E"))
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
