package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/snapshot"
)

// forgetTests check the keyring of data subjects ([es.Keyring]) and that
// forgetting a subject erases its personal fields without breaking
// anything that reads its streams: loads, the global log, subscriptions
// and their rebuilds. Every store of the suite must implement
// [es.Keyring].
var forgetTests = []test{
	{"Keyring", testKeyring},
	{"KeyringInvalid", testKeyringInvalid},
	{"KeyringConcurrentCreate", testKeyringConcurrentCreate},
	{"ForgottenStream", testForgottenStream},
}

// keyring returns s as an es.Keyring, failing the test when the store
// does not implement it.
func keyring(t *testing.T, s es.Store) es.Keyring {
	t.Helper()
	k, ok := s.(es.Keyring)
	require.True(t, ok, "%T does not implement es.Keyring", s)
	return k
}

func testKeyring(t *testing.T, s es.Store) {
	k := keyring(t, s)
	ctx := t.Context()
	subject := "person-" + uniq()

	_, err := k.SubjectKey(ctx, subject, false)
	require.ErrorIs(t, err, es.ErrNotFound, "no key yet, none created")
	key, err := k.SubjectKey(ctx, subject, true)
	require.NoError(t, err)
	require.Len(t, key, 32)
	require.NotEqual(t, make([]byte, 32), key)
	again, err := k.SubjectKey(ctx, subject, true)
	require.NoError(t, err)
	require.Equal(t, key, again, "created once")
	again, err = k.SubjectKey(ctx, subject, false)
	require.NoError(t, err)
	require.Equal(t, key, again)
	other, err := k.SubjectKey(ctx, subject+"-2", true)
	require.NoError(t, err)
	require.NotEqual(t, key, other, "a key per subject")

	forgotten, err := k.ForgetSubject(ctx, subject)
	require.NoError(t, err)
	require.True(t, forgotten)
	forgotten, err = k.ForgetSubject(ctx, subject)
	require.NoError(t, err)
	require.False(t, forgotten, "already forgotten")
	for _, create := range []bool{false, true} {
		_, err = k.SubjectKey(ctx, subject, create)
		require.ErrorIs(t, err, es.ErrSubjectForgotten, "create %v", create)
	}
	again, err = k.SubjectKey(ctx, subject+"-2", false)
	require.NoError(t, err)
	require.Equal(t, other, again, "another subject keeps its key")

	// A subject with no key can be forgotten: it never gets one.
	forgotten, err = k.ForgetSubject(ctx, subject+"-3")
	require.NoError(t, err)
	require.True(t, forgotten)
	_, err = k.SubjectKey(ctx, subject+"-3", true)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
}

func testKeyringInvalid(t *testing.T, s es.Store) {
	k := keyring(t, s)
	for _, subject := range []string{"", strings.Repeat("x", es.MaxSubjectLength+1), strings.Repeat("é", 501), "a\x00b", "a\xffb"} {
		for _, create := range []bool{false, true} {
			_, err := k.SubjectKey(t.Context(), subject, create)
			requireInvalid(t, err)
		}
		_, err := k.ForgetSubject(t.Context(), subject)
		requireInvalid(t, err)
	}
	// The longest subject id is fine.
	key, err := k.SubjectKey(t.Context(), strings.Repeat("é", es.MaxSubjectLength/2), true)
	require.NoError(t, err)
	require.Len(t, key, 32)
}

// Concurrent first uses of a subject agree on one key.
func testKeyringConcurrentCreate(t *testing.T, s es.Store) {
	k := keyring(t, s)
	subject := "person-" + uniq()
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = k.SubjectKey(t.Context(), subject, true) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, keys[0], keys[i])
	}
}

// Events and an aggregate with personal data.
type (
	personRegistered struct {
		PersonID string `es:"subject"`
		Name     string `es:"personal"`
		Email    string `es:"personal"`
		City     string
		Erased   []string `es:"erased"`
	}
	personEmailChanged struct {
		Email  string `es:"personal"`
		Erased bool   `es:"erased"`
	}
	personNoted struct{ Note string }
)

