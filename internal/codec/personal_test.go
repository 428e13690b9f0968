package codec

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

func newAEAD(t *testing.T) cipher.AEAD {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return aead
}

// The format of an encrypted value: what msgpack_to_jsonb parses.
func TestSealedFormat(t *testing.T) {
	t.Parallel()
	aead := newAEAD(t)
	data := AppendSealed(nil, aead, "customer-1", []byte("\xa3ada"))
	require.Equal(t, byte(1), data[0], "format")
	require.Equal(t, []byte{0, 10}, data[1:3], "subject length")
	require.Equal(t, "customer-1", string(data[3:13]))
	require.Len(t, data, 3+10+12+4+16, "nonce, ciphertext, tag")

	subject, err := SealedSubject(data)
	require.NoError(t, err)
	require.Equal(t, "customer-1", subject)
	pt, err := OpenSealed(nil, aead, subject, data)
	require.NoError(t, err)
	require.Equal(t, []byte("\xa3ada"), pt)

	// The subject is authenticated: the same bytes under another subject
	// of the same length do not decrypt.
	moved := bytes.Replace(data, []byte("customer-1"), []byte("customer-2"), 1)
	_, err = OpenSealed(nil, aead, "customer-2", moved)
	require.ErrorIs(t, err, ErrBadSealed)
	_, err = OpenSealed(nil, newAEAD(t), subject, data)
	require.ErrorIs(t, err, ErrBadSealed, "another key")
	for _, bad := range [][]byte{nil, {2, 0, 0}, data[:20], append([]byte{2}, data[1:]...)} {
		_, err := SealedSubject(bad)
		require.ErrorIs(t, err, ErrBadSealed, "%x", bad)
	}

	// As a msgpack value: an extension of type 80, whatever its size.
	for _, n := range []int{31, 255, 256, 65535, 65536} {
		value := AppendSealedValue(nil, make([]byte, n))
		got, ok := SealedData(value)
		require.True(t, ok, n)
		require.Len(t, got, n)
		var ext msgpack.RawMessage
		require.NoError(t, msgpack.Unmarshal(value, &ext), n)
	}
	_, ok := SealedData([]byte{0xc7, 1, 5, 0})
	require.False(t, ok, "another extension")
	_, ok = SealedData([]byte{0xa1, 'x'})
	require.False(t, ok, "a string")
}

// Upcasters see an encrypted field as a Sealed value, which the map's
// encoding writes back unchanged.
func TestSealedInMaps(t *testing.T) {
	t.Parallel()
	value := AppendSealedValue(nil, AppendSealed(nil, newAEAD(t), "c-1", []byte{0xc3}))
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	require.NoError(t, e.EncodeMapLen(2))
	require.NoError(t, e.EncodeString("Secret"))
	_, err := buf.Write(value)
	require.NoError(t, err)
	require.NoError(t, e.EncodeString("Plain"))
	require.NoError(t, e.EncodeString("x"))

	m, err := DecodeMap(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, Sealed(value), m["Secret"])
	require.Equal(t, "x", m["Plain"])
	out, err := EncodeMap(map[string]any{"Moved": m["Secret"], "Nested": map[string]any{"In": m["Secret"]}})
	require.NoError(t, err)
	require.Equal(t, 2, bytes.Count(out, value))
}

func TestEnvelopePersonal(t *testing.T) {
	t.Parallel()
	sealed := AppendSealedValue(nil, make([]byte, 40))
	env := SealPersonal(7, sealed)
	got, personal, err := OpenAny(7, env)
	require.NoError(t, err)
	require.True(t, personal)
	require.Equal(t, sealed, got)
	_, _, err = OpenAny(8, env)
	require.ErrorIs(t, err, ErrBadEnvelope, "another version")
	_, err = Open(7, env)
	require.ErrorIs(t, err, ErrBadEnvelope, "Open takes plain states only")

	// A plain envelope opens as before.
	got, personal, err = OpenAny(7, Seal(7, []byte{0x80}))
	require.NoError(t, err)
	require.False(t, personal)
	require.Equal(t, []byte{0x80}, got)

	// {"crc32c": n, "personal": <extension>} is msgpack.
	dec := msgpack.NewDecoder(bytes.NewReader(env))
	n, err := dec.DecodeMapLen()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	var keys []string
	for range n {
		k, err := dec.DecodeString()
		require.NoError(t, err)
		keys = append(keys, k)
		raw, err := dec.DecodeRaw()
		require.NoError(t, err)
		if k == "personal" {
			require.Equal(t, sealed, []byte(raw))
		}
	}
	require.Equal(t, []string{"crc32c", "personal"}, keys)
}
