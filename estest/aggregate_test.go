package estest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/estest"
)

// Events of the account aggregate used by the tests.
type (
	opened    struct{ ID string }
	deposited struct{ Amount int }
	withdrawn struct{ Amount int }
)

var errInsufficientFunds = errors.New("account: insufficient funds")

type account struct {
	es.AggregateBase
	balance int
}

func newAccount() *account { return &account{} }

func (a *account) Apply(event any) error {
	switch e := event.(type) {
	case opened:
		a.SetID(e.ID)
	case deposited:
		a.balance += e.Amount
	case withdrawn:
		a.balance -= e.Amount
	default:
		return fmt.Errorf("account: unknown event %T", event)
	}
	return nil
}

func (a *account) Deposit(n int) error { return es.Record(a, deposited{Amount: n}) }

func (a *account) Withdraw(n int) error {
	if n > a.balance {
		return fmt.Errorf("withdrawing %d from %d: %w", n, a.balance, errInsufficientFunds)
	}
	return es.Record(a, withdrawn{Amount: n})
}

// fakeTB records failures. FailNow ends the calling goroutine, as
// testing.T's does, so scenarios run in their own goroutine (see check).
type fakeTB struct {
	testing.TB // nil: calling anything not overridden panics

	mu     sync.Mutex
	msgs   []string
	failed bool
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Name() string { return "fake" }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	f.failed = true
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.FailNow()
}

func (f *fakeTB) FailNow() {
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// check runs scenario against a fakeTB and returns whether it failed and
// what it reported.
func check(scenario func(t testing.TB)) (failed bool, report string) {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		scenario(f)
	}()
	<-done
	return f.Failed(), strings.Join(f.msgs, "\n")
}

func TestScenarioPasses(t *testing.T) {
	t.Parallel()

	// On the real t.
	a := estest.Given(t, newAccount, opened{ID: "a1"}, deposited{Amount: 10}).
		When(func(a *account) error { return a.Withdraw(4) }).
		Then(withdrawn{Amount: 4})
	require.Equal(t, 6, a.balance)
	require.Equal(t, "a1", a.ID())
	require.Equal(t, int64(2), a.StoredVersion(), "the given events are history")

	estest.Given(t, newAccount).
		When(func(a *account) error {
			if err := a.Deposit(1); err != nil {
				return err
			}
			return a.Deposit(2)
		}).
		Then(deposited{Amount: 1}, deposited{Amount: 2})

	estest.Given(t, newAccount, opened{ID: "a1"}).
		When(func(a *account) error { return a.Withdraw(1) }).
		ThenError(errInsufficientFunds)

	estest.Given(t, newAccount, opened{ID: "a1"}).
		When(func(*account) error { return nil }).
		ThenNothing()

	// And on the fake, which must see no failure.
	failed, report := check(func(t testing.TB) {
		estest.Given(t, newAccount, deposited{Amount: 5}).
			When(func(a *account) error { return a.Withdraw(5) }).
			Then(withdrawn{Amount: 5})
	})
	require.False(t, failed, report)
}

func TestScenarioFails(t *testing.T) {
	t.Parallel()
	withdraw := func(n int) func(*account) error {
		return func(a *account) error { return a.Withdraw(n) }
	}
	for _, tc := range []struct {
		name     string
		scenario func(t testing.TB)
		want     string // in the report
	}{
		{
			name: "other event",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount, deposited{Amount: 10}).When(withdraw(3)).Then(withdrawn{Amount: 4})
			},
			want: "withdrawn{Amount:4}",
		},
		{
			name: "missing event",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount, deposited{Amount: 10}).When(withdraw(3)).Then(withdrawn{Amount: 3}, withdrawn{Amount: 3})
			},
			want: "recorded other events",
		},
		{
			name: "events in another order",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount).
					When(func(a *account) error {
						if err := a.Deposit(1); err != nil {
							return err
						}
						return a.Deposit(2)
					}).
					Then(deposited{Amount: 2}, deposited{Amount: 1})
			},
			want: "recorded other events",
		},
		{
			name: "events where none expected",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount, deposited{Amount: 10}).When(withdraw(3)).ThenNothing()
			},
			want: "want none",
		},
		{
			name: "command error where events expected",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount).When(withdraw(3)).Then(withdrawn{Amount: 3})
			},
			want: "insufficient funds",
		},
		{
			name: "success where an error is expected",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount, deposited{Amount: 10}).When(withdraw(3)).ThenError(errInsufficientFunds)
			},
			want: "the command succeeded",
		},
		{
			name: "another error",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount).When(withdraw(3)).ThenError(errors.New("other"))
			},
			want: "another error",
		},
		{
			name: "history Apply refuses",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount, "not an event").When(withdraw(3)).ThenNothing()
			},
			want: "applying the given events",
		},
		{
			name: "no When",
			scenario: func(t testing.TB) {
				estest.Given(t, newAccount).ThenNothing()
			},
			want: "call When before Then",
		},
		{
			name: "nil factory",
			scenario: func(t testing.TB) {
				estest.Given[*account](t, nil).When(withdraw(1)).ThenNothing()
			},
			want: "non-nil aggregate factory",
		},
		{
			name: "factory returns nil",
			scenario: func(t testing.TB) {
				estest.Given(t, func() *account { return nil }).When(withdraw(1)).ThenNothing()
			},
			want: "nil aggregate",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			failed, report := check(tc.scenario)
			require.True(t, failed, "the scenario should fail")
			require.Contains(t, report, tc.want)
		})
	}
}

// A failing Then stops the test: nothing after it runs.
func TestScenarioFailureStops(t *testing.T) {
	t.Parallel()
	var after bool
	failed, _ := check(func(t testing.TB) {
		estest.Given(t, newAccount).When(func(a *account) error { return a.Deposit(1) }).ThenNothing()
		after = true
	})
	require.True(t, failed)
	require.False(t, after)
}
