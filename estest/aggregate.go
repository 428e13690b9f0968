package estest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// Scenario is a given/when/then test of an aggregate, without any store:
// given past events, when a command runs, then it records these events, or
// fails with this error. Build one with [Given]:
//
//	estest.Given(t, newOrder, OrderCreated{ID: "o1"}).
//		When(func(o *Order) error { return o.AddItem("sku-1", 2) }).
//		Then(ItemAdded{SKU: "sku-1", Qty: 2})
//
// The outcome methods ([Scenario.Then], [Scenario.ThenError],
// [Scenario.ThenNothing]) run the scenario: they build a fresh aggregate with
// the factory, rehydrate it from the past events, run the command once and
// check the outcome, reporting a mismatch with t.Fatalf (through require).
type Scenario[A es.Aggregate] struct {
	t       testing.TB
	newAgg  func() A
	past    []any
	command func(A) error
}

// Given starts a [Scenario] for the aggregate newAgg returns (a fresh one per
// run), whose history is past: the events are applied as stored history with
// [es.Rehydrate], so they are not among the events the command records.
// Failures are reported to t.
func Given[A es.Aggregate](t testing.TB, newAgg func() A, past ...any) *Scenario[A] {
	t.Helper()
	return &Scenario[A]{t: t, newAgg: newAgg, past: past}
}

// When sets the command the scenario runs: typically a closure calling one
// command method of the aggregate. It returns s.
func (s *Scenario[A]) When(command func(A) error) *Scenario[A] {
	s.command = command
	return s
}

// Then runs the scenario and checks that the command succeeded and recorded
// exactly events, in order (compared with require.Equal, so a mismatch shows
// a diff). Then with no events is [Scenario.ThenNothing]. It returns the
// aggregate, for checks of its state.
func (s *Scenario[A]) Then(events ...any) A {
	s.t.Helper()
	agg, err := s.run()
	require.NoError(s.t, err, "estest: the command failed, want events %v", events)
	got := agg.Pending()
	if len(events) == 0 {
		require.Empty(s.t, got, "estest: the command recorded events, want none")
		return agg
	}
	require.Equal(s.t, events, got, "estest: the command recorded other events than expected")
	return agg
}

// ThenNothing runs the scenario and checks that the command succeeded and
// recorded no event. It returns the aggregate, for checks of its state.
func (s *Scenario[A]) ThenNothing() A {
	s.t.Helper()
	return s.Then()
}

// ThenError runs the scenario and checks that the command failed with an
// error matching target (errors.Is). The events it may have recorded before
// failing are not checked: a failed command's events are never saved. It
// returns the aggregate, for checks of its state.
func (s *Scenario[A]) ThenError(target error) A {
	s.t.Helper()
	agg, err := s.run()
	require.Error(s.t, err, "estest: the command succeeded (recording %v), want error %v", agg.Pending(), target)
	require.ErrorIs(s.t, err, target, "estest: the command failed with another error")
	return agg
}

// run builds the aggregate from the past events and runs the command on it.
func (s *Scenario[A]) run() (A, error) {
	s.t.Helper()
	if s.newAgg == nil {
		s.t.Fatalf("estest: Given needs a non-nil aggregate factory")
	}
	if s.command == nil {
		s.t.Fatalf("estest: the scenario has no command: call When before Then")
	}
	agg := s.newAgg()
	require.NoError(s.t, es.Rehydrate(agg, s.past...), "estest: applying the given events")
	return agg, s.command(agg)
}
