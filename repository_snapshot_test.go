package es_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/snapshot"
	"github.com/pgevent/es/storetest"
)

// plainStore hides every method of a store but those of es.Store.
type plainStore struct{ es.Store }

// schemaAccount is a SnapshottedAccount whose schema version its factory
// chooses.
type schemaAccount struct {
	SnapshottedAccount
	schema int
}

func (a *schemaAccount) SnapshotSchemaVersion() int { return a.schema }

func accountRegistry(t *testing.T) *es.Registry {
	t.Helper()
	r := es.NewRegistry()
	require.NoError(t, es.Register[AccountOpened](r, "account.Opened"))
	require.NoError(t, es.Register[MoneyDeposited](r, "account.MoneyDeposited"))
	require.NoError(t, es.Register[MoneyWithdrawn](r, "account.MoneyWithdrawn"))
	return r
}

// openAndDeposit saves a new account and n deposits of 1, one save each.
func openAndDeposit[A interface {
	es.Aggregate
	Deposit(int) error
}](t *testing.T, repo *es.Repository[A], id string, n int) A {
	t.Helper()
	a := repo.New(id)
	require.NoError(t, es.Record(a, AccountOpened{AccountID: id, Owner: "Ada"}))
	require.NoError(t, saved(repo.Save(context.Background(), a)))
	for range n {
		require.NoError(t, a.Deposit(1))
		require.NoError(t, saved(repo.Save(context.Background(), a)))
	}
	return a
}

// TestRepositorySnapshotsNeedASnapshotStore: on a store without snapshot
// support, an aggregate that implements es.Snapshotter is loaded and saved
// as any other.
func TestRepositorySnapshotsNeedASnapshotStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := memstore.New(nil)
	repo, err := es.NewRepository(plainStore{mem}, accountRegistry(t),
		func() *SnapshottedAccount { return &SnapshottedAccount{} },
		&es.RepositoryConfig{Category: "account", SnapshotPolicy: snapshot.Every(1)})
	require.NoError(t, err)
	openAndDeposit(t, repo, "a1", 4)
	got, err := repo.Load(ctx, "a1")
	require.NoError(t, err)
	require.Equal(t, 4, got.Balance)
	require.Equal(t, int64(5), got.StoredVersion())
	_, err = mem.ReadSnapshot(ctx, "account-a1")
	require.ErrorIs(t, err, es.ErrNotFound, "no snapshot through a plain store")
}

// TestRepositoryNilPolicyUsesSnapshots: without a policy no snapshot is
// stored, but the ones there are are used.
func TestRepositoryNilPolicyUsesSnapshots(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := memstore.New(nil)
	reg := accountRegistry(t)
	newAcc := func() *SnapshottedAccount { return &SnapshottedAccount{} }
	none, err := es.NewRepository(mem, reg, newAcc, &es.RepositoryConfig{Category: "account"})
	require.NoError(t, err)
	openAndDeposit(t, none, "a1", 3)
	_, err = mem.ReadSnapshot(ctx, "account-a1")
	require.ErrorIs(t, err, es.ErrNotFound)

	every, err := es.NewRepository(mem, reg, newAcc, &es.RepositoryConfig{Category: "account", SnapshotPolicy: snapshot.Every(2)})
	require.NoError(t, err)
	a, _, err := every.Update(ctx, "a1", func(a *SnapshottedAccount) error { return a.Deposit(10) }) // 4 -> 5: crosses 4? no: 4/2=2, 5/2=2
	require.NoError(t, err)
	require.Equal(t, int64(5), a.StoredVersion())
	a, _, err = every.Update(ctx, "a1", func(a *SnapshottedAccount) error { return a.Deposit(10) }) // 5 -> 6: due
	require.NoError(t, err)
	snap, err := mem.ReadSnapshot(ctx, "account-a1")
	require.NoError(t, err)
	require.Equal(t, int64(6), snap.Version)

	// A stored state that gives another balance than the events proves
	// that the repository without a policy loads from the snapshot too.
	a, _, err = none.Update(ctx, "a1", func(a *SnapshottedAccount) error { return a.Deposit(1) }) // 7, no snapshot
	require.NoError(t, err)
	require.Equal(t, 24, a.Balance)
	snap, err = mem.ReadSnapshot(ctx, "account-a1")
	require.NoError(t, err)
	require.Equal(t, int64(6), snap.Version, "no policy: no snapshot")
	state, err := snapshot.Marshal(&Account{Owner: "Ada", Balance: 1000})
	require.NoError(t, err)
	stored, err := mem.SaveSnapshot(ctx, es.Snapshot{StreamID: "account-a1", Version: 7, SchemaVersion: 1, State: storetest.Sealed(7, state)})
	require.NoError(t, err)
	require.True(t, stored)
	got, err := none.Load(ctx, "a1")
	require.NoError(t, err)
	require.Equal(t, 1000, got.Balance)
	require.Equal(t, int64(7), got.StoredVersion())
}

// TestRepositorySchemaVersionOutOfRange: a schema version that does not fit
// in 32 bits fails loads clearly and never costs events at a save.
func TestRepositorySchemaVersionOutOfRange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := memstore.New(nil)
	var reported []*es.SnapshotError
	repo, err := es.NewRepository(mem, accountRegistry(t),
		func() *schemaAccount { return &schemaAccount{schema: math.MaxInt32 + 1} },
		&es.RepositoryConfig{Category: "account", SnapshotPolicy: snapshot.Every(1),
			OnSnapshotError: func(err *es.SnapshotError) { reported = append(reported, err) }})
	require.NoError(t, err)
	a := repo.New("a1")
	require.NoError(t, es.Record(a, AccountOpened{AccountID: "a1", Owner: "Ada"}))
	require.NoError(t, saved(repo.Save(ctx, a)), "the events are saved without the snapshot")
	require.Len(t, reported, 1)
	require.Equal(t, "marshal", reported[0].Op)
	require.ErrorIs(t, reported[0], es.ErrInvalidArgument)
	info, err := mem.StreamInfo(ctx, "account-a1")
	require.NoError(t, err)
	require.Equal(t, int64(1), info.Version)

	_, err = repo.Load(ctx, "a1")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "SnapshotSchemaVersion")
}

// TestRepositorySnapshotErrorUnwraps checks the SnapshotError type.
func TestRepositorySnapshotErrorUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("boom")
	err := &es.SnapshotError{StreamID: "account-a1", Version: 7, Op: "restore", Err: cause}
	require.ErrorIs(t, err, cause)
	require.Equal(t, `es: snapshot restore of stream "account-a1" at version 7: boom`, err.Error())
	require.ErrorIs(t, es.ErrSnapshotBeyondStream, es.ErrInvalidArgument)
}
