package es_test

import (
	"context"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/snapshot"
)

// SnapshottedAccount is the Account of the aggregate example with
// snapshots: its state (Owner, Balance) encoded with msgpack, schema
// version 1.
type SnapshottedAccount struct{ Account }

func (a *SnapshottedAccount) SnapshotSchemaVersion() int { return 1 }
func (a *SnapshottedAccount) MarshalSnapshot() ([]byte, error) {
	return snapshot.Marshal(&a.Account)
}
func (a *SnapshottedAccount) UnmarshalSnapshot(state []byte) error {
	return snapshot.Unmarshal(state, &a.Account)
}

// An aggregate that implements es.Snapshotter is loaded from its newest
// snapshot and the events after it; the policy decides at each save
// whether to store a snapshot with the events, in the same call.
func Example_snapshots() {
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
	store := memstore.New(nil)
	accounts, err := es.NewRepository(store, registry, func() *SnapshottedAccount { return &SnapshottedAccount{} },
		&es.RepositoryConfig{Category: "account", SnapshotPolicy: snapshot.Every(3)})
	if err != nil {
		panic(err)
	}

	acc := accounts.New("acc-1")
	_ = es.Record(acc, AccountOpened{AccountID: "acc-1", Owner: "Ada"})
	_, _ = accounts.Save(ctx, acc) // version 1
	for _, amount := range []int{10, 20, 30, 40} {
		_ = acc.Deposit(amount)
		_, _ = accounts.Save(ctx, acc) // versions 2..5: the save to 3 crosses a multiple of 3
	}
	snap, err := store.ReadSnapshot(ctx, "account-acc-1")
	fmt.Println("snapshot at version", snap.Version, "schema", snap.SchemaVersion, err)

	// Load: the snapshot at 3, then events 4 and 5.
	loaded, err := accounts.Load(ctx, "acc-1")
	fmt.Println(loaded.Owner, loaded.Balance, loaded.StoredVersion(), err)
	// Output:
	// snapshot at version 3 schema 1 <nil>
	// Ada 100 5 <nil>
}
