package integration_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// This file tests msgpack_to_jsonb (schema/code/decode.sql) on map keys
// that are not strings, arrays and maps above all, which become the string
// of their jsonb text, and builds raw msgpack for that and for
// decode_linear_test.go.

// mp is raw msgpack under construction: each method appends one header or
// value, in the smallest form (fixmap, map16, map32, ...) unless it says
// otherwise, and returns the result.
type mp []byte

func (b mp) mapHeader(n int) mp {
	switch {
	case n < 16:
		return append(b, 0x80|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
	}
}

func (b mp) arrayHeader(n int) mp {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
	}
}

func (b mp) str(s string) mp {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n < 1<<8:
		b = append(b, 0xd9, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func (b mp) uint(v uint64) mp {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
	}
}

func (b mp) int(v int64) mp {
	if v >= 0 {
		return b.uint(uint64(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

func (b mp) float64(f float64) mp {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

func (b mp) bin(data []byte) mp { // bin8 or bin32
	if len(data) < 1<<8 {
		return append(append(b, 0xc4, byte(len(data))), data...)
	}
	return append(binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(len(data))), data...)
}

// timestamp8 is a timestamp extension of 8 bytes (fixext8, type -1).
func (b mp) timestamp8(secs int64, nanos uint32) mp {
	return binary.BigEndian.AppendUint64(append(b, 0xd7, 0xff), uint64(nanos)<<34|uint64(secs))
}

// ext is an extension of type typ in the smallest form.
func (b mp) ext(typ int8, data []byte) mp {
	switch len(data) {
	case 1, 2, 4, 8, 16:
		codes := map[int]byte{1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}
		b = append(b, codes[len(data)], byte(typ))
	default:
		b = append(b, 0xc7, byte(len(data)), byte(typ)) // ext8
	}
	return append(b, data...)
}

// keyChain wraps inner in levels maps of one entry, each the key of the
// next (and the value 0): levels = 2 gives {{inner: 0}: 0}. inner, a map key
// itself when it is the key of the innermost of them, makes levels + 1
// nested container keys once the result is a key in turn.
func (b mp) keyChain(levels int, inner func(mp) mp) mp {
	if levels == 0 {
		return inner(b)
	}
	return b.mapHeader(1).keyChain(levels-1, inner).uint(0)
}

// containerKeyCorpus is msgpack whose maps have keys that are not strings:
// arrays and maps (nested in each other up to the limit of 4, and holding
// every kind of value, strings that need escaping included), empty ones,
// and scalars of every kind.
func containerKeyCorpus() []namedCase {
	var cs []namedCase
	add := func(name string, data mp) { cs = append(cs, namedCase{name, []byte(data)}) }
	one := func(key func(mp) mp) mp { return key(mp{}.mapHeader(1)).str("v") }

	add("array keys", mp{}.mapHeader(3).
		arrayHeader(2).uint(1).uint(2).str("x").
		arrayHeader(2).str("a").str("b").str("y").
		arrayHeader(1).arrayHeader(2).uint(3).arrayHeader(0).str("z"))
	add("map keys, jsonb orders their keys", mp{}.mapHeader(2).
		mapHeader(3).str("bb").uint(2).str("a").uint(1).str("ccc").mapHeader(0).uint(1).
		mapHeader(1).str("a").arrayHeader(0).uint(2))
	add("map key with duplicate keys", one(func(b mp) mp { return b.mapHeader(2).str("a").uint(1).str("a").uint(2) }))
	add("empty containers as keys", mp{}.mapHeader(3).arrayHeader(0).uint(1).mapHeader(0).uint(2).
		arrayHeader(1).arrayHeader(0).uint(3))
	add("key holding strings to escape", one(func(b mp) mp {
		return b.arrayHeader(6).str(`q"b\s`).str("nl\nctl\x01\x1f").str("ascii ctl \x02\x03").
			str("é ✓ 日本").str(strings.Repeat(`"`, 40)).str(strings.Repeat("\x07", 300))
	}))
	add("key holding every kind of scalar", one(func(b mp) mp {
		return b.arrayHeader(12).uint(math.MaxUint64).int(-5).int(math.MinInt64).float64(0.1).float64(1e300).
			float64(math.NaN()).append(0xca, 0x3d, 0xcc, 0xcc, 0xcd). // float32 0.1
			bin([]byte{0, 1, 2, 250}).timestamp8(1700000000, 5).ext(7, []byte{1, 2}).append(0xc0, 0xc3)
	}))
	for levels := 1; levels <= 4; levels++ {
		add(fmt.Sprintf("container keys nested %d deep", levels), one(func(b mp) mp {
			return b.keyChain(levels-1, func(b mp) mp { return b.arrayHeader(2).str(`"q"`).str("c\x01") })
		}))
	}
	add("container keys nested 4 deep, each level with more", mp{}.mapHeader(2).
		mapHeader(2).mapHeader(2).mapHeader(2).arrayHeader(1).str("x").uint(1).str("s").mapHeader(1).
		arrayHeader(2).uint(9).str(`\`).uint(0).uint(2).
		str("t").uint(3).uint(4).str("u").uint(5).uint(6).
		arrayHeader(1).uint(7).uint(8))
	add("container keys in arrays in maps", mp{}.arrayHeader(2).
		mapHeader(2).arrayHeader(1).uint(1).arrayHeader(1).mapHeader(1).arrayHeader(1).uint(2).uint(3).
		str("k").mapHeader(1).arrayHeader(0).uint(4).
		mapHeader(0))
	add("container keys under 300 arrays", append(mp(strings.Repeat("\x91", 300)), mp{}.mapHeader(2).
		arrayHeader(2).uint(1).uint(2).arrayHeader(1).uint(3).
		mapHeader(1).str("a").str("b").mapHeader(0)...))
	add("scalar keys of every kind", mp{}.mapHeader(11).
		float64(2.5).uint(1).float64(math.Inf(-1)).uint(2).append(0xca, 0x3f, 0xc0, 0, 0).uint(3).
		bin([]byte("bin")).uint(4).timestamp8(0, 1).uint(5).ext(-3, []byte{9}).uint(6).
		int(-33).uint(7).uint(1<<40).uint(8).append(0xc2).uint(9).append(0xc0).uint(10).
		str("plain").uint(11))
	return cs
}

// append appends raw bytes.
func (b mp) append(raw ...byte) mp { return append(b, raw...) }

// TestMsgpackToJSONBContainerKeys proves that a map key that is not a
// string becomes the string of its jsonb text: checked exactly on a few
// hand-written cases, and against the Go reference with keys compared as
// the values they denote (the reference writes Go's JSON, jsonb its own
// spacing and key order) on containerKeyCorpus. It also proves that map
// keys that are arrays or maps nest at most 4 deep.
func TestMsgpackToJSONBContainerKeys(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	for _, tc := range []struct {
		name string
		data mp
		want string
	}{
		{"array key", mp{}.mapHeader(1).arrayHeader(2).uint(1).uint(2).uint(3), `{"[1, 2]": 3}`},
		{"map key", mp{}.mapHeader(1).mapHeader(2).str("bb").uint(1).str("a").uint(2).uint(3), `{"{\"a\": 2, \"bb\": 1}": 3}`},
		{"map key in a map key", mp{}.mapHeader(1).mapHeader(1).arrayHeader(1).uint(1).uint(2).uint(3),
			`{"{\"[1]\": 2}": 3}`},
		{"three deep", mp{}.mapHeader(1).mapHeader(1).mapHeader(1).arrayHeader(1).uint(1).uint(2).uint(3).uint(4),
			`{"{\"{\\\"[1]\\\": 2}\": 3}": 4}`},
		{"control characters", mp{}.mapHeader(1).arrayHeader(2).str("a\x01").str("\n").uint(1),
			`{"[\"a\\u0001\", \"\\n\"]": 1}`},
		{"control characters in a string value too", mp{}.mapHeader(2).arrayHeader(1).str("\x1f").str("\x02").str("k").str("t\tab"),
			`{"k": "t\tab", "[\"\\u001f\"]": "\u0002"}`},
		{"empty array key", mp{}.mapHeader(1).arrayHeader(0).uint(1), `{"[]": 1}`},
		{"separators around a container key", mp{}.mapHeader(3).str("a").uint(1).arrayHeader(1).uint(2).arrayHeader(1).uint(3).str("b").mapHeader(0),
			`{"a": 1, "b": {}, "[2]": [3]}`},
	} {
		got, err := c.decode("msgpack_to_jsonb", tc.data)
		require.NoError(t, err, tc.name)
		require.NotNil(t, got, tc.name)
		requireSameJSON(t, tc.name, tc.want, *got)
	}

	for _, tc := range containerKeyCorpus() {
		want, err := renderJSON(tc.data)
		require.NoError(t, err, tc.name)
		got, err := c.decode("msgpack_to_jsonb", tc.data)
		require.NoError(t, err, "%s: msgpack %x", tc.name, truncateBytes(tc.data))
		require.NotNil(t, got, tc.name)
		w, err := parseJSON(want)
		require.NoError(t, err, "%s: reference JSON %.300s", tc.name, want)
		g, err := parseJSON(*got)
		require.NoError(t, err, "%s: server JSON %.300s", tc.name, *got)
		if path, ok := sameJSONNormalised(w, g, "$"); !ok {
			require.Failf(t, "msgpack_to_jsonb differs from the Go reference", "%s at %s\nwant %.500s\ngot  %.500s", tc.name, path, want, *got)
		}
		tried, err := c.decode("try_msgpack_to_jsonb", tc.data)
		require.NoError(t, err, tc.name)
		require.Equal(t, got, tried, tc.name)
	}

	// A fifth container key inside four is refused, wherever it is; an
	// empty one is not a container that holds anything, so it is a key like
	// a scalar.
	for _, tc := range keyNestingCorpus() {
		_, err := renderJSON(tc.data)
		require.Error(t, err, "%s: the Go reference accepts it", tc.name)
		c.requireMalformed(tc.name, tc.data)
	}
	for _, inner := range []func(mp) mp{
		func(b mp) mp { return b.arrayHeader(0) },
		func(b mp) mp { return b.mapHeader(0) },
		func(b mp) mp { return b.str("s") },
	} {
		data := mp{}.mapHeader(1).keyChain(4, inner).uint(1)
		want, err := renderJSON(data)
		require.NoError(t, err)
		got, err := c.decode("msgpack_to_jsonb", data)
		require.NoError(t, err, "msgpack %x", data)
		w, err := parseJSON(want)
		require.NoError(t, err)
		g, err := parseJSON(*got)
		require.NoError(t, err)
		_, ok := sameJSONNormalised(w, g, "$")
		require.True(t, ok, "want %s\ngot  %s", want, *got)
	}
}

// keyNestingCorpus is msgpack with map keys that are non-empty arrays or
// maps nested 5 deep, which msgpack_to_jsonb refuses.
func keyNestingCorpus() []namedCase {
	return []namedCase{
		{"container keys nested 5 deep", mp{}.mapHeader(1).keyChain(4, func(b mp) mp { return b.arrayHeader(1).uint(1) }).uint(1)},
		{"container keys nested 5 deep, array16", mp{}.mapHeader(1).keyChain(4, func(b mp) mp { return b.append(0xdc, 0, 1, 1) }).uint(1)},
		{"container keys nested 5 deep, map16", mp{}.mapHeader(1).keyChain(4, func(b mp) mp { return b.append(0xde, 0, 1, 1, 1) }).uint(1)},
		{"container keys nested 5 deep, with arrays between", mp{}.mapHeader(1).
			arrayHeader(1).mapHeader(1).arrayHeader(1).mapHeader(1).arrayHeader(1).mapHeader(1).arrayHeader(1).mapHeader(1).
			arrayHeader(1).uint(1).uint(0).uint(0).uint(0).uint(0).uint(0)},
		{"container keys nested 40 deep", mp{}.mapHeader(1).keyChain(39, func(b mp) mp { return b.arrayHeader(1).str(`"`) }).uint(1)},
	}
}
