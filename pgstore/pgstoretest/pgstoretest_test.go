package pgstoretest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/pgstore/pgstoretest"
)

func TestMain(m *testing.M) { pgstoretest.Main(m) }

type (
	OrderPlaced struct {
		OrderID string
		Total   int64
	}
	OrderShipped struct{ OrderID string }
)

// An application's test: a store on a database of its own, events
// appended and read back through pgstore.
func TestStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := pgstoretest.Store(t, nil)

	registry := es.NewRegistry()
	require.NoError(t, es.Register[OrderPlaced](registry, "OrderPlaced"))
	require.NoError(t, es.Register[OrderShipped](registry, "OrderShipped"))
	var events []es.NewEvent
	for _, v := range []any{OrderPlaced{OrderID: "o-1", Total: 1250}, OrderShipped{OrderID: "o-1"}} {
		e, err := registry.NewEvent(v, nil)
		require.NoError(t, err)
		events = append(events, e)
	}
	res, err := store.Append(ctx, "order-o-1", es.NoStream, events)
	require.NoError(t, err)
	require.EqualValues(t, 2, res.StreamVersion)

	var got []any
	for e, err := range store.ReadStream(ctx, "order-o-1", nil) {
		require.NoError(t, err)
		v, err := registry.Decode(e)
		require.NoError(t, err)
		got = append(got, v)
	}
	require.Equal(t, []any{OrderPlaced{OrderID: "o-1", Total: 1250}, OrderShipped{OrderID: "o-1"}}, got)

	// The global log shows an event once every transaction that was
	// running when it was appended has ended, in every database of the
	// cluster: another test's migration may hold it back for a while.
	var all []es.Event
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		all = all[:0]
		for e, err := range store.ReadAll(ctx, nil) {
			require.NoError(t, err)
			all = append(all, e)
		}
		if len(all) > 0 || time.Now().After(deadline) {
			break
		}
	}
	require.Len(t, all, 2, "the database holds this test's events only")
	require.Equal(t, res.LastPosition, all[1].Position)
}

// Each call gets a database of its own, migrated to the latest version.
func TestPool(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := pgstoretest.Pool(t, nil), pgstoretest.Pool(t, nil)

	var nameA, nameB string
	require.NoError(t, a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA))
	require.NoError(t, b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB))
	require.NotEqual(t, nameA, nameB)

	for _, pool := range []*pgxpool.Pool{a, b} {
		res, err := pgstore.Migrate(ctx, pool, nil)
		require.NoError(t, err)
		require.Positive(t, res.FromVersion)
		require.Equal(t, res.FromVersion, res.ToVersion, "already at the latest version")
		require.Empty(t, res.Steps)
	}

	storeA, err := pgstore.New(a, nil)
	require.NoError(t, err)
	_, err = storeA.Append(ctx, "order-1", es.Any, []es.NewEvent{{Type: "OrderPlaced"}})
	require.NoError(t, err)
	storeB, err := pgstore.New(b, nil)
	require.NoError(t, err)
	_, err = storeB.StreamInfo(ctx, "order-1")
	require.ErrorIs(t, err, es.ErrNotFound, "the other database does not see it")
}

// The schema option: the es schema installed under another name, and
// nothing under "es".
func TestStoreSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := pgstoretest.Store(t, &pgstore.Config{Schema: "tenant1"})
	require.Equal(t, "tenant1_events", store.Channel())
	_, err := store.Append(ctx, "order-1", es.NoStream, []es.NewEvent{{Type: "OrderPlaced"}})
	require.NoError(t, err)

	pool := pgstoretest.Pool(t, &pgstoretest.Opts{Schema: "tenant2"})
	var schemas []string
	rows, err := pool.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname IN ('es', 'tenant1', 'tenant2') ORDER BY 1")
	require.NoError(t, err)
	schemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"tenant2"}, schemas)
}

// The database lives as long as the test that asked for it.
func TestConnString(t *testing.T) {
	t.Parallel()
	var connString string
	t.Run("test", func(t *testing.T) {
		connString = pgstoretest.ConnString(t, nil)
		conn, err := pgx.Connect(t.Context(), connString)
		require.NoError(t, err)
		defer conn.Close(t.Context())
		var version int32
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT version FROM es.schema_version").Scan(&version))
		require.Positive(t, version)
	})
	require.NotEmpty(t, connString)

	conn, err := pgx.Connect(t.Context(), connString)
	if err == nil {
		conn.Close(t.Context())
	}
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "connecting to the dropped database: %v", err)
	require.Equal(t, pgerrcode.InvalidCatalogName, pgErr.Code, "the database is dropped: %v", err)
}
