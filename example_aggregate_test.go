package es_test

import (
	"errors"
	"fmt"

	"github.com/pgevent/es"
)

// The bank account's events: plain structs.
type (
	AccountOpened  struct{ AccountID, Owner string }
	MoneyDeposited struct{ Amount int }
	MoneyWithdrawn struct{ Amount int }
)

// ErrInsufficientFunds is the account's domain error.
var ErrInsufficientFunds = errors.New("insufficient funds")

// Account is an aggregate: it embeds es.AggregateBase and applies its events
// in a plain type switch.
type Account struct {
	es.AggregateBase
	Owner   string
	Balance int
}

// Apply changes the state by one event; it never refuses a valid event.
func (a *Account) Apply(event any) error {
	switch e := event.(type) {
	case AccountOpened:
		a.SetID(e.AccountID)
		a.Owner = e.Owner
	case MoneyDeposited:
		a.Balance += e.Amount
	case MoneyWithdrawn:
		a.Balance -= e.Amount
	default:
		return fmt.Errorf("account: unknown event %T", event)
	}
	return nil
}

// Deposit is a command: it checks, then records.
func (a *Account) Deposit(amount int) error {
	if amount <= 0 {
		return errors.New("amount must be positive")
	}
	return es.Record(a, MoneyDeposited{Amount: amount})
}

// Withdraw is a command that can refuse.
func (a *Account) Withdraw(amount int) error {
	if amount > a.Balance {
		return fmt.Errorf("withdrawing %d from %d: %w", amount, a.Balance, ErrInsufficientFunds)
	}
	return es.Record(a, MoneyWithdrawn{Amount: amount})
}

// An aggregate rebuilt from its history, then changed by commands: the new
// events are pending until a repository saves them at StoredVersion.
func Example_aggregate() {
	acc := &Account{}
	err := es.Rehydrate(acc,
		AccountOpened{AccountID: "acc-1", Owner: "Ada"},
		MoneyDeposited{Amount: 100},
	)
	fmt.Println(acc.ID(), acc.Owner, acc.Balance, acc.Version(), err)

	fmt.Println(acc.Withdraw(30))
	fmt.Println(acc.Deposit(5))
	err = acc.Withdraw(500)
	fmt.Println(errors.Is(err, ErrInsufficientFunds), err)

	fmt.Println("balance:", acc.Balance)
	fmt.Println("stored version:", acc.StoredVersion(), "version:", acc.Version())
	for _, e := range acc.Pending() {
		fmt.Printf("pending: %T%+v\n", e, e)
	}

	// After a successful save, the repository marks the events committed.
	acc.Commit()
	fmt.Println("stored version:", acc.StoredVersion(), "pending:", len(acc.Pending()))
	// Output:
	// acc-1 Ada 100 2 <nil>
	// <nil>
	// <nil>
	// true withdrawing 500 from 75: insufficient funds
	// balance: 75
	// stored version: 2 version: 4
	// pending: es_test.MoneyWithdrawn{Amount:30}
	// pending: es_test.MoneyDeposited{Amount:5}
	// stored version: 4 pending: 0
}
