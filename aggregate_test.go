package es_test

import (
	"errors"
	"fmt"
	"iter"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

// Events of the counter aggregate used by the tests.
type (
	counterStarted struct{ ID string }
	counterAdded   struct{ N int }
	counterBroken  struct{}
)

var errCounterBroken = errors.New("counter: broken event")

// counter is a minimal aggregate: it sums counterAdded events.
type counter struct {
	es.AggregateBase
	Total   int
	Applied int
}

func (c *counter) Apply(event any) error {
	switch e := event.(type) {
	case counterStarted:
		c.SetID(e.ID)
	case counterAdded:
		c.Total += e.N
	case counterBroken:
		return errCounterBroken
	default:
		return fmt.Errorf("counter: unknown event %T", event)
	}
	c.Applied++
	return nil
}

// Add is a command.
func (c *counter) Add(n int) error {
	if n <= 0 {
		return errors.New("counter: n must be positive")
	}
	return es.Record(c, counterAdded{N: n})
}

var _ es.Aggregate = (*counter)(nil)

func TestRecordAppliesAndQueues(t *testing.T) {
	t.Parallel()
	c := &counter{}
	require.Equal(t, "", c.ID())
	require.Zero(t, c.Version())
	require.Zero(t, c.StoredVersion())
	require.Nil(t, c.Pending())

	require.NoError(t, es.Record(c, counterStarted{ID: "c1"}))
	require.NoError(t, c.Add(2))
	require.NoError(t, c.Add(3))

	require.Equal(t, "c1", c.ID())
	require.Equal(t, 5, c.Total)
	require.Equal(t, int64(3), c.Version())
	require.Zero(t, c.StoredVersion())
	require.Equal(t, []any{counterStarted{ID: "c1"}, counterAdded{N: 2}, counterAdded{N: 3}}, c.Pending())

	// Pending returns a copy.
	p := c.Pending()
	p[0] = counterBroken{}
	require.Equal(t, counterStarted{ID: "c1"}, c.Pending()[0])
}

func TestRecordApplyErrorQueuesNothing(t *testing.T) {
	t.Parallel()
	c := &counter{}
	require.NoError(t, c.Add(1))

	err := es.Record(c, counterBroken{})
	require.ErrorIs(t, err, errCounterBroken)
	require.Equal(t, errCounterBroken, err, "Apply's error is returned unchanged")

	err = es.Record(c, "not an event")
	require.ErrorContains(t, err, "unknown event string")

	require.Equal(t, []any{counterAdded{N: 1}}, c.Pending())
	require.Equal(t, int64(1), c.Version())
	require.Equal(t, 1, c.Applied)

	// A command that refuses before recording changes nothing.
	require.Error(t, c.Add(0))
	require.Equal(t, int64(1), c.Version())
}

func TestRehydrate(t *testing.T) {
	t.Parallel()
	c := &counter{}
	require.NoError(t, es.Rehydrate(c, counterStarted{ID: "c1"}, counterAdded{N: 4}, counterAdded{N: 6}))
	require.Equal(t, "c1", c.ID())
	require.Equal(t, 10, c.Total)
	require.Equal(t, int64(3), c.StoredVersion())
	require.Equal(t, int64(3), c.Version())
	require.Nil(t, c.Pending())

	// Rehydrating continues from the stored version (e.g. after a snapshot).
	require.NoError(t, es.Rehydrate(c, counterAdded{N: 1}))
	require.Equal(t, int64(4), c.StoredVersion())
	require.NoError(t, es.Rehydrate(c))
	require.Equal(t, int64(4), c.StoredVersion())

	// Then a command records on top of history.
	require.NoError(t, c.Add(5))
	require.Equal(t, int64(4), c.StoredVersion())
	require.Equal(t, int64(5), c.Version())
	require.Equal(t, []any{counterAdded{N: 5}}, c.Pending())

	// History cannot be added under pending events.
	err := es.Rehydrate(c, counterAdded{N: 1})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "1 pending events")
	require.Equal(t, 16, c.Total)
}

func TestRehydrateApplyError(t *testing.T) {
	t.Parallel()
	c := &counter{}
	err := es.Rehydrate(c, counterAdded{N: 1}, counterBroken{}, counterAdded{N: 2})
	require.ErrorIs(t, err, errCounterBroken)
	require.ErrorContains(t, err, "es_test.counterBroken at version 2")
	require.Equal(t, int64(1), c.StoredVersion(), "the events before the failure were applied")
	require.Equal(t, 1, c.Total)
	require.Nil(t, c.Pending())
}

