package pgstore_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// statementCounter is a pgx tracer that counts the statements a connection
// sends, and the statements it prepares (each a round trip of its own).
type statementCounter struct {
	queries, prepares atomic.Int64
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.prepares.Add(1)
	return ctx
}

func (c *statementCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// TestAppendIsOneRoundTrip checks the client path of an append: one
// statement per Append (one round trip once its statement is prepared, which
// happens once per connection), whatever the batch size.
func TestAppendIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	_, schema := pgtest.NewSchema(t)
	cfg, err := pgxpool.ParseConfig(pgtest.ConnString(t))
	require.NoError(t, err)
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)

	const appends = 20
	queries0, prepares0 := counter.queries.Load(), counter.prepares.Load()
	for i := range appends {
		events := make([]es.NewEvent, 1+i%3)
		for j := range events {
			events[j] = es.NewEvent{Type: "Noted", Data: []byte{0x80}}
		}
		_, err := store.Append(t.Context(), "order-rt", es.Any, events)
		require.NoError(t, err)
	}
	require.Equal(t, int64(appends), counter.queries.Load()-queries0, "one statement per append")
	require.LessOrEqual(t, counter.prepares.Load()-prepares0, int64(1), "the append statement is prepared once on the connection")
}
