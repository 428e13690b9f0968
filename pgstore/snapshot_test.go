package pgstore_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
	"github.com/pgevent/es/snapshot"
	"github.com/pgevent/es/storetest"
)

// ledgerPosted is the event of the ledger aggregate.
type ledgerPosted struct{ Amount int64 }

// ledgerState is the ledger's snapshot state.
type ledgerState struct {
	Balance int64
	Posts   int
}

// ledger is an aggregate with snapshots.
type ledger struct {
	es.AggregateBase
	ledgerState
}

func (l *ledger) Apply(event any) error {
	e, ok := event.(ledgerPosted)
	if !ok {
		return fmt.Errorf("ledger: unknown event %T", event)
	}
	l.Balance += e.Amount
	l.Posts++
	return nil
}

func (l *ledger) SnapshotSchemaVersion() int       { return 1 }
func (l *ledger) MarshalSnapshot() ([]byte, error) { return snapshot.Marshal(&l.ledgerState) }
func (l *ledger) UnmarshalSnapshot(state []byte) error {
	return snapshot.Unmarshal(state, &l.ledgerState)
}
func (l *ledger) post(amount int64) error { return es.Record(l, ledgerPosted{Amount: amount}) }
func newLedgerRepo(t *testing.T, s *pgstore.Store, policy es.SnapshotPolicy, errs chan<- *es.SnapshotError) *es.Repository[*ledger] {
	t.Helper()
	reg := es.NewRegistry()
	require.NoError(t, es.Register[ledgerPosted](reg, "ledger.Posted"))
	repo, err := es.NewRepository(s, reg, func() *ledger { return &ledger{} }, &es.RepositoryConfig{
		SnapshotPolicy:  policy,
		OnSnapshotError: func(err *es.SnapshotError) { errs <- err },
	})
	require.NoError(t, err)
	return repo
}

// TestSnapshotSaveInTransaction saves with a due snapshot in the caller's transaction:
// events and snapshot commit together, or roll back together.
func TestSnapshotSaveInTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.Store(t)
	repo := newLedgerRepo(t, s, snapshot.Every(2), make(chan *es.SnapshotError, 10))

	l := repo.New("l1")
	require.NoError(t, l.post(10))
	require.NoError(t, l.post(5))
	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, saved(repo.WithStore(s.WithTx(tx)).Save(ctx, l)))
	require.NoError(t, tx.Rollback(ctx))
	_, err = s.ReadSnapshot(ctx, repo.StreamID("l1"))
	require.ErrorIs(t, err, es.ErrNotFound, "rolled back with the events")
	_, err = s.StreamInfo(ctx, repo.StreamID("l1"))
	require.ErrorIs(t, err, es.ErrNotFound)

	l = repo.New("l1")
	require.NoError(t, l.post(10))
	require.NoError(t, l.post(5))
	tx, err = s.Pool().Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, saved(repo.WithStore(s.WithTx(tx)).Save(ctx, l)))
	require.NoError(t, tx.Commit(ctx))
	snap, err := s.ReadSnapshot(ctx, repo.StreamID("l1"))
	require.NoError(t, err)
	require.Equal(t, int64(2), snap.Version)
	require.Equal(t, 1, snap.SchemaVersion)

	got, err := repo.Load(ctx, "l1")
	require.NoError(t, err)
	require.Equal(t, ledgerState{Balance: 15, Posts: 2}, got.ledgerState)
	require.Equal(t, int64(2), got.StoredVersion())
}

// TestSnapshotAppendWithSnapshotTxConflict fails an append with a snapshot
// in the caller's transaction: the transaction stays usable and nothing of
// the append is stored.
func TestSnapshotAppendWithSnapshotTxConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.Store(t)
	_, err := s.Append(ctx, "acct-1", es.NoStream, storetest.Events(2))
	require.NoError(t, err)

	tx, err := s.Pool().Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = s.WithTx(tx).AppendWithSnapshot(ctx, "acct-1", es.Exactly(1), storetest.Events(1), es.NewSnapshot{SchemaVersion: 1, State: []byte("x")})
	require.ErrorIs(t, err, es.ErrWrongVersion)
	res, err := s.WithTx(tx).AppendWithSnapshot(ctx, "acct-1", es.Exactly(2), storetest.Events(1), es.NewSnapshot{SchemaVersion: 1, State: []byte("y")})
	require.NoError(t, err, "the transaction is still usable")
	require.Equal(t, int64(3), res.StreamVersion)
	require.NoError(t, tx.Commit(ctx))
	snap, err := s.ReadSnapshot(ctx, "acct-1")
	require.NoError(t, err)
	require.Equal(t, int64(3), snap.Version)
	require.Equal(t, []byte("y"), snap.State)

	_, err = s.WithTx(nil).AppendWithSnapshot(ctx, "acct-1", es.Any, storetest.Events(1), es.NewSnapshot{})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

