package es_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
	"github.com/pgevent/es/snapshot"
)

// Events with personal data. CustomerRegistered names its subject;
// EmailChanged does not (a repository encodes it for its stream).
type (
	customerRegistered struct {
		CustomerID string `es:"subject"`
		Name       string `es:"personal"`
		Email      string `es:"personal"`
		Country    string
		Erased     []string `es:"erased"`
	}
	emailChanged struct {
		Email  string `es:"personal"`
		Erased bool   `es:"erased"`
	}
	// personKnown names its subject by a UUID and holds personal values
	// of other kinds.
	personKnown struct {
		PersonID uuid.UUID `es:"subject"`
		Born     time.Time `es:"personal"`
		Tags     []string  `es:"personal" msgpack:",omitempty"`
		Address  address   `es:"personal"`
		Erased   bool      `es:"erased"`
	}
	address struct {
		Street string
		City   string
	}
)

// personalBundle is a registry with the personal events registered and a
// memstore as its keyring.
type personalBundle struct {
	ctx   context.Context
	reg   *es.Registry
	store *memstore.Store
}

func setupPersonal(t *testing.T, config *es.KeyringConfig) *personalBundle {
	t.Helper()
	b := &personalBundle{ctx: t.Context(), reg: es.NewRegistry(), store: memstore.New(nil)}
	require.NoError(t, es.Register[customerRegistered](b.reg, "customer.Registered"))
	require.NoError(t, es.Register[emailChanged](b.reg, "customer.EmailChanged"))
	require.NoError(t, b.reg.SetKeyring(b.store, config))
	return b
}

// event returns the stored form of an encoded event.
func (b *personalBundle) event(t *testing.T, event any, subject string) es.Event {
	t.Helper()
	name, data, err := b.reg.EncodeContext(b.ctx, event, &es.EncodeOpts{Subject: subject})
	require.NoError(t, err)
	return es.Event{StreamID: "customer-1", Version: 1, Type: name, Data: data}
}

func TestPersonalRoundTrip(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	in := customerRegistered{CustomerID: "customer-1", Name: "Ada Lovelace", Email: "ada@example.com", Country: "UK"}
	e := b.event(t, in, "")

	// Neither personal value is stored in the clear; the subject is.
	require.NotContains(t, string(e.Data), "Ada Lovelace")
	require.NotContains(t, string(e.Data), "ada@example.com")
	require.Contains(t, string(e.Data), "customer-1")
	require.Contains(t, string(e.Data), "UK")
	var generic map[string]msgpack.RawMessage
	require.NoError(t, msgpack.Unmarshal(e.Data, &generic))
	require.NotContains(t, generic, "Erased", "the erased flag is never stored")

	out, err := b.reg.DecodeContext(b.ctx, e, nil)
	require.NoError(t, err)
	require.Equal(t, in, out)

	// Encoding again gives other bytes (a fresh nonce per value) that
	// decode the same.
	again := b.event(t, in, "")
	require.NotEqual(t, e.Data, again.Data)
	out, err = b.reg.Decode(again)
	require.NoError(t, err)
	require.Equal(t, in, out)

	// NewEventContext carries the registered schema version with the
	// encrypted data.
	ne, err := b.reg.NewEventContext(b.ctx, in, nil, nil)
	require.NoError(t, err)
	require.Equal(t, b.reg.SchemaVersion(ne.Type), ne.SchemaVersion)
	require.NotContains(t, string(ne.Data), "Ada Lovelace")
}

func TestPersonalForgotten(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	registered := b.event(t, customerRegistered{CustomerID: "customer-1", Name: "Ada", Email: "ada@example.com", Country: "UK"}, "")
	changed := b.event(t, emailChanged{Email: "ada@example.org"}, "customer-1")
	other := b.event(t, customerRegistered{CustomerID: "customer-2", Name: "Bob", Email: "bob@example.com"}, "")

	forgotten, err := b.reg.ForgetSubject(b.ctx, "customer-1")
	require.NoError(t, err)
	require.True(t, forgotten)
	forgotten, err = b.reg.ForgetSubject(b.ctx, "customer-1")
	require.NoError(t, err)
	require.False(t, forgotten, "already forgotten")

	// The personal fields are erased: zero values, named in the flag; the
	// rest of the event is intact, and decoding is no error.
	out, err := b.reg.DecodeContext(b.ctx, registered, nil)
	require.NoError(t, err)
	require.Equal(t, customerRegistered{CustomerID: "customer-1", Country: "UK", Erased: []string{"Name", "Email"}}, out)
	out, err = b.reg.Decode(changed)
	require.NoError(t, err)
	require.Equal(t, emailChanged{Erased: true}, out)
	// Another subject's are not.
	out, err = b.reg.Decode(other)
	require.NoError(t, err)
	require.Equal(t, customerRegistered{CustomerID: "customer-2", Name: "Bob", Email: "bob@example.com"}, out)

	// Nothing personal is written for a forgotten subject again.
	_, _, err = b.reg.EncodeContext(b.ctx, customerRegistered{CustomerID: "customer-1", Name: "Ada"}, nil)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
	_, err = b.store.SubjectKey(b.ctx, "customer-1", true)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
	// An event of the subject without personal values is fine.
	_, _, err = b.reg.EncodeContext(b.ctx, customerRegistered{CustomerID: "customer-1", Country: "FR"}, nil)
	require.NoError(t, err)
}

