package pgstore_test

import (
	"testing"

	"github.com/pgevent/es"
	"github.com/pgevent/es/estest"
	"github.com/pgevent/es/internal/pgtest"
)

// TestConformance runs the suite every es.Store must pass, each subtest on a
// schema of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	estest.Run(t, func(t *testing.T) es.Store { return pgtest.Store(t) })
}
