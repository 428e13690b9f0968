package es_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

func TestSubscribeOptsDefaults(t *testing.T) {
	t.Parallel()
	var nilOpts *es.SubscribeOpts
	o := nilOpts.WithDefaults()
	require.Equal(t, es.SubscribeOpts{
		BatchSize:           1000,
		CheckpointEvery:     100,
		CheckpointInterval:  time.Second,
		RetryBackoff:        100 * time.Millisecond,
		PollInterval:        time.Second,
		RepollDelay:         10 * time.Millisecond,
		ReconnectBackoff:    100 * time.Millisecond,
		ReconnectBackoffMax: 5 * time.Second,
		KeepaliveInterval:   30 * time.Second,
		LockPollInterval:    time.Second,
		LeaseTTL:            30 * time.Second,
		TxMaxDuration:       20 * time.Millisecond,
	}, o)
	require.NoError(t, o.Validate())

	// Set fields are kept.
	o = (&es.SubscribeOpts{BatchSize: 7, PollInterval: time.Minute, Categories: []string{"order"}}).WithDefaults()
	require.Equal(t, 7, o.BatchSize)
	require.Equal(t, time.Minute, o.PollInterval)
	require.Equal(t, []string{"order"}, o.Categories)
	require.Equal(t, 100, o.CheckpointEvery)
}

func TestSubscribeOptsValidate(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]es.SubscribeOpts{
		"batch":      {BatchSize: -1},
		"huge batch": {BatchSize: 1_000_001},
		"every":      {CheckpointEvery: -5},
		"retries":    {HandlerRetries: -1},
		"start":      {Start: es.StartPosition(2)},
		"poll":       {PollInterval: -time.Millisecond},
		"repoll":     {RepollDelay: -time.Millisecond},
		"backoff":    {ReconnectBackoff: -1},
		"category":   {Categories: []string{"order", ""}},
		"type":       {EventTypes: []string{""}},
	} {
		d := o.WithDefaults()
		require.ErrorIs(t, d.Validate(), es.ErrInvalidArgument, name)
	}
}

func TestSubscribeOptsMatches(t *testing.T) {
	t.Parallel()
	e := es.Event{StreamID: "order-1", Type: "OrderPlaced"}
	require.True(t, (&es.SubscribeOpts{}).Matches(&e))
	require.True(t, (&es.SubscribeOpts{Categories: []string{"invoice", "order"}}).Matches(&e))
	require.False(t, (&es.SubscribeOpts{Categories: []string{"invoice"}}).Matches(&e))
	require.True(t, (&es.SubscribeOpts{EventTypes: []string{"OrderPlaced"}}).Matches(&e))
	require.False(t, (&es.SubscribeOpts{Categories: []string{"order"}, EventTypes: []string{"OrderPaid"}}).Matches(&e))
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	o := (&es.SubscribeOpts{RetryBackoff: 10 * time.Millisecond}).WithDefaults()
	require.Equal(t, 10*time.Millisecond, o.RetryWait(1))
	require.Equal(t, 20*time.Millisecond, o.RetryWait(2))
	require.Equal(t, 80*time.Millisecond, o.RetryWait(4))
	require.Equal(t, time.Minute, o.RetryWait(100), "capped")
}

func TestHandlerError(t *testing.T) {
	t.Parallel()
	cause := errors.New("smtp down")
	err := error(&es.HandlerError{Subscription: "emails", Event: es.Event{StreamID: "order-1", Version: 3}, Attempts: 2, Err: cause})
	require.ErrorIs(t, err, cause)
	var herr *es.HandlerError
	require.ErrorAs(t, err, &herr)
	require.Contains(t, err.Error(), `subscription "emails"`)
	require.Contains(t, err.Error(), `stream "order-1" version 3`)
	require.Contains(t, err.Error(), "2 attempt(s): smtp down")
	require.Equal(t, "beginning", es.StartFromBeginning.String())
	require.Equal(t, "end", es.StartFromEnd.String())
}
