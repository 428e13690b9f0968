package es_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
)

// Events of the cart aggregate used by the repository tests.
type (
	cartOpened    struct{ Owner string }
	cartItemAdded struct {
		SKU string
		Qty int
	}
	cartCheckedOut struct{}
	// cartNote is never registered: saving it must fail.
	cartNote struct{ Text string }
	// cartBroken is registered but refused by Apply.
	cartBroken struct{}
)

// cart is the aggregate of the repository tests.
type cart struct {
	es.AggregateBase
	Owner      string
	Items      map[string]int
	CheckedOut bool
	Applied    int // Apply calls that succeeded
}

func newCart() *cart { return &cart{} }

func (c *cart) Apply(event any) error {
	switch e := event.(type) {
	case cartOpened:
		c.Owner = e.Owner
		c.Items = map[string]int{}
	case cartItemAdded:
		c.Items[e.SKU] += e.Qty
	case cartCheckedOut:
		c.CheckedOut = true
	case cartNote:
	case cartBroken:
		return errors.New("cart: broken event")
	default:
		return fmt.Errorf("cart: unknown event %T", event)
	}
	c.Applied++
	return nil
}

// Open is a command creating the cart.
func (c *cart) Open(owner string) error { return es.Record(c, cartOpened{Owner: owner}) }

// Add is a command adding an item.
func (c *cart) Add(sku string, qty int) error {
	if c.CheckedOut {
		return errCartCheckedOut
	}
	return es.Record(c, cartItemAdded{SKU: sku, Qty: qty})
}

var errCartCheckedOut = errors.New("cart: checked out")

func cartRegistry(t testing.TB) *es.Registry {
	t.Helper()
	r := es.NewRegistry()
	require.NoError(t, es.Register[cartOpened](r, "cart.Opened"))
	require.NoError(t, es.Register[cartItemAdded](r, "cart.ItemAdded"))
	require.NoError(t, es.Register[cartCheckedOut](r, "cart.CheckedOut"))
	require.NoError(t, es.Register[cartBroken](r, "cart.Broken"))
	return r
}

// repoBundle is what the repository tests share.
type repoBundle struct {
	store    *memstore.Store
	registry *es.Registry
	repo     *es.Repository[*cart]
}

func repoSetup(t *testing.T, config *es.RepositoryConfig) *repoBundle {
	t.Helper()
	b := &repoBundle{store: memstore.New(nil), registry: cartRegistry(t)}
	var err error
	b.repo, err = es.NewRepository(b.store, b.registry, newCart, config)
	require.NoError(t, err)
	return b
}

// create saves a new cart with id, opened by owner with one item.
func (b *repoBundle) create(t *testing.T, id string) *cart {
	t.Helper()
	c := b.repo.New(id)
	require.NoError(t, c.Open("ada"))
	require.NoError(t, c.Add("apple", 1))
	require.NoError(t, saved(b.repo.Save(t.Context(), c)))
	return c
}

// streamVersion returns the stream's version, 0 when it does not exist.
func (b *repoBundle) streamVersion(t *testing.T, streamID string) int64 {
	t.Helper()
	info, err := b.store.StreamInfo(t.Context(), streamID)
	if errors.Is(err, es.ErrNotFound) {
		return 0
	}
	require.NoError(t, err)
	return info.Version
}

func (b *repoBundle) readStream(t *testing.T, streamID string) []es.Event {
	t.Helper()
	var events []es.Event
	for e, err := range b.store.ReadStream(t.Context(), streamID, nil) {
		require.NoError(t, err)
		events = append(events, e)
	}
	return events
}

