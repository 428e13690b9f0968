package pgstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// Events of the tally aggregate used by the repository tests.
type (
	tallyOpened struct{ Name string }
	tallyAdded  struct {
		N  int
		By string
	}
	// tallyUnregistered is never registered: saving it must fail.
	tallyUnregistered struct{}
)

// tally counts, per contributor, what was added to it.
type tally struct {
	es.AggregateBase
	Name  string
	Total int
	By    map[string]int
}

func newTally() *tally { return &tally{} }

func (a *tally) Apply(event any) error {
	switch e := event.(type) {
	case tallyOpened:
		a.Name = e.Name
		a.By = map[string]int{}
	case tallyAdded:
		a.Total += e.N
		a.By[e.By] += e.N
	case tallyUnregistered:
	default:
		return fmt.Errorf("tally: unknown event %T", event)
	}
	return nil
}

func (a *tally) Add(n int, by string) error { return es.Record(a, tallyAdded{N: n, By: by}) }

// repoBundle is what the repository tests on PostgreSQL share.
type repoBundle struct {
	store    *pgstore.Store
	registry *es.Registry
	repo     *es.Repository[*tally]
}

func repoSetup(t *testing.T, config *es.RepositoryConfig) *repoBundle {
	t.Helper()
	b := &repoBundle{store: pgtest.Store(t), registry: es.NewRegistry()}
	require.NoError(t, es.Register[tallyOpened](b.registry, "tally.Opened"))
	require.NoError(t, es.Register[tallyAdded](b.registry, "tally.Added"))
	var err error
	b.repo, err = es.NewRepository(b.store, b.registry, newTally, config)
	require.NoError(t, err)
	return b
}

// create saves a new, opened tally.
func (b *repoBundle) create(t *testing.T, id string) {
	t.Helper()
	a := b.repo.New(id)
	require.NoError(t, es.Record(a, tallyOpened{Name: id}))
	require.NoError(t, saved(b.repo.Save(t.Context(), a)))
}

func (b *repoBundle) streamVersion(t *testing.T, streamID string) int64 {
	t.Helper()
	info, err := b.store.StreamInfo(t.Context(), streamID)
	if errors.Is(err, es.ErrNotFound) {
		return 0
	}
	require.NoError(t, err)
	return info.Version
}

