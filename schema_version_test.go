package es_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// The seed design's event: UserCreated v1 has "email", v2 renamed it to
// "contact_email", v3 added "verified" (false for older events). All under
// one name.
type userCreatedV1 struct {
	Email string `msgpack:"email"`
}

type userCreatedV2 struct {
	ContactEmail string `msgpack:"contact_email"`
}

type userCreated struct {
	ContactEmail string `msgpack:"contact_email"`
	Verified     bool   `msgpack:"verified"`
}

// userUpcasters registers UserCreated's upcasters: 1 -> 2 and 2 -> 3, each
// keeping the name.
func userUpcasters(t *testing.T, r *es.Registry) {
	t.Helper()
	require.NoError(t, r.RegisterUpcaster("UserCreated", func(m map[string]any) (string, map[string]any, error) {
		m["contact_email"] = m["email"]
		delete(m, "email")
		return "UserCreated", m, nil
	}))
	require.NoError(t, r.RegisterUpcasterWith("UserCreated", func(m map[string]any) (string, map[string]any, error) {
		m["verified"] = false
		return "UserCreated", m, nil
	}, &es.UpcasterOpts{FromVersion: 2}))
}

// encodeAt encodes event with a registry where its type is registered as
// name at version: what the code of that time stored.
func encodeAt[T any](t *testing.T, name string, version int, event T) es.Event {
	t.Helper()
	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[T](r, name, &es.RegisterOpts{SchemaVersion: version}))
	ne, err := r.NewEvent(event, nil)
	require.NoError(t, err)
	require.Equal(t, version, ne.SchemaVersion, "NewEvent carries the registered version")
	return es.Event{StreamID: "user-1", Version: 1, Type: ne.Type, SchemaVersion: ne.SchemaVersion, Data: ne.Data}
}

func TestSchemaVersionsUnderOneName(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	userUpcasters(t, r) // before the type: the order of registration does not matter
	require.NoError(t, es.RegisterWith[userCreated](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 3}))
	require.Equal(t, 3, r.SchemaVersion("UserCreated"))
	require.Zero(t, r.SchemaVersion("Missing"))

	v1 := encodeAt(t, "UserCreated", 1, userCreatedV1{Email: "a@example.com"})
	v2 := encodeAt(t, "UserCreated", 2, userCreatedV2{ContactEmail: "b@example.com"})
	v3 := encodeAt(t, "UserCreated", 3, userCreated{ContactEmail: "c@example.com", Verified: true})
	unversioned := v1
	unversioned.SchemaVersion = 0 // an Event built by hand: read as version 1

	for _, c := range []struct {
		e    es.Event
		want userCreated
	}{
		{v1, userCreated{ContactEmail: "a@example.com"}},
		{unversioned, userCreated{ContactEmail: "a@example.com"}},
		{v2, userCreated{ContactEmail: "b@example.com"}},
		{v3, userCreated{ContactEmail: "c@example.com", Verified: true}},
	} {
		got, err := r.Decode(c.e)
		require.NoError(t, err, "version %d", c.e.SchemaVersion)
		require.Equal(t, c.want, got, "version %d", c.e.SchemaVersion)
	}

	ne, err := r.NewEvent(userCreated{ContactEmail: "d@example.com"}, nil)
	require.NoError(t, err)
	require.Equal(t, es.NewEvent{Type: "UserCreated", SchemaVersion: 3, Data: ne.Data}, ne)
	name, data, err := r.Encode(userCreated{ContactEmail: "d@example.com"})
	require.NoError(t, err)
	require.Equal(t, "UserCreated", name)
	require.Equal(t, ne.Data, data)
}

func TestSchemaVersionAhead(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[userCreatedV2](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 2}))

	// Newer code wrote version 3.
	e := encodeAt(t, "UserCreated", 3, userCreated{ContactEmail: "c@example.com"})
	e.StreamID, e.Version = "user-7", 4
	_, err := r.Decode(e)
	var sv *es.SchemaVersionError
	require.ErrorAs(t, err, &sv)
	require.Equal(t, es.SchemaVersionError{Type: "UserCreated", SchemaVersion: 3, RegisteredVersion: 2, StreamID: "user-7", Version: 4}, *sv)
	require.ErrorIs(t, err, es.ErrSchemaVersionAhead)
	require.NotErrorIs(t, err, es.ErrMissingUpcaster)
	require.NotErrorIs(t, err, es.ErrUnknownEventType)
	require.EqualError(t, err, `es: event "UserCreated" (stream "user-7", version 4) is at schema version 3, above the registered version 2 (written by newer code)`)

	// AllowUnknown hands it over untouched.
	got, err := r.DecodeWith(e, &es.DecodeOpts{AllowUnknown: true})
	require.NoError(t, err)
	require.Equal(t, es.RawEvent{Event: e}, got)
}

