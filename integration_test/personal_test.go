package integration_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/pgstore"
)

// These tests cover crypto-shredding in the database: what SQL shows of
// personal fields, who may read keys and forget subjects, the audit of
// forget_subject, and that a forgotten subject's fields are unreadable on
// a replica and in a backup taken after the forgetting.

// signedUp is an event with personal fields, named by its subject.
type signedUp struct {
	CustomerID string `es:"subject"`
	Name       string `es:"personal"`
	Email      string `es:"personal"`
	Plan       string
	Erased     bool `es:"erased"`
}

// personalRegistry returns a registry of signedUp using store's keys,
// without a cache (each decode asks the store).
func personalRegistry(t *testing.T, store *pgstore.Store) *es.Registry {
	t.Helper()
	r := es.NewRegistry()
	require.NoError(t, es.Register[signedUp](r, "SignedUp"))
	require.NoError(t, r.SetKeyring(store, &es.KeyringConfig{CacheTTL: -1}))
	return r
}

// appendSignedUp appends a signedUp event of customer to the stream
// customer-<n> through store and returns its stored form.
func appendSignedUp(t *testing.T, ctx context.Context, store *pgstore.Store, customer string) es.Event {
	t.Helper()
	e, err := personalRegistry(t, store).NewEvent(signedUp{CustomerID: customer, Name: "Ada " + customer,
		Email: customer + "@example.com", Plan: "gold"}, nil)
	require.NoError(t, err)
	res, err := store.Append(ctx, customer, es.NoStream, []es.NewEvent{e})
	require.NoError(t, err)
	var events []es.Event
	for e, err := range store.ReadStream(ctx, res.StreamID, nil) {
		require.NoError(t, err)
		events = append(events, e)
	}
	require.Len(t, events, 1)
	return events[0]
}

