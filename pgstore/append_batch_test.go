package pgstore_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A batch is inserted without ON CONFLICT, in a block that catches a
// stored event id (append.sql), and an id repeated in the batch is found by
// the unique index rather than by a query on every call. What the SQL
// function reports must not depend on that: a repeated id is PE003 whatever
// else is wrong, a stored id PE002 or a replay, and nothing is written.
func TestAppendBatchRefusalsInSQL(t *testing.T) {
	t.Parallel()
	b := orderingSetup(t)
	s := pgx.Identifier{b.schema}.Sanitize()
	appendSQL := "SELECT stream_version, first_version FROM " + s + ".append($1, $2, $3, $4, $5)"
	call := func(stream string, expected *int64, ids ...uuid.UUID) (int64, int64, error) {
		types := make([]string, len(ids))
		data := make([][]byte, len(ids))
		for i := range ids {
			types[i], data[i] = "E", []byte{0x80}
		}
		var version, first int64
		err := b.pool.QueryRow(b.ctx, appendSQL, stream, expected, ids, types, data).Scan(&version, &first)
		return version, first, err
	}
	version := func(stream string) int64 {
		var v int64
		err := b.pool.QueryRow(b.ctx, "SELECT coalesce((SELECT version FROM "+s+".streams WHERE stream_id = $1), -1)", stream).Scan(&v)
		require.NoError(t, err)
		return v
	}
	count := func() int64 {
		var n int64
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM "+s+".events").Scan(&n))
		return n
	}
	exactly := func(n int64) *int64 { return &n }

	a1, a2, a3 := uuid.New(), uuid.New(), uuid.New()
	v, first, err := call("batch-a", exactly(0), a1, a2)
	require.NoError(t, err)
	require.Equal(t, [2]int64{2, 1}, [2]int64{v, first})
	stored := count()

	r := uuid.New()
	// A repeated id: into a new stream, an existing one, with a wrong
	// expected version, into a soft-deleted stream.
	_, _, err = call("batch-new", exactly(0), r, r)
	require.Equal(t, "PE003", pgCode(err), "%v", err)
	require.Equal(t, int64(-1), version("batch-new"), "no stream row")
	_, _, err = call("batch-a", nil, r, r)
	require.Equal(t, "PE003", pgCode(err), "%v", err)
	_, _, err = call("batch-a", exactly(7), r, r)
	require.Equal(t, "PE003", pgCode(err), "%v", err)
	_, _, err = call("batch-a", nil, a1, a1)
	require.Equal(t, "PE003", pgCode(err), "a stored id repeated: %v", err)

	_, _, err = call("batch-del", exactly(0), uuid.New(), uuid.New())
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, "SELECT "+s+".soft_delete_stream('batch-del')")
	require.NoError(t, err)
	_, _, err = call("batch-del", nil, r, r)
	require.Equal(t, "PE003", pgCode(err), "%v", err)
	_, _, err = call("batch-del", nil, uuid.New(), uuid.New())
	require.Equal(t, "PE004", pgCode(err), "%v", err)
	stored += 2

	// A stored id in another stream, or some of the batch stored: PE002.
	_, _, err = call("batch-b", nil, a3, a1)
	require.Equal(t, "PE002", pgCode(err), "%v", err)
	require.Equal(t, int64(-1), version("batch-b"))
	_, _, err = call("batch-a", nil, a2, a3)
	require.Equal(t, "PE002", pgCode(err), "%v", err)
	// A retry of the stored batch: the original result, nothing written.
	v, first, err = call("batch-a", nil, a1, a2)
	require.NoError(t, err)
	require.Equal(t, [2]int64{2, 1}, [2]int64{v, first})
	v, first, err = call("batch-a", exactly(0), a1, a2)
	require.NoError(t, err)
	require.Equal(t, [2]int64{2, 1}, [2]int64{v, first})

	require.Equal(t, int64(2), version("batch-a"), "the stream row restored after each refusal or replay")
	require.Equal(t, stored, count(), "nothing written by a refused or replayed batch")

	// And the next batch goes on from there.
	v, first, err = call("batch-a", exactly(2), a3, uuid.New())
	require.NoError(t, err)
	require.Equal(t, [2]int64{4, 3}, [2]int64{v, first})
}
