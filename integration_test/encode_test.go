package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// These tests cover jsonb_to_msgpack and append_json
// (schema/code/encode.sql): the exact inverse of msgpack_to_jsonb on JSON,
// what the Go codec reads back, what is refused, and linear cost.

// randomJSON builds a random JSON value of at most depth levels.
func randomJSON(r *rand.Rand, depth int) any {
	kind := r.IntN(10)
	if depth <= 0 && kind >= 8 {
		kind = r.IntN(8)
	}
	switch kind {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 1
	case 2: // small and boundary integers
		return json.Number(strconv.FormatInt([]int64{0, 1, -1, 31, 127, 128, -32, -33, 255, 256, 65535, 65536,
			math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64, r.Int64N(1000) - 500}[r.IntN(17)], 10))
	case 3: // large integers, up to uint64
		if r.IntN(2) == 0 {
			return json.Number(strconv.FormatUint(r.Uint64(), 10))
		}
		return json.Number(strconv.FormatInt(r.Int64(), 10))
	case 4: // floats, written as Go writes them (shortest)
		f := []float64{0.5, -1.25, 0.1, 1e300, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, r.NormFloat64() * 1e6}[r.IntN(8)]
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	case 5, 6, 7:
		return randomString(r)
	case 8:
		n := r.IntN(20)
		a := make([]any, n)
		for i := range a {
			a[i] = randomJSON(r, depth-1)
		}
		return a
	default:
		n := r.IntN(20)
		m := make(map[string]any, n)
		for range n {
			m[randomString(r)] = randomJSON(r, depth-1)
		}
		return m
	}
}

func randomString(r *rand.Rand) string {
	alphabet := []rune("abcXYZ019 _-\"\\/\u00e9\u4e16\U0001F600\t\n\u0001\u007f")
	n := []int{0, 1, 5, 31, 32, 40, 255, 256, 300}[r.IntN(9)]
	var b strings.Builder
	for range n {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// sameJSONValue compares a JSON value decoded with UseNumber with the
// value vmihailenco/msgpack decodes from the encoder's output.
func sameJSONValue(want, got any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case bool, string:
		return w == got
	case json.Number:
		wv, ok := new(big.Float).SetPrec(200).SetString(w.String())
		if !ok {
			return false
		}
		var gv *big.Float
		switch g := got.(type) {
		case int8, int16, int32, int64:
			gv = new(big.Float).SetPrec(200).SetInt64(toInt64(g))
		case uint8, uint16, uint32, uint64:
			gv = new(big.Float).SetPrec(200).SetUint64(toUint64(g))
		case float64:
			gv = new(big.Float).SetPrec(200).SetFloat64(g)
			// Decimal text and the float it names: equal when the float's
			// shortest text is the text.
			f, err := strconv.ParseFloat(w.String(), 64)
			return err == nil && f == g
		default:
			return false
		}
		return wv.Cmp(gv) == 0
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameJSONValue(w[i], g[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if gv, ok := g[k]; !ok || !sameJSONValue(v, gv) {
				return false
			}
		}
		return true
	}
	return false
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	}
	return v.(int64)
}

func toUint64(v any) uint64 {
	switch x := v.(type) {
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	}
	return v.(uint64)
}

// encodeConn runs jsonb_to_msgpack in a schema of its own.
type encodeConn struct {
	*decodeConn
}

// encode returns jsonb_to_msgpack(text::jsonb).
func (c encodeConn) encode(text string) ([]byte, error) {
	var out []byte
	err := c.pool.QueryRow(c.ctx, fmt.Sprintf("SELECT %s.jsonb_to_msgpack($1::jsonb)", c.schema), text).Scan(&out)
	return out, err
}

// requireRoundTrip checks that text encodes, that msgpack_to_jsonb gives it
// back, and that Go's msgpack reads the same value.
func (c encodeConn) requireRoundTrip(t *testing.T, text string) {
	t.Helper()
	var same bool
	var encoded []byte
	err := c.pool.QueryRow(c.ctx, fmt.Sprintf(
		"SELECT m, %[1]s.msgpack_to_jsonb(m) = $1::jsonb FROM (SELECT %[1]s.jsonb_to_msgpack($1::jsonb) AS m) AS e", c.schema),
		text).Scan(&encoded, &same)
	require.NoError(t, err, "%.300s", text)
	require.True(t, same, "msgpack_to_jsonb(jsonb_to_msgpack(v)) = v: %.300s", text)
	var got any
	require.NoError(t, msgpack.Unmarshal(encoded, &got), "%.300s", text)
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var want any
	require.NoError(t, dec.Decode(&want))
	require.True(t, sameJSONValue(want, got), "Go reads %#v from the encoding of %.300s", got, text)
}

func TestJSONBToMsgpackRoundTrip(t *testing.T) {
	t.Parallel()
	c := encodeConn{newDecodeConn(t)}
	for _, text := range []string{
		`null`, `true`, `false`, `0`, `-0`, `127`, `128`, `-32`, `-33`, `9223372036854775807`, `-9223372036854775808`,
		`18446744073709551615`, `9223372036854775808`, `0.5`, `1.5e300`, `0.30000000000000004`, `1.0`, `-1.25`,
		`""`, `"a"`, `"` + strings.Repeat("x", 31) + `"`, `"` + strings.Repeat("x", 32) + `"`, `"` + strings.Repeat("y", 256) + `"`,
		`"` + strings.Repeat("z", 70000) + `"`, `"\u00e9\u4e16\ud83d\ude00 \" \\ \n \u0001"`,
		`[]`, `{}`, `[1, "a", null, true, [2, [3, {"k": []}]]]`, `{"b": 1, "a": {"c": [1.5, "x"]}, "": null}`,
		"[" + strings.TrimSuffix(strings.Repeat("1,", 20), ",") + "]", "[" + strings.TrimSuffix(strings.Repeat("1,", 70000), ",") + "]",
		`{` + objectKeys(20) + `}`, `{` + objectKeys(70000) + `}`,
		strings.Repeat("[", 512) + strings.Repeat("]", 512),
	} {
		c.requireRoundTrip(t, text)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("random JSON values: seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for range 300 {
		b, err := json.Marshal(randomJSON(r, 4))
		require.NoError(t, err)
		c.requireRoundTrip(t, string(b))
	}
}

func objectKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d": %d`, i, i)
	}
	return b.String()
}

