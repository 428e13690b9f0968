package storekit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

func TestValidateAppend(t *testing.T) {
	t.Parallel()
	ok := []es.NewEvent{{Type: "A"}}
	require.NoError(t, storekit.ValidateAppend("s-1", es.Any, ok))
	require.NoError(t, storekit.ValidateAppend(strings.Repeat("x", 1000), es.Any, ok))
	bad := map[string]error{
		"empty stream":     storekit.ValidateAppend("", es.Any, ok),
		"long stream":      storekit.ValidateAppend(strings.Repeat("x", 1001), es.Any, ok),
		"NUL stream":       storekit.ValidateAppend("a\x00b", es.Any, ok),
		"invalid UTF-8":    storekit.ValidateAppend("a\xffb", es.Any, ok),
		"no events":        storekit.ValidateAppend("s-1", es.Any, nil),
		"empty type":       storekit.ValidateAppend("s-1", es.Any, []es.NewEvent{{Type: "A"}, {}}),
		"NUL type":         storekit.ValidateAppend("s-1", es.Any, []es.NewEvent{{Type: "A\x00"}}),
		"negative version": storekit.ValidateAppend("s-1", es.Exactly(-2), ok),
	}
	for name, err := range bad {
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
}

func TestPrepareEvents(t *testing.T) {
	t.Parallel()
	given := uuid.New()
	in := []es.NewEvent{{Type: "A"}, {ID: given, Type: "B", Data: []byte{1}}, {Type: "C"}}
	out, err := storekit.PrepareAppend("s-1", es.Any, in)
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, in[0].ID, "the caller's slice is not modified")
	require.Equal(t, given, out[1].ID)
	require.NotEqual(t, uuid.Nil, out[0].ID)
	require.NotEqual(t, out[0].ID, out[2].ID)
	require.Equal(t, uuid.Version(7), out[0].ID.Version())
	require.NotNil(t, out[0].Data, "nil data becomes an empty body")

	_, err = storekit.PrepareAppend("s-1", es.Any, []es.NewEvent{{ID: given, Type: "A"}, {ID: given, Type: "B"}})
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

func TestValidateSubscriptionName(t *testing.T) {
	t.Parallel()
	require.NoError(t, storekit.ValidateSubscriptionName("order-details"))
	for _, bad := range []string{"", "a\x00b", "\xff", string(make([]byte, es.MaxSubscriptionNameLength+1))} {
		require.ErrorIs(t, storekit.ValidateSubscriptionName(bad), es.ErrInvalidArgument, "%q", bad)
	}
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	o, err := storekit.Options(nil)
	require.NoError(t, err)
	require.Equal(t, es.SubscribeOpts{
		BatchSize:          1000,
		CheckpointEvery:    100,
		CheckpointInterval: time.Second,
		RetryBackoff:       100 * time.Millisecond,
		ProgressInterval:   time.Second,
	}, o)

	// Set fields are kept; the filters are copied.
	cats := []string{"order"}
	o, err = storekit.Options(&es.SubscribeOpts{BatchSize: 7, CheckpointInterval: time.Minute, Categories: cats})
	require.NoError(t, err)
	require.Equal(t, 7, o.BatchSize)
	require.Equal(t, time.Minute, o.CheckpointInterval)
	require.Equal(t, []string{"order"}, o.Categories)
	require.Equal(t, 100, o.CheckpointEvery)
	cats[0] = "changed"
	require.Equal(t, []string{"order"}, o.Categories)
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]es.SubscribeOpts{
		"batch":      {BatchSize: -1},
		"huge batch": {BatchSize: 1_000_001},
		"every":      {CheckpointEvery: -5},
		"interval":   {CheckpointInterval: -time.Millisecond},
		"retries":    {HandlerRetries: -1},
		"backoff":    {RetryBackoff: -1},
		"start":      {Start: es.StartPosition(2)},
		"category":   {Categories: []string{"order", ""}},
		"type":       {EventTypes: []string{""}},
		"on failure": {OnFailure: es.FailurePolicy(2)},
		"progress":   {ProgressInterval: -time.Second},
	} {
		_, err := storekit.Options(&o)
		require.ErrorIs(t, err, es.ErrInvalidArgument, name)
	}
}

func TestMatches(t *testing.T) {
	t.Parallel()
	e := es.Event{StreamID: "order-1", Type: "OrderPlaced"}
	require.True(t, storekit.Matches(&es.SubscribeOpts{}, &e))
	require.True(t, storekit.Matches(&es.SubscribeOpts{Categories: []string{"invoice", "order"}}, &e))
	require.False(t, storekit.Matches(&es.SubscribeOpts{Categories: []string{"invoice"}}, &e))
	require.True(t, storekit.Matches(&es.SubscribeOpts{EventTypes: []string{"OrderPlaced"}}, &e))
	require.False(t, storekit.Matches(&es.SubscribeOpts{Categories: []string{"order"}, EventTypes: []string{"OrderPaid"}}, &e))
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	o := &es.SubscribeOpts{RetryBackoff: 10 * time.Millisecond}
	require.Equal(t, 10*time.Millisecond, storekit.RetryWait(o, 1))
	require.Equal(t, 20*time.Millisecond, storekit.RetryWait(o, 2))
	require.Equal(t, 80*time.Millisecond, storekit.RetryWait(o, 4))
	require.Equal(t, time.Minute, storekit.RetryWait(o, 100), "capped")
}
