package storetest

import (
	"testing"

	"github.com/pgevent/es"
)

// Run runs the conformance suite against the stores newStore returns. Every
// subtest calls t.Parallel and then newStore(t), which must return a fresh,
// empty store that only this subtest uses; the factory can use t.Cleanup to
// release it.
func Run(t *testing.T, newStore func(t *testing.T) es.Store) {
	t.Helper()
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := newStore(t)
					if s == nil {
						t.Fatal("storetest: newStore returned nil")
					}
					tc.run(t, s)
				})
			}
		})
	}
}

// test is one named subtest of the suite.
type test struct {
	name string
	run  func(t *testing.T, s es.Store)
}

// group is a named list of subtests.
type group struct {
	name  string
	tests []test
}

// groups is the whole suite.
var groups = []group{
	{"Append", appendTests},
	{"SchemaVersions", schemaVersionTests},
	{"Idempotency", idempotencyTests},
	{"Validation", validationTests},
	{"ReadStream", readStreamTests},
	{"StreamInfo", streamInfoTests},
	{"ReadAll", readAllTests},
	{"Concurrency", concurrencyTests},
	{"Context", contextTests},
	{"Snapshots", snapshotTests},
	{"Subscriptions", subscriptionTests},
	{"ReadModels", readModelTests},
	{"Health", healthTests},
	{"Parking", parkedTests},
	{"ConsumerGroups", groupTests},
	{"Lifecycle", lifecycleTests},
	{"Edges", edgeTests},
	{"Forgetting", forgetTests},
}
