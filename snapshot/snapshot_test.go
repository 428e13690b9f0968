package snapshot_test

import (
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/snapshot"
)

func candidate(prev, version int64) es.SnapshotCandidate {
	return es.SnapshotCandidate{PreviousVersion: prev, Version: version}
}

func TestEvery(t *testing.T) {
	t.Parallel()
	p := snapshot.Every(100)
	cases := []struct {
		prev, version int64
		due           bool
	}{
		{0, 1, false},
		{0, 99, false},
		{0, 100, true},    // landing on a multiple
		{99, 100, true},   // landing, one event
		{98, 103, true},   // jumping over it
		{100, 101, false}, // just past: the previous save took it
		{100, 199, false},
		{150, 250, true},
		{0, 1000, true}, // several multiples at once: one snapshot
		{1000, 1000, false},
	}
	for _, c := range cases {
		require.Equal(t, c.due, p.SnapshotDue(candidate(c.prev, c.version)), "%d -> %d", c.prev, c.version)
	}
	one := snapshot.Every(1)
	require.True(t, one.SnapshotDue(candidate(0, 1)))
	require.True(t, one.SnapshotDue(candidate(7, 8)))
	require.Panics(t, func() { snapshot.Every(0) })
	require.Panics(t, func() { snapshot.Every(-5) })
}

func TestWhenAndNever(t *testing.T) {
	t.Parallel()
	p := snapshot.When(func(c es.SnapshotCandidate) bool {
		return c.EventsSinceSnapshot >= 50 || (c.EventsSinceSnapshot > 0 && c.SinceSnapshot > time.Hour)
	})
	require.True(t, p.SnapshotDue(es.SnapshotCandidate{EventsSinceSnapshot: 50}))
	require.False(t, p.SnapshotDue(es.SnapshotCandidate{EventsSinceSnapshot: 49, SinceSnapshot: time.Minute}))
	require.True(t, p.SnapshotDue(es.SnapshotCandidate{EventsSinceSnapshot: 1, SinceSnapshot: math.MaxInt64}))
	require.False(t, snapshot.When(nil).SnapshotDue(es.SnapshotCandidate{EventsSinceSnapshot: 1e9}))
	require.False(t, snapshot.Never().SnapshotDue(candidate(0, 1e9)))
}

// account is an aggregate whose whole state is exported.
type account struct {
	es.AggregateBase
	Owner    uuid.UUID
	Balance  int64
	Opened   time.Time
	Limits   map[string]int64
	History  []int64
	Nickname *string
	Derived  int `msgpack:"-"`
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	nick := "joe"
	in := &account{
		Owner:    uuid.MustParse("0b6e7a4c-3f8d-4e52-9a1b-6f0d2c8e7a11"),
		Balance:  -1250,
		Opened:   time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.FixedZone("x", 3600)),
		Limits:   map[string]int64{"daily": 500},
		History:  []int64{1, 2, 3},
		Nickname: &nick,
		Derived:  42,
	}
	in.SetID("acc-1")
	state, err := snapshot.Marshal(in)
	require.NoError(t, err)

	out := &account{}
	out.SetID("acc-1")
	require.NoError(t, snapshot.Unmarshal(state, out))
	require.Equal(t, in.Owner, out.Owner)
	require.Equal(t, in.Balance, out.Balance)
	require.Equal(t, in.Opened.UTC(), out.Opened, "times come back in UTC")
	require.Equal(t, time.UTC, out.Opened.Location())
	require.Equal(t, in.Limits, out.Limits)
	require.Equal(t, in.History, out.History)
	require.Equal(t, "joe", *out.Nickname)
	require.Zero(t, out.Derived, "a msgpack:\"-\" field is not stored")
	require.Equal(t, "acc-1", out.ID(), "the base is not touched")

	// The UUID is stored as its string, readable from SQL.
	require.Contains(t, string(state), "0b6e7a4c-3f8d-4e52-9a1b-6f0d2c8e7a11")
}

func TestMarshalRefusesUnexportedFields(t *testing.T) {
	t.Parallel()
	type hidden struct {
		es.AggregateBase
		Visible int
		secret  int
	}
	_, err := snapshot.Marshal(&hidden{secret: 1})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "secret")
	require.ErrorIs(t, snapshot.Unmarshal([]byte{0x80}, &hidden{}), es.ErrInvalidArgument)
}

func TestUnmarshalRefusesDamagedState(t *testing.T) {
	t.Parallel()
	good, err := snapshot.Marshal(&account{Balance: 7, History: []int64{1}})
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"empty":          {},
		"nil":            {0xc0},
		"not a map":      {0x07},
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 0x01),
		"garbage":        {0xde, 0xad, 0xbe, 0xef},
		"wrong type":     []byte("\x81\xa7Balance\xa3abc"),
	} {
		out := &account{}
		require.Error(t, snapshot.Unmarshal(bad, out), name)
	}
	require.Error(t, snapshot.Unmarshal(good, account{}), "not a pointer")
	var nilAccount *account
	require.Error(t, snapshot.Unmarshal(good, nilAccount), "a nil pointer")
}

func TestMarshalRejectsNilAndNonPointers(t *testing.T) {
	t.Parallel()
	_, err := snapshot.Marshal(nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	var p *struct{ A int }
	_, err = snapshot.Marshal(p)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorIs(t, snapshot.Unmarshal([]byte{0x80}, struct{}{}), es.ErrInvalidArgument)
	var v struct{ A int }
	require.ErrorIs(t, snapshot.Unmarshal(nil, &v), es.ErrCorruptSnapshot)
	require.NoError(t, snapshot.Unmarshal([]byte("\x81\xa1A\x05"), &v))
	require.Equal(t, 5, v.A)
}
