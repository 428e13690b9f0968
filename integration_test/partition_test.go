package integration_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
)

// TestStreamPartitionMatchesSQL checks that Go (es.StreamPartition, which
// memstore and the consumer group's resize use) and SQL (stream_partition,
// which read_partition filters with) put every stream in the same partition.
func TestStreamPartitionMatchesSQL(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.NewSchema(t)
	ids := []string{"order-1", "a", "x", "日本語-ストリーム", "category-with-dashes-1"}
	for range 500 {
		ids = append(ids, "order-"+uuid.NewString())
	}
	for _, n := range []int{1, 2, 3, 8, 13, 64, es.MaxPartitions} {
		rows, err := pool.Query(t.Context(), fmt.Sprintf(`SELECT s, %s.stream_partition(s, $2) FROM unnest($1::text[]) AS s`, schema), ids, n)
		require.NoError(t, err)
		checked := 0
		for rows.Next() {
			var id string
			var p int
			require.NoError(t, rows.Scan(&id, &p))
			require.Equal(t, p, es.StreamPartition(id, n), "stream %q among %d partitions", id, n)
			require.True(t, p >= 0 && p < n)
			checked++
		}
		require.NoError(t, rows.Err())
		require.Equal(t, len(ids), checked)
	}
}