// The registry's key cache: forgetting through the registry takes effect
// at once; forgetting elsewhere (another process, SQL) reaches a process
// that cached the key only when its entry expires, and at once without
// the cache.
func TestPersonalKeyCache(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		ttl       time.Duration
		readable  bool // after forgetting through the store, not the registry
		wantCalls int  // keyring calls for four decodes of one subject's events
	}{
		{"cached", time.Hour, true, 0}, // the key the encoding created
		{"no cache", -1, false, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setupPersonal(t, nil)
			counting := &countingKeyring{Keyring: b.store}
			require.NoError(t, b.reg.SetKeyring(counting, &es.KeyringConfig{CacheTTL: c.ttl}))
			e := b.event(t, emailChanged{Email: "ada@example.com"}, "customer-1")
			counting.calls = 0
			for range 4 {
				out, err := b.reg.Decode(e)
				require.NoError(t, err)
				require.Equal(t, emailChanged{Email: "ada@example.com"}, out)
			}
			require.Equal(t, c.wantCalls, counting.calls)

			_, err := b.store.ForgetSubject(b.ctx, "customer-1")
			require.NoError(t, err)
			out, err := b.reg.Decode(e)
			require.NoError(t, err)
			require.Equal(t, c.readable, out.(emailChanged).Email != "", "%+v", out)
		})
	}
}

type countingKeyring struct {
	es.Keyring
	calls int
}

func (k *countingKeyring) SubjectKey(ctx context.Context, subject string, create bool) ([]byte, error) {
	k.calls++
	return k.Keyring.SubjectKey(ctx, subject, create)
}