func TestRehydrateSeqStopsAtFirstError(t *testing.T) {
	t.Parallel()
	errRead := errors.New("read failed")
	var asked int
	seq := func(yield func(any, error) bool) {
		items := []struct {
			e   any
			err error
		}{
			{counterAdded{N: 1}, nil},
			{counterAdded{N: 2}, nil},
			{nil, errRead},
			{counterAdded{N: 100}, nil},
		}
		for _, it := range items {
			asked++
			if !yield(it.e, it.err) {
				return
			}
		}
	}

	c := &counter{}
	err := es.RehydrateSeq(c, seq)
	require.ErrorIs(t, err, errRead)
	require.ErrorContains(t, err, "at version 3")
	require.Equal(t, 3, asked, "no events are asked for after the error")
	require.Equal(t, 3, c.Total)
	require.Equal(t, int64(2), c.StoredVersion())

	// An Apply error stops the sequence too.
	asked = 0
	applyErrSeq := func(yield func(any, error) bool) {
		for _, e := range []any{counterAdded{N: 1}, counterBroken{}, counterAdded{N: 2}} {
			asked++
			if !yield(e, nil) {
				return
			}
		}
	}
	c = &counter{}
	require.ErrorIs(t, es.RehydrateSeq(c, applyErrSeq), errCounterBroken)
	require.Equal(t, 2, asked)
	require.Equal(t, int64(1), c.StoredVersion())

	// A nil sequence is empty.
	require.NoError(t, es.RehydrateSeq(c, nil))
	require.Equal(t, int64(1), c.StoredVersion())
}

func TestRehydrateSeqStreams(t *testing.T) {
	t.Parallel()
	// Events are applied as they are yielded, not collected first.
	c := &counter{}
	var seq iter.Seq2[any, error] = func(yield func(any, error) bool) {
		for i := range 1000 {
			if i > 0 && c.Applied != i {
				panic("event not applied before the next was yielded")
			}
			if !yield(counterAdded{N: 1}, nil) {
				return
			}
		}
	}
	require.NoError(t, es.RehydrateSeq(c, seq))
	require.Equal(t, 1000, c.Total)
	require.Equal(t, int64(1000), c.Version())
}

func TestCommit(t *testing.T) {
	t.Parallel()
	c := &counter{}
	require.NoError(t, es.Rehydrate(c, counterStarted{ID: "c1"}, counterAdded{N: 1}))
	require.NoError(t, c.Add(2))
	require.NoError(t, c.Add(3))
	require.Equal(t, int64(2), c.StoredVersion())
	require.Equal(t, int64(4), c.Version())

	c.Commit()
	require.Equal(t, int64(4), c.StoredVersion())
	require.Equal(t, int64(4), c.Version())
	require.Nil(t, c.Pending())
	require.Equal(t, 6, c.Total, "committing does not apply again")

	c.Commit() // nothing pending: no change
	require.Equal(t, int64(4), c.StoredVersion())

	require.NoError(t, c.Add(1))
	require.Equal(t, int64(5), c.Version())
	require.Equal(t, []any{counterAdded{N: 1}}, c.Pending())
}

// brokenBase embeds a nil *AggregateBase.
type brokenBase struct {
	*es.AggregateBase
}

func (*brokenBase) Apply(any) error { return nil }

func TestAggregateNilArguments(t *testing.T) {
	t.Parallel()
	var nilCounter *counter
	for name, agg := range map[string]es.Aggregate{
		"nil interface":    nil,
		"nil pointer":      nilCounter,
		"nil embedded ptr": &brokenBase{},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, es.Record(agg, counterAdded{N: 1}), es.ErrInvalidArgument)
			require.ErrorIs(t, es.Rehydrate(agg, counterAdded{N: 1}), es.ErrInvalidArgument)
			require.ErrorIs(t, es.RehydrateSeq(agg, nil), es.ErrInvalidArgument)
		})
	}

	c := &counter{}
	err := es.Record(c, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "nil event")
	require.Nil(t, c.Pending())
	require.Zero(t, c.Applied, "Apply is not called with nil")

	err = es.Rehydrate(c, counterAdded{N: 1}, nil)
	require.ErrorIs(t, err, es.ErrInvalidArgument)
	require.ErrorContains(t, err, "nil event at version 2")
	require.Equal(t, int64(1), c.StoredVersion())
}
