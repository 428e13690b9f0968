package storetest_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/storetest"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	events := storetest.Events(300)
	require.Len(t, events, 300)
	seen := map[string]bool{}
	for _, e := range events {
		require.Equal(t, uuid.Nil, e.ID)
		require.Equal(t, storetest.EventType, e.Type)
		require.Nil(t, e.Metadata)
		require.False(t, seen[string(e.Data)], "data %x twice", e.Data)
		seen[string(e.Data)] = true
	}
	// msgpack {"n": 258}: fixmap of 1, fixstr "n", uint32.
	require.Equal(t, []byte{0x81, 0xa1, 'n', 0xce, 0, 0, 1, 2}, events[258].Data)
}