func TestJSONBToMsgpackRefuses(t *testing.T) {
	t.Parallel()
	c := encodeConn{newDecodeConn(t)}
	for _, text := range []string{
		`0.1000000000000000000001`,           // more digits than a float8 holds
		`18446744073709551616`,               // above uint64, and not exactly a float8
		`1e400`,                              // beyond float8
		`1e-400`,                             // below float8
		`{"a": [0.12345678901234567890123]}`, // inside containers too
		strings.Repeat("[", 513) + strings.Repeat("]", 513),
	} {
		_, err := c.encode(text)
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%.80s: %v", text, err)
		require.Equal(t, "PE003", pgErr.Code, "%.80s: %v", text, err)
	}
	var isNull bool
	require.NoError(t, c.pool.QueryRow(c.ctx, fmt.Sprintf("SELECT %s.jsonb_to_msgpack(NULL) IS NULL", c.schema)).Scan(&isNull))
	require.True(t, isNull)
}

// jsonOrder is an event written from SQL in JSON.
type jsonOrder struct {
	OrderID  uuid.UUID
	Customer string
	Total    float64
	Items    int64
	Paid     bool
	Tags     []string
	Lines    map[string]int
	PlacedAt time.Time
	Note     *string
}

func TestAppendJSONDecodesInGo(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, testTimeout)
	pool, schema := pgtest.NewSchema(t)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	reg := es.NewRegistry()
	require.NoError(t, es.Register[jsonOrder](reg, "OrderPlaced"))

	id := uuid.New()
	var version int64
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT stream_version FROM %s.append_json('order-1', 'OrderPlaced',
		jsonb_build_object('OrderID', $1::text, 'Customer', 'Ada', 'Total', 12.5, 'Items', 3, 'Paid', true,
		                   'Tags', jsonb_build_array('gift', 'rush'), 'Lines', jsonb_build_object('BOOK-1', 2),
		                   'PlacedAt', '2026-12-06T10:11:12.123456Z', 'Note', NULL),
		'{"correlation_id": "c-1", "headers": {"source": "psql"}}', 0)`, schema), id.String()).Scan(&version))
	require.Equal(t, int64(1), version)

	var got []es.Event
	for e, err := range store.ReadStream(ctx, "order-1", nil) {
		require.NoError(t, err)
		got = append(got, e)
	}
	require.Len(t, got, 1)
	v, err := reg.Decode(got[0])
	require.NoError(t, err)
	require.Equal(t, jsonOrder{
		OrderID: id, Customer: "Ada", Total: 12.5, Items: 3, Paid: true, Tags: []string{"gift", "rush"},
		Lines: map[string]int{"BOOK-1": 2}, PlacedAt: time.Date(2026, 12, 6, 10, 11, 12, 123456000, time.UTC),
	}, v)
	md, err := got[0].Meta()
	require.NoError(t, err)
	require.Equal(t, "c-1", md.CorrelationID)
	require.Equal(t, map[string]string{"source": "psql"}, md.Headers)

	// What the view shows is what was written.
	var data string
	require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT data->>'Customer' FROM %s.events_view WHERE stream_id = 'order-1'`, schema)).Scan(&data))
	require.Equal(t, "Ada", data)

	// Bad JSON numbers write nothing.
	_, err = pool.Exec(ctx, fmt.Sprintf(`SELECT * FROM %s.append_json('order-1', 'OrderPlaced', '{"Total": 1e400}')`, schema))
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr))
	require.Equal(t, "PE003", pgErr.Code)
	info, err := store.StreamInfo(ctx, "order-1")
	require.NoError(t, err)
	require.Equal(t, int64(1), info.Version)
}