type person struct {
	es.AggregateBase
	Name, Email, City string
	Notes             int
	Erased            bool
}

func (p *person) Apply(event any) error {
	switch e := event.(type) {
	case personRegistered:
		p.Name, p.Email, p.City = e.Name, e.Email, e.City
		p.Erased = p.Erased || len(e.Erased) > 0
	case personEmailChanged:
		p.Email = e.Email
		p.Erased = p.Erased || e.Erased
	case personNoted:
		p.Notes++
	default:
		return fmt.Errorf("person: unknown event %T", event)
	}
	return nil
}

func (p *person) SnapshotSchemaVersion() int           { return 1 }
func (p *person) MarshalSnapshot() ([]byte, error)     { return snapshot.Marshal(p) }
func (p *person) UnmarshalSnapshot(state []byte) error { return snapshot.Unmarshal(state, p) }

// decodedLog is a subscription handler that decodes every event with the
// registry and records it with its decoded value (or decoding error).
type decodedLog struct {
	registry *es.Registry
	rec      *recorder
	mu       sync.Mutex
	values   map[uuid.UUID]any
	errs     []error
}

func newDecodedLog(registry *es.Registry) *decodedLog {
	return &decodedLog{registry: registry, rec: newRecorder(), values: map[uuid.UUID]any{}}
}

func (d *decodedLog) handle(ctx context.Context, e es.Event) error {
	v, err := d.registry.DecodeContext(ctx, e, nil)
	d.mu.Lock()
	if err != nil {
		d.errs = append(d.errs, fmt.Errorf("%s@%d: %w", e.StreamID, e.Version, err))
	}
	d.values[e.ID] = v
	d.mu.Unlock()
	return d.rec.handle(ctx, e)
}

func (d *decodedLog) value(id uuid.UUID) any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.values[id]
}

