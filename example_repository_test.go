package es_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
)

// A repository stores each Account (see the aggregate example) in the
// stream "account-<id>": New and commands create one, Save appends its
// events, Load replays them, and Update loads, runs a command and saves,
// retrying on a version conflict. The same code runs on pgstore.
func Example_repository() {
	ctx := context.Background()
	registry := es.NewRegistry()
	for _, err := range []error{
		es.Register[AccountOpened](registry, "account.Opened"),
		es.Register[MoneyDeposited](registry, "account.MoneyDeposited"),
		es.Register[MoneyWithdrawn](registry, "account.MoneyWithdrawn"),
	} {
		if err != nil {
			panic(err)
		}
	}
	accounts, err := es.NewRepository(memstore.New(nil), registry, func() *Account { return &Account{} }, nil)
	if err != nil {
		panic(err)
	}

	// Create: a fresh aggregate, commands, then Save.
	acc := accounts.New("acc-1")
	_ = es.Record(acc, AccountOpened{AccountID: "acc-1", Owner: "Ada"})
	_ = acc.Deposit(100)
	_, err = accounts.Save(ctx, acc)
	fmt.Println("save:", err, "stored version:", acc.StoredVersion())

	// Load replays the stream.
	loaded, err := accounts.Load(ctx, "acc-1")
	fmt.Println(accounts.StreamID("acc-1"), loaded.Owner, loaded.Balance, loaded.StoredVersion(), err)

	// Update: load, command, save (retried on a version conflict).
	updated, _, err := accounts.Update(ctx, "acc-1", func(a *Account) error { return a.Withdraw(30) })
	fmt.Println("update:", updated.Balance, updated.StoredVersion(), err)

	// A command that refuses saves nothing.
	_, _, err = accounts.Update(ctx, "acc-1", func(a *Account) error { return a.Withdraw(500) })
	fmt.Println(errors.Is(err, ErrInsufficientFunds), err)

	// A stale copy cannot overwrite newer events.
	_ = acc.Deposit(1)
	_, err = accounts.Save(ctx, acc)
	var conflict *es.VersionConflictError
	fmt.Println(errors.As(err, &conflict), conflict.Expected, conflict.Actual, len(acc.Pending()))

	_, err = accounts.Load(ctx, "acc-2")
	fmt.Println(errors.Is(err, es.ErrNotFound))
	// Output:
	// save: <nil> stored version: 2
	// account-acc-1 Ada 100 2 <nil>
	// update: 70 3 <nil>
	// true withdrawing 500 from 70: insufficient funds
	// true 2 3 1
	// true
}