// jsonLinearShapes are inputs whose encoding cost must grow linearly.
func jsonLinearShapes() []linearShape {
	text := func(s string) []byte { return []byte(s) }
	join := func(n int, item func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = item(i)
		}
		return strings.Join(parts, ",")
	}
	return []linearShape{
		{"array of integers", func(n int) []byte { return text("[" + join(n, strconv.Itoa) + "]") }},
		{"object with many keys", func(n int) []byte { return text("{" + objectKeys(n) + "}") }},
		{"array of small objects", func(n int) []byte {
			return text("[" + join(n, func(i int) string { return fmt.Sprintf(`{"a": %d, "b": "x"}`, i) }) + "]")
		}},
		{"object of objects", func(n int) []byte {
			return text("{" + join(n, func(i int) string { return fmt.Sprintf(`"k%d": {"a": [%d]}`, i, i) }) + "}")
		}},
		{"strings to escape", func(n int) []byte {
			return text("[" + join(n, func(int) string { return `"` + strings.Repeat("é\\\"x", 64) + `"` }) + "]")
		}},
		{"floats", func(n int) []byte {
			return text("[" + join(n, func(i int) string { return fmt.Sprintf("%d.25", i) }) + "]")
		}},
		{"deep nesting around a wide array", func(n int) []byte {
			return text(strings.Repeat("[", 100) + "[" + join(n, strconv.Itoa) + "]" + strings.Repeat("]", 100))
		}},
	}
}

func TestJSONBToMsgpackLinear(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	m := newDecodeMeter(t, c)
	m.query = fmt.Sprintf("SELECT %s.jsonb_to_msgpack(convert_from($1, 'UTF8')::jsonb) IS NOT NULL", c.schema)
	t.Logf("cost measured as %s", m.what)
	for _, shape := range jsonLinearShapes() {
		require.True(t, json.Valid(shape.build(3)), shape.name)
		var report []string
		passed := false
		for attempt := 1; attempt <= linearAttempts && !passed; attempt++ {
			r := m.growth(shape)
			report = append(report, r.String())
			passed = r.ratio() <= maxLinearRatio
		}
		t.Logf("%s: %s", shape.name, strings.Join(report, "; again: "))
		if !passed {
			t.Errorf("%s: cost(8n)/cost(n) above %.0f in %d attempts: %s",
				shape.name, maxLinearRatio, linearAttempts, strings.Join(report, "; "))
		}
	}
}

// FuzzJSONBToMsgpack feeds jsonb_to_msgpack random and mutated JSON: for
// every text PostgreSQL accepts as jsonb, it returns the encoding, which
// msgpack_to_jsonb turns back into the same value and Go's msgpack reads
// as encoding/json reads the text, or it raises PE003 (a number it cannot
// write exactly, nesting deeper than 512).
func FuzzJSONBToMsgpack(f *testing.F) {
	fz := newFuzzDecoder(f)
	shareServerWithFuzzWorkers(f)
	for _, s := range []string{`null`, `[1, "a", {"b": [true, 0.5]}]`, `{"k": 18446744073709551615}`, `"\u00e9"`,
		`0.1000000000000000000001`, `{"a": {"b": {"c": []}}}`, `-9223372036854775808`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput || !json.Valid(data) || bytes.ContainsRune(data, 0) || bytes.Contains(data, []byte(`\u0000`)) {
			t.Skip("not JSON PostgreSQL takes")
		}
		ctx := context.Background()
		var encoded []byte
		var same *bool
		err := fz.pool.QueryRow(ctx, fmt.Sprintf(
			"SELECT m, %[1]s.msgpack_to_jsonb(m) = $1::jsonb FROM (SELECT %[1]s.jsonb_to_msgpack($1::jsonb) AS m) AS e", fz.schema),
			string(data)).Scan(&encoded, &same)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "PE003" || strings.HasPrefix(pgErr.Code, "22")) {
			return // refused: a number it cannot write exactly, too deep; or not jsonb (22xxx)
		}
		require.NoError(t, err, "%.300s", data)
		require.NotNil(t, same)
		require.True(t, *same, "%.300s", data)
		var got any
		require.NoError(t, msgpack.Unmarshal(encoded, &got))
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var want any
		require.NoError(t, dec.Decode(&want))
		require.True(t, sameJSONValue(want, got), "%.300s", data)
	})
}