func TestRepositoryFlow(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	md := es.Metadata{CorrelationID: "corr-1", Headers: map[string]string{"user": "ada"}}
	ctx := es.WithMetadata(t.Context(), md)

	_, err := b.repo.Load(ctx, "t1")
	require.ErrorIs(t, err, es.ErrNotFound)

	a := b.repo.New("t1")
	require.NoError(t, saved(b.repo.Save(ctx, a)), "nothing pending")
	require.Zero(t, b.streamVersion(t, "tally-t1"))
	require.NoError(t, es.Record(a, tallyOpened{Name: "first"}))
	require.NoError(t, a.Add(2, "ada"))
	require.NoError(t, a.Add(3, "bob"))
	require.NoError(t, saved(b.repo.Save(ctx, a)))
	require.EqualValues(t, 3, a.StoredVersion())
	require.Empty(t, a.Pending())

	loaded, err := b.repo.Load(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, "t1", loaded.ID())
	require.Equal(t, 5, loaded.Total)
	require.Equal(t, map[string]int{"ada": 2, "bob": 3}, loaded.By)
	require.EqualValues(t, 3, loaded.StoredVersion())
	for e, err := range b.store.ReadStream(ctx, "tally-t1", nil) {
		require.NoError(t, err)
		got, err := e.Meta()
		require.NoError(t, err)
		require.Equal(t, md, got)
	}

	// The stale first copy conflicts and keeps its pending event.
	require.NoError(t, loaded.Add(1, "ada"))
	require.NoError(t, saved(b.repo.Save(ctx, loaded)))
	require.NoError(t, a.Add(10, "eve"))
	_, err = b.repo.Save(ctx, a)
	var conflict *es.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, es.Exactly(3), conflict.Expected)
	require.EqualValues(t, 4, conflict.Actual)
	require.Len(t, a.Pending(), 1)

	// An unregistered event writes nothing.
	require.NoError(t, es.Record(loaded, tallyUnregistered{}))
	require.ErrorIs(t, saved(b.repo.Save(ctx, loaded)), es.ErrInvalidArgument)
	require.EqualValues(t, 4, b.streamVersion(t, "tally-t1"))

	// Update, and a command error that saves nothing.
	updated, _, err := b.repo.Update(ctx, "t1", func(a *tally) error { return a.Add(4, "bob") })
	require.NoError(t, err)
	require.Equal(t, 10, updated.Total)
	require.EqualValues(t, 5, updated.StoredVersion())
	boom := errors.New("boom")
	_, _, err = b.repo.Update(ctx, "t1", func(a *tally) error {
		require.NoError(t, a.Add(1, "x"))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.EqualValues(t, 5, b.streamVersion(t, "tally-t1"))
}

// Goroutines update one aggregate at the same time: conflicts are retried,
// and every command that Update reports as saved is in the stream exactly
// once.
func TestRepositoryUpdateConcurrent(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, &es.RepositoryConfig{MaxRetries: 100})
	ctx := t.Context()
	b.create(t, "hot")

	const workers, updates = 8, 10
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		calls int
		saved = map[string]int{}
		errs  []error
	)
	for w := range workers {
		wg.Go(func() {
			by := fmt.Sprintf("w%d", w)
			for range updates {
				_, _, err := b.repo.Update(ctx, "hot", func(a *tally) error {
					mu.Lock()
					calls++
					mu.Unlock()
					return a.Add(1, by)
				})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					saved[by]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)

	final, err := b.repo.Load(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, workers*updates, final.Total)
	require.Equal(t, saved, final.By)
	require.EqualValues(t, 1+workers*updates, final.StoredVersion())
	t.Logf("%d updates took %d command runs (%d retries after conflicts)", workers*updates, calls, calls-workers*updates)
}

// With few retries, an Update may give up; the ones that succeed are still
// stored exactly once, and the ones that fail are stored not at all.
func TestRepositoryUpdateConcurrentGivesUp(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, &es.RepositoryConfig{MaxRetries: 1})
	ctx := t.Context()
	b.create(t, "hot")

	const workers, updates = 8, 5
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		saved   = map[string]int{}
		gaveUp  int
		unknown []error
	)
	for w := range workers {
		wg.Go(func() {
			by := fmt.Sprintf("w%d", w)
			for range updates {
				_, _, err := b.repo.Update(ctx, "hot", func(a *tally) error { return a.Add(1, by) })
				mu.Lock()
				switch {
				case err == nil:
					saved[by]++
				case errors.Is(err, es.ErrWrongVersion):
					gaveUp++
				default:
					unknown = append(unknown, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, unknown)

	final, err := b.repo.Load(ctx, "hot")
	require.NoError(t, err)
	require.Equal(t, workers*updates-gaveUp, final.Total)
	require.Equal(t, saved, final.By)
	t.Logf("%d of %d updates gave up", gaveUp, workers*updates)
}

func TestRepositorySaveInTransaction(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	pool := b.store.Pool()
	_, err := pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{b.store.Schema(), "tally_names"}.Sanitize()+" (id text PRIMARY KEY)")
	require.NoError(t, err)
	insertName := "INSERT INTO " + pgx.Identifier{b.store.Schema(), "tally_names"}.Sanitize() + " (id) VALUES ($1)"
	countNames := "SELECT count(*) FROM " + pgx.Identifier{b.store.Schema(), "tally_names"}.Sanitize()

	// Committed: the events and the caller's row together.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		a := b.repo.New("t1")
		if err := es.Record(a, tallyOpened{Name: "t1"}); err != nil {
			return err
		}
		if _, err := b.repo.WithStore(b.store.WithTx(tx)).Save(ctx, a); err != nil {
			return err
		}
		require.EqualValues(t, 1, a.StoredVersion(), "committed once the append in tx succeeds")
		_, err := tx.Exec(ctx, insertName, "t1")
		return err
	})
	require.NoError(t, err)
	loaded, err := b.repo.Load(ctx, "t1")
	require.NoError(t, err)
	require.Equal(t, "t1", loaded.Name)

	// Rolled back: nothing.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	a := b.repo.New("t2")
	require.NoError(t, es.Record(a, tallyOpened{Name: "t2"}))
	require.NoError(t, a.Add(1, "ada"))
	require.NoError(t, saved(b.repo.WithStore(b.store.WithTx(tx)).Save(ctx, a)))
	_, err = tx.Exec(ctx, insertName, "t2")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	_, err = b.repo.Load(ctx, "t2")
	require.ErrorIs(t, err, es.ErrNotFound)
	var names int
	require.NoError(t, pool.QueryRow(ctx, countNames).Scan(&names))
	require.Equal(t, 1, names)

	// A conflict inside the transaction keeps the pending events and
	// leaves the transaction usable.
	stale, err := b.repo.Load(ctx, "t1")
	require.NoError(t, err)
	_, _, err = b.repo.Update(ctx, "t1", func(a *tally) error { return a.Add(1, "bob") })
	require.NoError(t, err)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		require.NoError(t, stale.Add(5, "eve"))
		_, err := b.repo.WithStore(b.store.WithTx(tx)).Save(ctx, stale)
		require.ErrorIs(t, err, es.ErrWrongVersion)
		require.Len(t, stale.Pending(), 1)
		_, err = tx.Exec(ctx, insertName, "t3")
		return err
	})
	require.NoError(t, err)
	require.NoError(t, pool.QueryRow(ctx, countNames).Scan(&names))
	require.Equal(t, 2, names)
	require.EqualValues(t, 2, b.streamVersion(t, "tally-t1"))
}

// saved returns the error of a Repository.Save, for require.NoError.
func saved(_ es.AppendResult, err error) error { return err }