func TestPersonalErrors(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	sealed := b.event(t, emailChanged{Email: "ada@example.com"}, "customer-1")

	// No subject: the event names none and none is given.
	_, _, err := b.reg.Encode(emailChanged{Email: "ada@example.com"})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	for _, subject := range []string{"a\x00b", "\xff", string(make([]byte, es.MaxSubjectLength+1))} {
		_, _, err = b.reg.EncodeContext(b.ctx, emailChanged{Email: "x"}, &es.EncodeOpts{Subject: subject})
		require.ErrorIs(t, err, es.ErrInvalidArgument, "%q", subject)
	}
	// An empty personal field that is omitted needs no subject.
	_, _, err = b.reg.EncodeContext(b.ctx, personKnown{}, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument, "not registered")

	// Without a keyring: personal fields cannot be written or read, but
	// events stored before the field was personal (in the clear) can.
	bare := es.NewRegistry()
	require.NoError(t, es.Register[emailChanged](bare, "customer.EmailChanged"))
	_, _, err = bare.EncodeContext(b.ctx, emailChanged{Email: "x"}, &es.EncodeOpts{Subject: "customer-1"})
	require.ErrorIs(t, err, es.ErrNoKeyring)
	_, err = bare.Decode(sealed)
	require.ErrorIs(t, err, es.ErrNoKeyring)
	_, err = bare.ForgetSubject(b.ctx, "customer-1")
	require.ErrorIs(t, err, es.ErrNoKeyring)
	plain, err := msgpack.Marshal(map[string]any{"Email": "old@example.com"})
	require.NoError(t, err)
	for _, r := range []*es.Registry{bare, b.reg} {
		out, err := r.Decode(es.Event{Type: "customer.EmailChanged", Data: plain})
		require.NoError(t, err)
		require.Equal(t, emailChanged{Email: "old@example.com"}, out)
	}

	// A damaged value is an error, not an erasure.
	bad := sealed
	bad.Data = bytes.Clone(sealed.Data)
	bad.Data[len(bad.Data)-1] ^= 1
	_, err = b.reg.Decode(bad)
	require.ErrorIs(t, err, es.ErrCorruptPersonalField)
	// So is one moved to another subject: the subject is authenticated.
	moved := sealed
	moved.Data = bytes.Replace(sealed.Data, []byte("customer-1"), []byte("customer-2"), 1)
	_, err = b.store.SubjectKey(b.ctx, "customer-2", true)
	require.NoError(t, err)
	_, err = b.reg.Decode(moved)
	require.ErrorIs(t, err, es.ErrCorruptPersonalField)

	require.ErrorIs(t, b.reg.SetKeyring(nil, nil), es.ErrInvalidArgument)
	require.ErrorIs(t, b.reg.SetKeyring(b.store, &es.KeyringConfig{CacheSize: -1}), es.ErrInvalidArgument)
	_, err = b.reg.ForgetSubject(b.ctx, "")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

func TestPersonalRegister(t *testing.T) {
	t.Parallel()
	type nested struct {
		Email string `es:"personal"`
	}
	type (
		inNested   struct{ Contact nested }
		inSlice    struct{ Contacts []nested }
		unknownTag struct {
			X string `es:"secret"`
		}
		intSubject struct {
			ID int `es:"subject"`
		}
		intErased struct {
			E int `es:"erased"`
		}
		twoSubjects struct {
			A, B string `es:"subject"`
		}
		selfContains struct {
			Email string `es:"personal"`
			Next  *selfContains
		}
	)
	r := es.NewRegistry()
	for name, err := range map[string]error{
		"nested":        es.Register[inNested](r, "inNested"),
		"in a slice":    es.Register[inSlice](r, "inSlice"),
		"unknown tag":   es.Register[unknownTag](r, "unknownTag"),
		"int subject":   es.Register[intSubject](r, "intSubject"),
		"int erased":    es.Register[intErased](r, "intErased"),
		"two subjects":  es.Register[twoSubjects](r, "twoSubjects"),
		"self-contains": es.Register[selfContains](r, "selfContains"),
	} {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
	// A personal field holding a struct (without es tags) is fine.
	require.NoError(t, es.Register[struct {
		Contact []address `es:"personal"`
	}](r, "contact"))
}

func TestPersonalValues(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	require.NoError(t, es.Register[personKnown](b.reg, "person.Known"))
	id := uuid.MustParse("6f1c2f4e-8a0b-4c5d-9e7f-0123456789ab")
	in := personKnown{PersonID: id, Born: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC),
		Tags: []string{"a", "b"}, Address: address{Street: "1 Main St", City: "London"}}
	e := b.event(t, in, "")
	require.NotContains(t, string(e.Data), "London")
	out, err := b.reg.Decode(e)
	require.NoError(t, err)
	require.Equal(t, in, out)

	// An empty omitempty personal field is not written at all.
	in.Tags = nil
	out, err = b.reg.Decode(b.event(t, in, ""))
	require.NoError(t, err)
	require.Equal(t, in, out)

	// A time stored in the clear (a timestamp extension) in a personal
	// field still decodes.
	plain, err := msgpack.Marshal(map[string]any{"Born": in.Born})
	require.NoError(t, err)
	out, err = b.reg.Decode(es.Event{Type: "person.Known", Data: plain})
	require.NoError(t, err)
	require.True(t, in.Born.Equal(out.(personKnown).Born))

	_, err = b.reg.ForgetSubject(b.ctx, id.String())
	require.NoError(t, err)
	out, err = b.reg.Decode(e)
	require.NoError(t, err)
	require.Equal(t, personKnown{PersonID: id, Erased: true}, out)
}

// An upcaster sees an encrypted field as an es.Encrypted value, which it
// may move; the registry decrypts it after the upcast.
func TestPersonalUpcast(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	type oldEmailChanged struct {
		Mail string `es:"personal"`
	}
	old := es.NewRegistry()
	require.NoError(t, es.Register[oldEmailChanged](old, "customer.EmailChanged.v0"))
	require.NoError(t, old.SetKeyring(b.store, nil))
	name, data, err := old.EncodeContext(b.ctx, oldEmailChanged{Mail: "ada@example.com"}, &es.EncodeOpts{Subject: "customer-1"})
	require.NoError(t, err)

	var seen any
	require.NoError(t, b.reg.RegisterUpcaster("customer.EmailChanged.v0", func(m map[string]any) (string, map[string]any, error) {
		seen = m["Mail"]
		return "customer.EmailChanged", map[string]any{"Email": m["Mail"]}, nil
	}))
	e := es.Event{Type: name, Data: data}
	out, err := b.reg.Decode(e)
	require.NoError(t, err)
	require.Equal(t, emailChanged{Email: "ada@example.com"}, out)
	require.IsType(t, es.Encrypted{}, seen)
	require.NotContains(t, string(seen.(es.Encrypted)), "ada@example.com")

	_, err = b.reg.ForgetSubject(b.ctx, "customer-1")
	require.NoError(t, err)
	out, err = b.reg.Decode(e)
	require.NoError(t, err)
	require.Equal(t, emailChanged{Erased: true}, out)
}

// customer is an aggregate with personal data, with snapshots.
type customer struct {
	es.AggregateBase
	Name, Email, Country string
	// Erased: some of its personal data was forgotten.
	Erased bool
}

func (c *customer) Apply(event any) error {
	switch e := event.(type) {
	case customerRegistered:
		c.Name, c.Email, c.Country = e.Name, e.Email, e.Country
		c.Erased = c.Erased || len(e.Erased) > 0
	case emailChanged:
		c.Email = e.Email
		c.Erased = c.Erased || e.Erased
	default:
		return fmt.Errorf("customer: unknown event %T", event)
	}
	return nil
}

func (c *customer) SnapshotSchemaVersion() int           { return 1 }
func (c *customer) MarshalSnapshot() ([]byte, error)     { return snapshot.Marshal(c) }
func (c *customer) UnmarshalSnapshot(state []byte) error { return snapshot.Unmarshal(state, c) }

func TestPersonalRepository(t *testing.T) {
	t.Parallel()
	b := setupPersonal(t, nil)
	var snapErrs []*es.SnapshotError
	repo, err := es.NewRepository(b.store, b.reg, func() *customer { return &customer{} }, &es.RepositoryConfig{
		SnapshotPolicy:  snapshot.Every(1),
		OnSnapshotError: func(err *es.SnapshotError) { snapErrs = append(snapErrs, err) },
	})
	require.NoError(t, err)

	// customer-a registers with its own subject; its email changes (the
	// stream's subject: "customer-a").
	save := func(id string, events ...any) {
		t.Helper()
		c, err := repo.Load(b.ctx, id)
		if err != nil {
			c = repo.New(id)
		}
		for _, e := range events {
			require.NoError(t, es.Record(c, e))
		}
		_, err = repo.Save(b.ctx, c)
		require.NoError(t, err)
	}
	save("a", customerRegistered{CustomerID: "customer-a", Name: "Ada", Email: "ada@example.com", Country: "UK"})
	save("a", emailChanged{Email: "ada@example.org"})
	// customer-b's stream holds an event of another subject, person-b.
	save("b", customerRegistered{CustomerID: "person-b", Name: "Bob", Email: "bob@example.com", Country: "FR"})

	// The snapshots hold no personal value in the clear.
	for _, stream := range []string{"customer-a", "customer-b"} {
		s, err := b.store.ReadSnapshot(b.ctx, stream)
		require.NoError(t, err)
		require.NotContains(t, string(s.State), "@example")
		require.Contains(t, string(s.State), "personal")
	}
	c, err := repo.Load(b.ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []any{"Ada", "ada@example.org", "UK", false}, []any{c.Name, c.Email, c.Country, c.Erased})
	require.Empty(t, snapErrs)

	// Forgetting customer-a: its aggregate still loads (the snapshot
	// cannot be decrypted: the events are replayed), with its personal
	// data erased and the rest intact.
	_, err = b.reg.ForgetSubject(b.ctx, "customer-a")
	require.NoError(t, err)
	c, err = repo.Load(b.ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []any{"", "", "UK", true, int64(2)}, []any{c.Name, c.Email, c.Country, c.Erased, c.StoredVersion()})
	require.Len(t, snapErrs, 1)
	require.ErrorIs(t, snapErrs[0], es.ErrSubjectForgotten)
	// It can go on: events without personal values are saved, and its
	// next snapshot is stored in the clear (it holds nothing personal).
	save("a", customerRegistered{CustomerID: "customer-a", Country: "IE"})
	require.Len(t, snapErrs, 2, "the save's load")
	c, err = repo.Load(b.ctx, "a")
	require.NoError(t, err)
	require.Equal(t, []any{"", "IE", true}, []any{c.Name, c.Country, c.Erased})
	require.Len(t, snapErrs, 2, "loaded from the new snapshot")
	s, err := b.store.ReadSnapshot(b.ctx, "customer-a")
	require.NoError(t, err)
	require.Contains(t, string(s.State), "state", "in the clear")
	// Recording personal data for it again fails: nothing is saved.
	require.NoError(t, es.Record(c, emailChanged{Email: "again@example.com"}))
	_, err = repo.Save(b.ctx, c)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
	info, err := b.store.StreamInfo(b.ctx, "customer-a")
	require.NoError(t, err)
	require.Equal(t, int64(3), info.Version)

	// The snapshot of customer-b is encrypted for person-b, whose data it
	// holds (not for customer-b, whose stream it is): forgetting person-b
	// makes it unreadable.
	c, err = repo.Load(b.ctx, "b")
	require.NoError(t, err)
	require.Equal(t, "bob@example.com", c.Email)
	_, err = b.reg.ForgetSubject(b.ctx, "person-b")
	require.NoError(t, err)
	c, err = repo.Load(b.ctx, "b")
	require.NoError(t, err)
	require.Equal(t, []any{"", "", "FR", true}, []any{c.Name, c.Email, c.Country, c.Erased})
	require.Len(t, snapErrs, 3)
	require.ErrorIs(t, snapErrs[2], es.ErrSubjectForgotten)
}
