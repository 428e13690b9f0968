package es_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

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