// testForgottenStream: a subject is forgotten while a subscription
// follows the log. Its personal fields read as erased everywhere; its
// events stay where they were (ReadAll returns the same events in the
// same order), its aggregate loads (from a snapshot it can no longer
// decrypt: by replaying), the subscription goes on and a rebuild from the
// start handles every event, with no decoding error anywhere.
func testForgottenStream(t *testing.T, s es.Store) {
	ctx := t.Context()
	sub := subscriber(t, s)
	registry := es.NewRegistry()
	require.NoError(t, es.Register[personRegistered](registry, "storetest.PersonRegistered"))
	require.NoError(t, es.Register[personEmailChanged](registry, "storetest.PersonEmailChanged"))
	require.NoError(t, es.Register[personNoted](registry, "storetest.PersonNoted"))
	require.NoError(t, registry.SetKeyring(keyring(t, s), nil))
	var snapErrs []error
	var snapMu sync.Mutex
	repo, err := es.NewRepository(s, registry, func() *person { return &person{} }, &es.RepositoryConfig{
		SnapshotPolicy: snapshot.Every(2),
		OnSnapshotError: func(err *es.SnapshotError) {
			snapMu.Lock()
			defer snapMu.Unlock()
			snapErrs = append(snapErrs, err)
		},
	})
	require.NoError(t, err)
	save := func(id string, events ...any) (es.AppendResult, error) {
		t.Helper()
		p, err := repo.Load(ctx, id)
		if err != nil {
			require.ErrorIs(t, err, es.ErrNotFound)
			p = repo.New(id)
		}
		for _, e := range events {
			require.NoError(t, es.Record(p, e))
		}
		return repo.Save(ctx, p)
	}
	mustSave := func(id string, events ...any) es.AppendResult {
		t.Helper()
		res, err := save(id, events...)
		require.NoError(t, err)
		return res
	}

	a, b := uniq(), uniq()
	subjectA := repo.StreamID(a) // a's events name no subject: the stream's
	mustSave(a, personRegistered{Name: "Ada", Email: "ada@example.com", City: "London"})
	mustSave(b, personRegistered{PersonID: "person-" + b, Name: "Bob", Email: "bob@example.com", City: "Paris"})
	mustSave(a, personEmailChanged{Email: "ada@example.org"}, personNoted{Note: "vip"})
	res := mustSave(b, personEmailChanged{Email: "bob@example.org"})
	awaitVisible(t, s, res.LastPosition)
	before := readAll(t, s, nil)
	require.Len(t, before, 5)

	name := subscriptionName()
	live := newDecodedLog(registry)
	run := start(t, sub, name, live.handle, fastOpts(es.SubscribeOpts{}))
	live.rec.waitFor(t, len(before))

	forgotten, err := registry.ForgetSubject(ctx, subjectA)
	require.NoError(t, err)
	require.True(t, forgotten)

	// The log is as it was: the same events, positions and bytes.
	after := readAll(t, s, nil)
	require.Equal(t, before, after)

	// a loads, erased (its snapshot at version 3 cannot be decrypted any
	// more: the events are replayed); b is untouched.
	pa, err := repo.Load(ctx, a)
	require.NoError(t, err)
	require.Equal(t, []any{"", "", "London", 1, true, int64(3)}, []any{pa.Name, pa.Email, pa.City, pa.Notes, pa.Erased, pa.StoredVersion()})
	snapMu.Lock()
	require.Len(t, snapErrs, 1)
	require.ErrorIs(t, snapErrs[0], es.ErrSubjectForgotten)
	snapMu.Unlock()
	pb, err := repo.Load(ctx, b)
	require.NoError(t, err)
	require.Equal(t, []any{"Bob", "bob@example.org", false}, []any{pb.Name, pb.Email, pb.Erased})

	// Writing goes on: a's events without personal values, b's with; a's
	// personal values are refused, and nothing of that save is stored.
	_, err = save(a, personNoted{Note: "closed"}, personEmailChanged{Email: "ada@example.net"})
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
	requireVersion(t, s, repo.StreamID(a), 3)
	mustSave(a, personNoted{Note: "closed"})
	res = mustSave(b, personEmailChanged{Email: "bob@example.net"})
	awaitVisible(t, s, res.LastPosition)
	all := readAll(t, s, nil)
	require.Len(t, all, 7)
	require.Equal(t, before, all[:5])

	// The live subscription handled everything, in the log's order.
	got := live.rec.waitFor(t, len(all))
	require.Equal(t, idsOf(all), idsOf(got))
	require.NoError(t, run.stop(t))

	// A rebuild from the start: every event again, in order, decoded
	// without an error; a's personal fields erased, b's intact.
	require.NoError(t, sub.ResetCheckpoint(ctx, name, es.Position{}))
	rebuilt := newDecodedLog(registry)
	run = start(t, sub, name, rebuilt.handle, fastOpts(es.SubscribeOpts{}))
	got = rebuilt.rec.waitFor(t, len(all))
	require.NoError(t, run.stop(t))
	require.Equal(t, idsOf(all), idsOf(got))
	require.Empty(t, rebuilt.errs)
	require.Empty(t, live.errs)
	for _, e := range all {
		v := rebuilt.value(e.ID)
		switch {
		case e.StreamID == subjectA && e.Type == "storetest.PersonRegistered":
			require.Equal(t, personRegistered{City: "London", Erased: []string{"Name", "Email"}}, v)
		case e.StreamID == subjectA && e.Type == "storetest.PersonEmailChanged":
			require.Equal(t, personEmailChanged{Erased: true}, v)
		case e.Type == "storetest.PersonRegistered":
			require.Equal(t, personRegistered{PersonID: "person-" + b, Name: "Bob", Email: "bob@example.com", City: "Paris"}, v)
		case e.Type == "storetest.PersonEmailChanged":
			require.False(t, v.(personEmailChanged).Erased, "%s@%d", e.StreamID, e.Version)
			require.NotEmpty(t, v.(personEmailChanged).Email)
		default:
			require.IsType(t, personNoted{}, v)
		}
	}
	// What the live subscription decoded before the subject was forgotten
	// was in the clear: forgetting reaches only what is read after it.
	require.Equal(t, personRegistered{Name: "Ada", Email: "ada@example.com", City: "London"}, live.value(before[0].ID))
}