// TestSnapshotBeyondStreamError checks the Go error of save_snapshot's
// PE008: es.ErrSnapshotBeyondStream, still unwrapping to the PgError.
func TestSnapshotBeyondStreamError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.Store(t)
	_, err := s.Append(ctx, "acct-1", es.NoStream, storetest.Events(1))
	require.NoError(t, err)
	_, err = s.SaveSnapshot(ctx, es.Snapshot{StreamID: "acct-1", Version: 2, SchemaVersion: 1, State: []byte("x")})
	require.ErrorIs(t, err, es.ErrSnapshotBeyondStream)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	var pg *pgconn.PgError
	require.True(t, errors.As(err, &pg))
	require.Equal(t, "PE008", pg.Code)
	require.Contains(t, err.Error(), "acct-1")
}

// TestSnapshotCorruptedInTable damages a stored snapshot with SQL: the
// repository replays the stream instead and reports it.
func TestSnapshotCorruptedInTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := pgtest.Store(t)
	errs := make(chan *es.SnapshotError, 10)
	repo := newLedgerRepo(t, s, snapshot.Every(3), errs)
	l := repo.New("l1")
	for i := range 7 {
		require.NoError(t, l.post(int64(i+1)))
		require.NoError(t, saved(repo.Save(ctx, l)))
	}
	snap, err := s.ReadSnapshot(ctx, repo.StreamID("l1"))
	require.NoError(t, err)
	require.Equal(t, int64(6), snap.Version)

	// Balance 21 at version 6: change one byte of the state in place.
	tag, err := s.Pool().Exec(ctx, "UPDATE "+pgx.Identifier{s.Schema(), "snapshots"}.Sanitize()+
		" SET state = set_byte(state, length(state) - 1, get_byte(state, length(state) - 1) # 1) WHERE stream_id = $1",
		repo.StreamID("l1"))
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected())

	got, err := repo.Load(ctx, "l1")
	require.NoError(t, err)
	require.Equal(t, ledgerState{Balance: 28, Posts: 7}, got.ledgerState, "full replay")
	require.Equal(t, int64(7), got.StoredVersion())
	select {
	case serr := <-errs:
		require.ErrorIs(t, serr, es.ErrCorruptSnapshot)
		require.Equal(t, int64(6), serr.Version)
	default:
		t.Fatal("the corrupt snapshot was not reported")
	}
}

// TestSnapshotLoadLongTail loads an aggregate whose tail after the snapshot
// spans several pages.
func TestSnapshotLoadLongTail(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, schema := pgtest.NewSchema(t)
	s, err := pgstore.New(pool, &pgstore.Config{Schema: schema, ReadBatchSize: 3})
	require.NoError(t, err)
	repo := newLedgerRepo(t, s, snapshot.Every(5), make(chan *es.SnapshotError, 10))
	l := repo.New("l1")
	require.NoError(t, l.post(1))
	require.NoError(t, saved(repo.Save(ctx, l)))
	require.NoError(t, l.post(1)) // version 2
	for range 12 {
		require.NoError(t, l.post(2))
	}
	require.NoError(t, saved(repo.Save(ctx, l))) // 2..14: crosses 5 and 10, snapshot at 14
	for range 11 {
		require.NoError(t, l.post(3))
	}
	repoNever := newLedgerRepo(t, s, snapshot.Never(), make(chan *es.SnapshotError, 10))
	require.NoError(t, saved(repoNever.Save(ctx, l))) // 15..25, no snapshot
	snap, err := s.ReadSnapshot(ctx, repo.StreamID("l1"))
	require.NoError(t, err)
	require.Equal(t, int64(14), snap.Version)

	n := 0
	for item, err := range s.Load(ctx, repo.StreamID("l1"), 1) {
		require.NoError(t, err)
		if n == 0 {
			require.NotNil(t, item.Snapshot)
		} else {
			require.Equal(t, int64(14+n), item.Event.Version)
		}
		n++
	}
	require.Equal(t, 12, n)
	got, err := repo.Load(ctx, "l1")
	require.NoError(t, err)
	require.Equal(t, ledgerState{Balance: 1 + 1 + 24 + 33, Posts: 25}, got.ledgerState)
}
