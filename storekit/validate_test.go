package storekit_test

import (
	"strings"
	"testing"

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