// TestPersonalPrivileges: a writer login encrypts personal fields; a
// reader login sees them in SQL only as markers and can neither read keys
// nor decrypt; only a login granted <schema>_forgetter forgets, and the
// erasure is audited with its name.
func TestPersonalPrivileges(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	b := setupRoles(t)
	appPool := loginPool(t, ctx, createLogin(t, ctx, b.pool, b.schema+"_app", b.writer))
	app, err := pgstore.New(appPool, &pgstore.Config{Schema: b.schema})
	require.NoError(t, err)
	stored := appendSignedUp(t, ctx, app, "customer-1")
	require.NotContains(t, string(stored.Data), "customer-1@example.com")

	readerPool := loginPool(t, ctx, createLogin(t, ctx, b.pool, b.schema+"_ro", b.reader))
	var data, row string
	require.NoError(t, readerPool.QueryRow(ctx, fmt.Sprintf(
		`SELECT v.data::text, v::text FROM %s.events_view AS v WHERE v.stream_id = 'customer-1'`, b.schema)).Scan(&data, &row))
	require.JSONEq(t, `{"CustomerID": "customer-1", "Plan": "gold",
		"Name": {"personal": "encrypted", "subject": "customer-1"},
		"Email": {"personal": "encrypted", "subject": "customer-1"}}`, data)
	require.NotContains(t, row, "@example.com")
	var email string
	require.NoError(t, readerPool.QueryRow(ctx, fmt.Sprintf(
		`SELECT %[1]s.msgpack_to_jsonb(data)->'Email'->>'personal' FROM %[1]s.events WHERE stream_id = 'customer-1'`, b.schema)).Scan(&email))
	require.Equal(t, "encrypted", email)

	// The reader cannot get at the keys: not through the table, not
	// through the function, not through the Go store (decoding fails: it
	// does not pass the field off as erased).
	for _, q := range []string{`SELECT key FROM %s.subject_keys`, `SELECT %s.subject_key('customer-1', false)`} {
		_, err := readerPool.Exec(ctx, fmt.Sprintf(q, b.schema))
		requirePgError(t, err, "42501", q)
	}
	reader, err := pgstore.New(readerPool, &pgstore.Config{Schema: b.schema})
	require.NoError(t, err)
	_, err = personalRegistry(t, reader).Decode(stored)
	requirePgError(t, err, "42501")
	got, err := personalRegistry(t, app).Decode(stored)
	require.NoError(t, err)
	require.Equal(t, "customer-1@example.com", got.(signedUp).Email)

	// The writer may not forget; a login granted the forgetter role may.
	_, err = app.ForgetSubject(ctx, "customer-1")
	requirePgError(t, err, "42501")
	forgetterLogin := b.schema + "_dpo"
	dpoPool := loginPool(t, ctx, createLogin(t, ctx, b.pool, forgetterLogin, b.forgetter))
	dpo, err := pgstore.New(dpoPool, &pgstore.Config{Schema: b.schema})
	require.NoError(t, err)
	before := time.Now()
	forgotten, err := dpo.ForgetSubject(ctx, "customer-1")
	require.NoError(t, err)
	require.True(t, forgotten)
	forgotten, err = dpo.ForgetSubject(ctx, "customer-1")
	require.NoError(t, err)
	require.False(t, forgotten)
	// The forgetter can do nothing else: no reading, no keys.
	_, err = dpoPool.Exec(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.read_stream('customer-1')`, b.schema))
	requirePgError(t, err, "42501")

	// The audit: who (the login), when, whether there was a key; readable
	// by the reader.
	var who string
	var when time.Time
	var hadKey bool
	var erasures int
	require.NoError(t, readerPool.QueryRow(ctx, fmt.Sprintf(
		`SELECT forgotten_by, forgotten_at, had_key, (SELECT count(*) FROM %[1]s.subject_erasures)
		   FROM %[1]s.subject_erasures WHERE subject_id = 'customer-1'`, b.schema)).Scan(&who, &when, &hadKey, &erasures))
	require.Equal(t, forgetterLogin, who)
	require.True(t, hadKey)
	require.Equal(t, 1, erasures, "forgetting again is not audited again")
	require.WithinDuration(t, before, when, time.Minute)

	// The key is gone: the app decodes the event, erased; SQL shows the
	// same marker; the key's row stays, keyless, so the subject never
	// gets a key again (PE012: es.ErrSubjectForgotten).
	got, err = personalRegistry(t, app).Decode(stored)
	require.NoError(t, err)
	require.Equal(t, signedUp{CustomerID: "customer-1", Plan: "gold", Erased: true}, got)
	var keyless bool
	require.NoError(t, b.pool.QueryRow(ctx, fmt.Sprintf(
		`SELECT key IS NULL AND forgotten_at IS NOT NULL FROM %s.subject_keys WHERE subject_id = 'customer-1'`, b.schema)).Scan(&keyless))
	require.True(t, keyless)
	_, err = app.SubjectKey(ctx, "customer-1", true)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
	requirePgError(t, err, "PE012")
	_, err = personalRegistry(t, app).NewEvent(signedUp{CustomerID: "customer-1", Name: "Ada"}, nil)
	require.ErrorIs(t, err, es.ErrSubjectForgotten)
}

// TestForgetEverywhere: a subject forgotten on the primary is forgotten
// on its streaming replica and in a backup (pg_dump) taken afterwards;
// a backup taken before still holds the key (backups must expire).
func TestForgetEverywhere(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
	primary := ownCluster(t, nil)
	conn := connect(t, ctx, primary.ConnString("postgres"))
	_, err := pgstore.Migrate(ctx, conn, nil)
	require.NoError(t, err)
	replica, err := primary.StartReplica(ctx, nil)
	require.NoError(t, err)
	removeAtCleanup(t, replica)
	_, pstore := openStore(t, ctx, primary.ConnString("postgres"), nil)
	_, rstore := openStore(t, ctx, replica.ConnString("postgres"), nil)

	forgottenEvent := appendSignedUp(t, ctx, pstore, "customer-1")
	keptEvent := appendSignedUp(t, ctx, pstore, "customer-2")
	var key []byte
	require.NoError(t, conn.QueryRow(ctx, `SELECT key FROM es.subject_keys WHERE subject_id = 'customer-1'`).Scan(&key))
	require.Len(t, key, 32)

	decode := func(store *pgstore.Store, e es.Event) signedUp {
		t.Helper()
		v, err := personalRegistry(t, store).Decode(e)
		require.NoError(t, err)
		return v.(signedUp)
	}
	require.NoError(t, replica.WaitReplayed(ctx))
	require.Equal(t, "customer-1@example.com", decode(rstore, forgottenEvent).Email, "the replica decrypts before")

	dir := t.TempDir()
	before := filepath.Join(dir, "before.dump")
	require.NoError(t, primary.Dump(ctx, "postgres", before))
	forgotten, err := pstore.ForgetSubject(ctx, "customer-1")
	require.NoError(t, err)
	require.True(t, forgotten)
	_, err = conn.Exec(ctx, "VACUUM es.subject_keys")
	require.NoError(t, err)
	after := filepath.Join(dir, "after.dump")
	require.NoError(t, primary.Dump(ctx, "postgres", after))

	// The replica applied the deletion.
	require.NoError(t, replica.WaitReplayed(ctx))
	require.Equal(t, signedUp{CustomerID: "customer-1", Plan: "gold", Erased: true}, decode(rstore, forgottenEvent))
	require.Equal(t, "customer-2@example.com", decode(rstore, keptEvent).Email)

	// The backup taken after holds no key for the subject; restored, its
	// events read erased. The one taken before holds it: restored, the
	// subject is readable again (until that backup is gone).
	for _, c := range []struct {
		file     string
		hasKey   bool
		database string
	}{{after, false, "restored_after"}, {before, true, "restored_before"}} {
		require.NoError(t, primary.Restore(ctx, c.file, c.database))
		restoredConn := connect(t, ctx, primary.ConnString(c.database))
		var restoredKey []byte
		require.NoError(t, restoredConn.QueryRow(ctx, `SELECT key FROM es.subject_keys WHERE subject_id = 'customer-1'`).Scan(&restoredKey))
		if c.hasKey {
			require.Equal(t, key, restoredKey, c.database)
		} else {
			require.Nil(t, restoredKey, c.database)
		}
		_, restored := openStore(t, ctx, primary.ConnString(c.database), nil)
		got := decode(restored, forgottenEvent)
		require.Equal(t, !c.hasKey, got.Erased, c.database)
		require.Equal(t, c.hasKey, got.Email == "customer-1@example.com", c.database)
		require.Equal(t, "customer-2@example.com", decode(restored, keptEvent).Email, c.database)
	}
}
