package es_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
)

func TestMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	md := es.Metadata{
		CorrelationID: "corr-1",
		CausationID:   "cause-2",
		Headers:       map[string]string{"user": "ann", "ip": "10.0.0.1"},
	}
	b, err := es.EncodeMetadata(&md)
	require.NoError(t, err)

	var raw map[string]any
	require.NoError(t, msgpack.Unmarshal(b, &raw))
	require.Equal(t, map[string]any{
		"correlation_id": "corr-1",
		"causation_id":   "cause-2",
		"headers":        map[string]any{"user": "ann", "ip": "10.0.0.1"},
	}, raw)

	got, err := es.DecodeMetadata(b)
	require.NoError(t, err)
	require.Equal(t, md, got)

	got, err = es.Event{Metadata: b}.Meta()
	require.NoError(t, err)
	require.Equal(t, md, got)
}

func TestMetadataEmpty(t *testing.T) {
	t.Parallel()
	b, err := es.EncodeMetadata(nil)
	require.NoError(t, err)
	require.Nil(t, b)

	b, err = es.EncodeMetadata(&es.Metadata{CorrelationID: "only"})
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, msgpack.Unmarshal(b, &raw))
	require.Equal(t, map[string]any{"correlation_id": "only"}, raw, "empty fields are omitted")

	for _, in := range [][]byte{nil, {}, {0xc0}} {
		md, err := es.DecodeMetadata(in)
		require.NoError(t, err)
		require.True(t, md.IsZero())
	}
	md, err := es.Event{}.Meta()
	require.NoError(t, err)
	require.True(t, md.IsZero())

	_, err = es.Event{StreamID: "s-1", Version: 4, Metadata: []byte{0x81}}.Meta()
	require.ErrorContains(t, err, `stream "s-1", version 4`)
}

func TestMetadataContext(t *testing.T) {
	t.Parallel()
	_, ok := es.MetadataFrom(context.Background())
	require.False(t, ok)

	md := es.Metadata{CorrelationID: "c", Headers: map[string]string{"h": "v"}}
	ctx := es.WithMetadata(context.Background(), md)
	got, ok := es.MetadataFrom(ctx)
	require.True(t, ok)
	require.Equal(t, md, got)

	child, cancel := context.WithCancel(ctx)
	defer cancel()
	got, ok = es.MetadataFrom(child)
	require.True(t, ok)
	require.Equal(t, md, got)
}
