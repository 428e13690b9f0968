package pgstore_test

import (
	"testing"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/storetest"
)

// TestConformance runs the suite every es.Store must pass, each subtest on a
// schema of its own (with quick subscription timing: the suite's
// subscriptions notice everything quickly even without notifications).
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) es.Store { return fastStore(t) })
}

// TestConformanceSmallPages runs the suite again with pages of two events,
// so that every read test also exercises paging in ReadStream and ReadAll.
func TestConformanceSmallPages(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) es.Store {
		pool, schema := pgtest.NewSchema(t)
		c := fastConfig(schema)
		c.ReadBatchSize = 2
		s, err := pgstore.New(pool, c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
