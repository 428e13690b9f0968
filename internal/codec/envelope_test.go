package codec

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func TestEnvelope(t *testing.T) {
	t.Parallel()
	state := []byte("\x81\xa7Balance\x07")
	sealed := Seal(42, state)
	got, err := Open(42, sealed)
	require.NoError(t, err)
	require.Equal(t, state, got)

	// The envelope of a msgpack state is msgpack: {"crc32c": n, "state": {...}}.
	var m map[string]any
	require.NoError(t, msgpack.Unmarshal(sealed, &m))
	require.Contains(t, m, "crc32c")
	require.Equal(t, map[string]any{"Balance": int8(7)}, m["state"])

	empty := Seal(1, nil)
	got, err = Open(1, empty)
	require.NoError(t, err)
	require.Empty(t, got)

	for name, bad := range map[string][]byte{
		"other version": sealed, // opened at 43 below
		"short":         sealed[:envelopeLen-1],
		"no envelope":   state,
		"flipped state": func() []byte { b := bytes.Clone(sealed); b[len(b)-1] ^= 0x80; return b }(),
		"flipped crc":   func() []byte { b := bytes.Clone(sealed); b[len(envelopeHeader)] ^= 1; return b }(),
		"extra byte":    append(bytes.Clone(sealed), 0),
	} {
		version := int64(42)
		if name == "other version" {
			version = 43
		}
		_, err := Open(version, bad)
		require.ErrorIs(t, err, ErrBadEnvelope, name)
	}
}