func TestSchemaVersionMissingUpcaster(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[userCreated](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 3}))
	require.NoError(t, r.RegisterUpcaster("UserCreated", func(m map[string]any) (string, map[string]any, error) {
		return "UserCreated", m, nil
	})) // 1 -> 2, but no 2 -> 3

	for _, e := range []es.Event{
		encodeAt(t, "UserCreated", 1, userCreatedV1{Email: "a@example.com"}),
		encodeAt(t, "UserCreated", 2, userCreatedV2{ContactEmail: "b@example.com"}),
	} {
		_, err := r.Decode(e)
		var sv *es.SchemaVersionError
		require.ErrorAs(t, err, &sv, "version %d", e.SchemaVersion)
		require.Equal(t, 2, sv.SchemaVersion, "where the upcasters stopped")
		require.Equal(t, 3, sv.RegisteredVersion)
		require.ErrorIs(t, err, es.ErrMissingUpcaster)
		require.NotErrorIs(t, err, es.ErrSchemaVersionAhead)
		require.ErrorContains(t, err, "no upcaster leads from it to the registered version 3")

		// Not an unknown event: AllowUnknown does not hide it.
		_, err = r.DecodeWith(e, &es.DecodeOpts{AllowUnknown: true})
		require.ErrorIs(t, err, es.ErrMissingUpcaster)
	}
}

// Renames and versions combine: "CustomerRegistered" v1 became
// "UserCreated" v2 (a rename that lands on version 2), which goes on to v3.
// A plain rename keeps the version.
func TestSchemaVersionRenames(t *testing.T) {
	t.Parallel()
	r := es.NewRegistry()
	require.NoError(t, es.RegisterWith[userCreated](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 3}))
	userUpcasters(t, r)
	require.NoError(t, r.RegisterUpcasterWith("CustomerRegistered", func(m map[string]any) (string, map[string]any, error) {
		m["contact_email"] = m["mail"]
		delete(m, "mail")
		return "UserCreated", m, nil
	}, &es.UpcasterOpts{ToVersion: 2}))
	// A plain rename of an old name: "UserSignedUp" v1 is "UserCreated" v1.
	require.NoError(t, r.RegisterUpcaster("UserSignedUp", func(m map[string]any) (string, map[string]any, error) {
		return "UserCreated", m, nil
	}))

	type customerRegistered struct {
		Mail string `msgpack:"mail"`
	}
	for _, c := range []struct {
		e    es.Event
		want userCreated
	}{
		{encodeAt(t, "CustomerRegistered", 1, customerRegistered{Mail: "a@example.com"}), userCreated{ContactEmail: "a@example.com"}},
		{encodeAt(t, "UserSignedUp", 1, userCreatedV1{Email: "b@example.com"}), userCreated{ContactEmail: "b@example.com"}},
	} {
		got, err := r.Decode(c.e)
		require.NoError(t, err, c.e.Type)
		require.Equal(t, c.want, got, c.e.Type)
	}

	// A rename whose result is above the registered version is the same
	// error as an event from newer code.
	require.NoError(t, r.RegisterUpcasterWith("Future", func(m map[string]any) (string, map[string]any, error) {
		return "UserCreated", m, nil
	}, &es.UpcasterOpts{ToVersion: 9}))
	_, err := r.Decode(es.Event{Type: "Future", Data: []byte{0x80}})
	require.ErrorIs(t, err, es.ErrSchemaVersionAhead)
}

func TestRegisterSchemaVersionErrors(t *testing.T) {
	t.Parallel()
	noop := func(m map[string]any) (string, map[string]any, error) { return "UserCreated", m, nil }
	r := es.NewRegistry()
	require.NoError(t, r.RegisterUpcasterWith("UserCreated", noop, &es.UpcasterOpts{FromVersion: 2}))

	type other struct{ A int }
	for name, err := range map[string]error{
		"negative version":        es.RegisterWith[userCreatedV1](r, "V", &es.RegisterOpts{SchemaVersion: -1}),
		"version above int32":     es.RegisterWith[userCreatedV1](r, "V", &es.RegisterOpts{SchemaVersion: math.MaxInt32 + 1}),
		"upcaster at the version": es.RegisterWith[userCreatedV2](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 2}),
		"upcaster above":          es.RegisterWith[userCreatedV2](r, "UserCreated", nil),
		"negative from":           r.RegisterUpcasterWith("Old", noop, &es.UpcasterOpts{FromVersion: -1}),
		"negative to":             r.RegisterUpcasterWith("Old", noop, &es.UpcasterOpts{ToVersion: -1}),
		"to above int32":          r.RegisterUpcasterWith("Old", noop, &es.UpcasterOpts{ToVersion: math.MaxInt32 + 1}),
		"second for one version":  r.RegisterUpcasterWith("UserCreated", noop, &es.UpcasterOpts{FromVersion: 2}),
	} {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
	require.NoError(t, es.RegisterWith[userCreated](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 3}))
	require.NoError(t, es.RegisterWith[other](r, "Other", &es.RegisterOpts{SchemaVersion: 2}))
	for name, err := range map[string]error{
		"the registered version": r.RegisterUpcasterWith("Other", noop, &es.UpcasterOpts{FromVersion: 2}),
		"above it":               r.RegisterUpcasterWith("Other", noop, &es.UpcasterOpts{FromVersion: 5}),
	} {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
	require.NoError(t, r.RegisterUpcaster("Other", noop), "below the registered version")
	require.NoError(t, r.RegisterUpcaster("UserCreated", noop), "version 1 had none yet")
}