func TestRepositoryRoundTrip(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()

	c := b.repo.New("c1")
	require.Equal(t, "c1", c.ID())
	require.Zero(t, b.streamVersion(t, "cart-c1"), "New stores nothing")
	require.NoError(t, c.Open("ada"))
	require.NoError(t, c.Add("apple", 2))
	require.NoError(t, c.Add("pear", 1))
	require.NoError(t, saved(b.repo.Save(ctx, c)))
	require.Empty(t, c.Pending())
	require.EqualValues(t, 3, c.StoredVersion())
	require.EqualValues(t, 3, c.Version())

	events := b.readStream(t, "cart-c1")
	require.Len(t, events, 3)
	require.Equal(t, []string{"cart.Opened", "cart.ItemAdded", "cart.ItemAdded"},
		[]string{events[0].Type, events[1].Type, events[2].Type})
	for _, e := range events {
		require.Nil(t, e.Metadata, "no metadata on ctx: none stored")
	}

	got, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, "c1", got.ID())
	require.Equal(t, "ada", got.Owner)
	require.Equal(t, map[string]int{"apple": 2, "pear": 1}, got.Items)
	require.EqualValues(t, 3, got.StoredVersion())
	require.Empty(t, got.Pending())

	// A second save appends at the loaded version.
	require.NoError(t, got.Add("apple", 5))
	require.NoError(t, saved(b.repo.Save(ctx, got)))
	require.EqualValues(t, 4, got.StoredVersion())
	// The first instance is now stale: its next save conflicts.
	require.NoError(t, c.Add("fig", 1))
	require.ErrorIs(t, saved(b.repo.Save(ctx, c)), es.ErrWrongVersion)

	again, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"apple": 7, "pear": 1}, again.Items)
	require.EqualValues(t, 4, again.StoredVersion())
}

func TestRepositoryLoadNotFound(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	_, err := b.repo.Load(t.Context(), "absent")
	require.ErrorIs(t, err, es.ErrNotFound)
	require.Contains(t, err.Error(), `"cart-absent"`)

	_, _, err = b.repo.Update(t.Context(), "absent", func(c *cart) error { return c.Add("x", 1) })
	require.ErrorIs(t, err, es.ErrNotFound)
	require.Zero(t, b.streamVersion(t, "cart-absent"))
}

func TestRepositorySaveNothingPendingIsNoOp(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()

	require.NoError(t, saved(b.repo.Save(ctx, b.repo.New("fresh"))))
	require.Zero(t, b.streamVersion(t, "cart-fresh"))

	b.create(t, "c1")
	c, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.NoError(t, saved(b.repo.Save(ctx, c)))
	require.EqualValues(t, 2, b.streamVersion(t, "cart-c1"))
	require.EqualValues(t, 2, c.StoredVersion())
}

func TestRepositorySaveConflictKeepsPending(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	b.create(t, "c1")

	first, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	second, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.NoError(t, first.Add("pear", 1))
	require.NoError(t, saved(b.repo.Save(ctx, first)))

	require.NoError(t, second.Add("fig", 1))
	require.NoError(t, second.Add("fig", 2))
	_, err = b.repo.Save(ctx, second)
	require.ErrorIs(t, err, es.ErrWrongVersion)
	var conflict *es.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, "cart-c1", conflict.StreamID)
	require.Equal(t, es.Exactly(2), conflict.Expected)
	require.EqualValues(t, 3, conflict.Actual)
	require.Equal(t, []any{cartItemAdded{"fig", 1}, cartItemAdded{"fig", 2}}, second.Pending(), "pending kept")
	require.EqualValues(t, 2, second.StoredVersion())
	require.EqualValues(t, 3, b.streamVersion(t, "cart-c1"))

	// A new aggregate over an existing stream conflicts too (NoStream).
	dup := b.repo.New("c1")
	require.NoError(t, dup.Open("eve"))
	_, err = b.repo.Save(ctx, dup)
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, es.NoStream, conflict.Expected)
	require.Len(t, dup.Pending(), 1)
}

func TestRepositoryUpdateRetriesAfterConflict(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	b.create(t, "c1")

	calls := 0
	got, _, err := b.repo.Update(ctx, "c1", func(c *cart) error {
		calls++
		if calls == 1 {
			// A concurrent writer gets in between this load and its save.
			e, err := b.registry.NewEvent(cartItemAdded{SKU: "pear", Qty: 3}, nil)
			require.NoError(t, err)
			_, err = b.store.Append(ctx, "cart-c1", es.Exactly(2), []es.NewEvent{e})
			require.NoError(t, err)
		}
		return c.Add("apple", 10)
	})
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, map[string]int{"apple": 11, "pear": 3}, got.Items)
	require.EqualValues(t, 4, got.StoredVersion())
	require.Empty(t, got.Pending())

	loaded, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, got.Items, loaded.Items)
	require.EqualValues(t, 4, loaded.StoredVersion())
}

