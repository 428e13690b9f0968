package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
)

var contextTests = []test{
	{"Cancelled", testContextCancelled},
}

// testContextCancelled calls everything with a cancelled context.
func testContextCancelled(t *testing.T, s es.Store) {
	existing, absent := streamID("ctx"), streamID("ctx")
	mustAppend(t, s, existing, es.NoStream, Events(2))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	for _, c := range []struct {
		id       string
		expected es.ExpectedVersion
	}{{absent, es.Any}, {absent, es.NoStream}, {existing, es.Exactly(2)}, {existing, es.Any}} {
		_, err := s.Append(ctx, c.id, c.expected, Events(1))
		require.ErrorIs(t, err, context.Canceled, "append to %q", c.id)
	}
	requireVersion(t, s, absent, 0)
	requireVersion(t, s, existing, 2)

	for _, opts := range []*es.ReadStreamOpts{nil, {Backwards: true}} {
		_, err := collect(s.ReadStream(ctx, existing, opts))
		require.ErrorIs(t, err, context.Canceled, "ReadStream %+v", opts)
	}
	_, err := collect(s.ReadAll(ctx, nil))
	require.ErrorIs(t, err, context.Canceled, "ReadAll")
	_, err = s.StreamInfo(ctx, existing)
	require.ErrorIs(t, err, context.Canceled, "StreamInfo")
}