func TestRepositoryUpdateGivesUp(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, &es.RepositoryConfig{MaxRetries: 2})
	ctx := t.Context()
	b.create(t, "c1")

	calls := 0
	got, _, err := b.repo.Update(ctx, "c1", func(c *cart) error {
		calls++
		e, err := b.registry.NewEvent(cartItemAdded{SKU: "pear", Qty: 1}, nil)
		require.NoError(t, err)
		_, err = b.store.Append(ctx, "cart-c1", es.Any, []es.NewEvent{e})
		require.NoError(t, err)
		return c.Add("apple", 10)
	})
	require.Nil(t, got)
	require.ErrorIs(t, err, es.ErrWrongVersion)
	var conflict *es.VersionConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, 3, calls, "one attempt and MaxRetries retries")
	require.EqualValues(t, 2+3, b.streamVersion(t, "cart-c1"), "only the interfering events are stored")

	loaded, err := b.repo.Load(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, map[string]int{"apple": 1, "pear": 3}, loaded.Items)
}

func TestRepositoryUpdateCommandError(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	b.create(t, "c1")

	boom := errors.New("boom")
	got, _, err := b.repo.Update(ctx, "c1", func(c *cart) error {
		require.NoError(t, c.Add("pear", 1)) // recorded, then the command fails
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Nil(t, got)
	require.EqualValues(t, 2, b.streamVersion(t, "cart-c1"), "nothing saved")

	_, _, err = b.repo.Update(ctx, "c1", func(c *cart) error {
		if err := es.Record(c, cartCheckedOut{}); err != nil {
			return err
		}
		return c.Add("fig", 1)
	})
	require.ErrorIs(t, err, errCartCheckedOut)
	require.EqualValues(t, 2, b.streamVersion(t, "cart-c1"), "nothing saved")

	// A command that records nothing saves nothing and succeeds.
	got, _, err = b.repo.Update(ctx, "c1", func(*cart) error { return nil })
	require.NoError(t, err)
	require.EqualValues(t, 2, got.StoredVersion())
}

func TestRepositorySaveMetadataFromContext(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	md := es.Metadata{CorrelationID: "corr-1", CausationID: "cause-1", Headers: map[string]string{"user": "ada"}}
	ctx := es.WithMetadata(t.Context(), md)

	c := b.repo.New("c1")
	require.NoError(t, c.Open("ada"))
	require.NoError(t, c.Add("apple", 1))
	require.NoError(t, c.Add("pear", 1))
	require.NoError(t, saved(b.repo.Save(ctx, c)))

	_, _, err := b.repo.Update(es.WithMetadata(t.Context(), es.Metadata{CorrelationID: "corr-2"}), "c1",
		func(c *cart) error { return c.Add("fig", 1) })
	require.NoError(t, err)

	events := b.readStream(t, "cart-c1")
	require.Len(t, events, 4)
	for _, e := range events[:3] {
		got, err := e.Meta()
		require.NoError(t, err)
		require.Equal(t, md, got, "version %d", e.Version)
	}
	got, err := events[3].Meta()
	require.NoError(t, err)
	require.Equal(t, es.Metadata{CorrelationID: "corr-2"}, got)
}

func TestRepositorySaveUnregisteredEvent(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()

	c := b.repo.New("c1")
	require.NoError(t, c.Open("ada"))
	require.NoError(t, es.Record(c, cartNote{Text: "hi"}))
	_, err := b.repo.Save(ctx, c)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.Contains(t, err.Error(), "cartNote")
	require.Contains(t, err.Error(), `"cart-c1"`)
	require.Zero(t, b.streamVersion(t, "cart-c1"), "nothing written")
	require.Len(t, c.Pending(), 2, "pending kept")
	require.Zero(t, c.StoredVersion())
}

func TestRepositoryInvalidArguments(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()

	require.ErrorIs(t, saved(b.repo.Save(ctx, nil)), es.ErrInvalidArgument)
	noID := b.repo.New("")
	require.NoError(t, noID.Open("ada"))
	require.ErrorIs(t, saved(b.repo.Save(ctx, noID)), es.ErrInvalidArgument)
	require.Len(t, noID.Pending(), 1)

	_, err := b.repo.Load(ctx, "")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, _, err = b.repo.Update(ctx, "", func(*cart) error { return nil })
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	b.create(t, "c1")
	_, _, err = b.repo.Update(ctx, "c1", nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	_, err = es.NewRepository[*cart](nil, b.registry, newCart, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = es.NewRepository(b.store, nil, newCart, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = es.NewRepository[*cart](b.store, b.registry, nil, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = es.NewRepository(b.store, b.registry, newCart, &es.RepositoryConfig{Category: "shopping-cart"})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	_, err = es.NewRepository(b.store, b.registry, newCart, &es.RepositoryConfig{MaxRetries: -1})
	require.ErrorIs(t, err, es.ErrInvalidArgument)

	// A newAggregate that returns nil fails the load rather than panicking.
	nilRepo, err := es.NewRepository(b.store, b.registry, func() *cart { return nil }, nil)
	require.NoError(t, err)
	_, err = nilRepo.Load(ctx, "c1")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

// WithStore gives a repository with the same configuration on another
// store: loads and saves go there, and snapshots follow that store.
func TestRepositoryWithStore(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	other := memstore.New(nil)
	moved := b.repo.WithStore(other)
	require.Equal(t, b.repo.StreamID("c1"), moved.StreamID("c1"))
	c := moved.New("c1")
	require.NoError(t, c.Open("ada"))
	require.NoError(t, saved(moved.Save(ctx, c)))
	require.Zero(t, b.streamVersion(t, "cart-c1"), "saved to the other store only")
	info, err := other.StreamInfo(ctx, "cart-c1")
	require.NoError(t, err)
	require.EqualValues(t, 1, info.Version)
	loaded, err := moved.Load(ctx, "c1")
	require.NoError(t, err)
	require.EqualValues(t, 1, loaded.StoredVersion())
	_, err = b.repo.Load(ctx, "c1")
	require.ErrorIs(t, err, es.ErrNotFound)
}

func TestRepositoryCategory(t *testing.T) {
	t.Parallel()
	store, registry := memstore.New(nil), cartRegistry(t)

	byType, err := es.NewRepository(store, registry, newCart, nil)
	require.NoError(t, err)
	require.Equal(t, "cart-42", byType.StreamID("42"))

	named, err := es.NewRepository(store, registry, newCart, &es.RepositoryConfig{Category: "basket"})
	require.NoError(t, err)
	require.Equal(t, "basket-42", named.StreamID("42"))

	// A is an interface type: the category comes from the dynamic type.
	dynamic, err := es.NewRepository(store, registry, func() es.Aggregate { return &cart{} }, nil)
	require.NoError(t, err)
	require.Equal(t, "cart-42", dynamic.StreamID("42"))

	// Mixed-case type names are lower-cased.
	acc, err := es.NewRepository(store, registry, func() *Account { return &Account{} }, nil)
	require.NoError(t, err)
	require.Equal(t, "account-7", acc.StreamID("7"))

	// The category is what the stream's category is.
	c := named.New("42")
	require.NoError(t, c.Open("ada"))
	require.NoError(t, saved(named.Save(t.Context(), c)))
	for e, err := range store.ReadStream(t.Context(), "basket-42", nil) {
		require.NoError(t, err)
		require.Equal(t, "basket", e.Category())
	}
}

// streamingStore records, for each event ReadStream yields, how many
// events the aggregate being loaded had applied at that moment.
type streamingStore struct {
	es.Store
	current *cart
	seen    []int
}

func (s *streamingStore) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	return func(yield func(es.Event, error) bool) {
		for e, err := range s.Store.ReadStream(ctx, streamID, opts) {
			s.seen = append(s.seen, s.current.Applied)
			if !yield(e, err) {
				return
			}
		}
	}
}

func TestRepositoryLoadStreams(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	const n = 10_000

	c := b.repo.New("big")
	require.NoError(t, c.Open("ada"))
	for i := range n - 1 {
		require.NoError(t, c.Add(fmt.Sprintf("sku-%d", i%10), 1))
	}
	require.NoError(t, saved(b.repo.Save(ctx, c)))

	s := &streamingStore{Store: b.store}
	repo, err := es.NewRepository(s, b.registry, func() *cart {
		s.current = &cart{}
		return s.current
	}, nil)
	require.NoError(t, err)
	got, err := repo.Load(ctx, "big")
	require.NoError(t, err)
	require.EqualValues(t, n, got.StoredVersion())
	require.Equal(t, n, got.Applied)
	require.Len(t, got.Items, 10)
	total := 0
	for _, qty := range got.Items {
		total += qty
	}
	require.Equal(t, n-1, total)
	// Each event was applied before the next was read.
	require.Len(t, s.seen, n)
	for i, applied := range s.seen {
		if applied != i {
			require.Equal(t, i, applied, "when event %d was read", i+1)
		}
	}
}

func TestRepositoryLoadErrors(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	ctx := t.Context()
	b.create(t, "c1")

	// An event type the registry does not know.
	_, err := b.store.Append(ctx, "cart-c1", es.Exactly(2), []es.NewEvent{{Type: "cart.Unknown"}})
	require.NoError(t, err)
	_, err = b.repo.Load(ctx, "c1")
	require.ErrorIs(t, err, es.ErrUnknownEventType)
	require.Contains(t, err.Error(), `"cart-c1"`)

	// An event Apply refuses.
	b.create(t, "c2")
	broken, err := b.registry.NewEvent(cartBroken{}, nil)
	require.NoError(t, err)
	_, err = b.store.Append(ctx, "cart-c2", es.Exactly(2), []es.NewEvent{broken})
	require.NoError(t, err)
	_, err = b.repo.Load(ctx, "c2")
	require.ErrorContains(t, err, "broken event")
	require.ErrorContains(t, err, `"cart-c2"`)
	require.ErrorContains(t, err, "version 3")

	// A cancelled context.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.repo.Load(cancelled, "c1")
	require.ErrorIs(t, err, context.Canceled)
}

// gappyStore is a store whose ReadStream skips each stream's event at
// version skip.
type gappyStore struct {
	*memstore.Store
	skip int64
}

func (s gappyStore) ReadStream(ctx context.Context, streamID string, opts *es.ReadStreamOpts) iter.Seq2[es.Event, error] {
	return func(yield func(es.Event, error) bool) {
		for e, err := range s.Store.ReadStream(ctx, streamID, opts) {
			if err == nil && e.Version == s.skip {
				continue
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// TestRepositoryLoadRefusesGaps checks that Load refuses a stream whose
// versions do not run 1, 2, 3... rather than build an aggregate from it:
// a stream that starts late is truncated (its first events were removed),
// a gap after the first event is a store's fault.
func TestRepositoryLoadRefusesGaps(t *testing.T) {
	t.Parallel()
	b := repoSetup(t, nil)
	c := b.create(t, "c1")
	require.NoError(t, c.Add("pear", 2))
	require.NoError(t, saved(b.repo.Save(t.Context(), c)))

	repo, err := es.NewRepository(gappyStore{b.store, 1}, b.registry, newCart, nil)
	require.NoError(t, err)
	_, err = repo.Load(t.Context(), "c1")
	require.ErrorIs(t, err, es.ErrStreamTruncated)
	require.ErrorContains(t, err, "before version 2 were removed")
	require.ErrorContains(t, err, `"cart-c1"`)

	repo, err = es.NewRepository(gappyStore{b.store, 2}, b.registry, newCart, nil)
	require.NoError(t, err)
	_, err = repo.Load(t.Context(), "c1")
	require.NotErrorIs(t, err, es.ErrStreamTruncated)
	require.ErrorContains(t, err, "store returned version 3 where 2 was expected")
	require.ErrorContains(t, err, `"cart-c1"`)
}

// saved returns the error of a Repository.Save, for require.NoError.
func saved(_ es.AppendResult, err error) error { return err }
