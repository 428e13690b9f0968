package integration_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
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
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
)

// This file tests msgpack_to_jsonb (schema/code/decode.sql) against a
// reference rendering in Go: the msgpack library decodes the bytes and
// renderJSON writes the JSON the SQL function must return.

// decodeConn is a connection on a fresh schema with a statement timeout, so
// that a decoder that hangs fails the test instead of blocking it.
//
// decodeStatementTimeout is that timeout: long enough for any value of the
// corpora on a busy machine (where a call can take many times as long as
// on a quiet one), and far shorter than the test's deadline.
const decodeStatementTimeout = "1min"

type decodeConn struct {
	t      *testing.T
	ctx    context.Context
	pool   *pgxpool.Pool
	schema string
}

func newDecodeConn(t *testing.T) *decodeConn {
	t.Helper()
	pool, schema := pgtest.NewSchema(t)
	return &decodeConn{t: t, ctx: testContext(t, testTimeout), pool: pool, schema: schema}
}

// decode runs fn(data) ("msgpack_to_jsonb" or "try_msgpack_to_jsonb") on the
// server with statement_timeout decodeStatementTimeout and returns the jsonb as text (nil for
// SQL NULL).
func (c *decodeConn) decode(fn string, data []byte) (*string, error) {
	var out *string
	tx, err := c.pool.Begin(c.ctx)
	require.NoError(c.t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(c.ctx)) }()
	_, err = tx.Exec(c.ctx, "SET LOCAL statement_timeout = '"+decodeStatementTimeout+"'")
	require.NoError(c.t, err)
	err = tx.QueryRow(c.ctx, fmt.Sprintf("SELECT %s.%s($1)::text", c.schema, fn), data).Scan(&out)
	return out, err
}

// requireDecodes checks that msgpack_to_jsonb(data) equals want (JSON text)
// as a JSON value, numbers compared exactly.
func (c *decodeConn) requireDecodes(name string, data []byte, want string) {
	c.t.Helper()
	got, err := c.decode("msgpack_to_jsonb", data)
	require.NoError(c.t, err, "%s: msgpack %x", name, truncateBytes(data))
	require.NotNil(c.t, got, name)
	requireSameJSON(c.t, name, want, *got)
	tried, err := c.decode("try_msgpack_to_jsonb", data)
	require.NoError(c.t, err, name)
	require.NotNil(c.t, tried, name)
	requireSameJSON(c.t, name+" (try_)", want, *tried)
}

// requireMalformed checks that msgpack_to_jsonb(data) raises PE006 and
// try_msgpack_to_jsonb returns NULL.
func (c *decodeConn) requireMalformed(name string, data []byte) {
	c.t.Helper()
	got, err := c.decode("msgpack_to_jsonb", data)
	var pgErr *pgconn.PgError
	require.True(c.t, errors.As(err, &pgErr), "%s: msgpack %x: want PE006, got %v (result %v)", name, truncateBytes(data), err, got)
	require.Equal(c.t, "PE006", pgErr.Code, "%s: msgpack %x: %v", name, truncateBytes(data), err)
	require.True(c.t, strings.HasPrefix(pgErr.Message, "msgpack_to_jsonb: "), pgErr.Message)
	tried, err := c.decode("try_msgpack_to_jsonb", data)
	require.NoError(c.t, err, name)
	require.Nil(c.t, tried, "%s: try_msgpack_to_jsonb must return NULL", name)
}

// requireResultOrPE006 checks that data either decodes or raises PE006.
func (c *decodeConn) requireResultOrPE006(name string, data []byte) {
	c.t.Helper()
	got, err := c.decode("msgpack_to_jsonb", data)
	if err == nil {
		require.NotNil(c.t, got, name)
		require.True(c.t, json.Valid([]byte(*got)), name)
		return
	}
	var pgErr *pgconn.PgError
	require.True(c.t, errors.As(err, &pgErr), "%s: msgpack %x: %v", name, truncateBytes(data), err)
	require.Equal(c.t, "PE006", pgErr.Code, "%s: msgpack %x: %v", name, truncateBytes(data), err)
	tried, err := c.decode("try_msgpack_to_jsonb", data)
	require.NoError(c.t, err, name)
	require.Nil(c.t, tried, name)
}

func truncateBytes(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// requireSameJSON compares two JSON texts as values; numbers are compared
// exactly as rationals (jsonb prints 1e+300 in full and has no -0).
func requireSameJSON(t *testing.T, name, want, got string) {
	t.Helper()
	w, err := parseJSON(want)
	require.NoError(t, err, "%s: reference JSON %.200s", name, want)
	g, err := parseJSON(got)
	require.NoError(t, err, "%s: server JSON %.200s", name, got)
	if path, ok := sameJSON(w, g, "$"); !ok {
		require.Failf(t, "msgpack_to_jsonb differs from the Go reference", "%s at %s\nwant %.500s\ngot  %.500s", name, path, want, got)
	}
}

func parseJSON(s string) (any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// sameJSON reports whether two decoded JSON values are equal, numbers
// compared exactly, and the path of the first difference.
func sameJSON(a, b any, path string) (string, bool) { return compareJSON(a, b, path, nil) }

// compareJSON reports whether the decoded JSON values a and b are equal
// (numbers compared exactly), and the path of the first difference. keys,
// when not nil, rewrites every object's keys on both sides before they are
// compared.
func compareJSON(a, b any, path string, keys func(map[string]any) map[string]any) (string, bool) {
	switch a := a.(type) {
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return path, false
		}
		ra, ok1 := new(big.Rat).SetString(string(a))
		rb, ok2 := new(big.Rat).SetString(string(b))
		return path, ok1 && ok2 && ra.Cmp(rb) == 0
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok {
			return path, false
		}
		if keys != nil {
			a, b = keys(a), keys(b)
		}
		if len(a) != len(b) {
			return path, false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok {
				return path + "." + k, false
			}
			if p, ok := compareJSON(va, vb, path+"."+k, keys); !ok {
				return p, false
			}
		}
		return path, true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return path, false
		}
		for i := range a {
			if p, ok := compareJSON(a[i], b[i], fmt.Sprintf("%s[%d]", path, i), keys); !ok {
				return p, false
			}
		}
		return path, true
	default:
		return path, a == b
	}
}

// renderJSON is the Go reference: it decodes one msgpack value with the
// msgpack library and writes its JSON by the rules of msgpack_to_jsonb. Like
// msgpack_to_jsonb it also rejects, beyond the msgpack grammar, a string
// that is not UTF-8 or holds NUL (PostgreSQL text cannot), nesting of
// non-empty arrays and maps deeper than 512, map keys that are non-empty
// arrays or maps nested more than 4 deep, and a timestamp with more than
// 999999999 nanoseconds.
func renderJSON(data []byte) (string, error) {
	r := bytes.NewReader(data)
	// A bytes.Reader is an io.ByteScanner: the decoder reads it directly,
	// without a buffer, so r.Len() is what is left of the input.
	rd := &renderer{d: msgpack.NewDecoder(r), r: r}
	var sb strings.Builder
	if err := rd.value(&sb, 0, 0); err != nil {
		return "", err
	}
	if r.Len() > 0 {
		return "", errors.New("trailing bytes")
	}
	return sb.String(), nil
}

// renderer is the state of renderJSON.
type renderer struct {
	d *msgpack.Decoder
	r *bytes.Reader
}

// maxDecodeDepth is msgpack_to_jsonb's limit on nested non-empty arrays and
// maps.
const maxDecodeDepth = 512

// maxKeyNesting is msgpack_to_jsonb's limit on map keys that are non-empty
// arrays or maps, one inside another: each level writes the text of the
// one inside it as a JSON string, which doubles its escaping.
const maxKeyNesting = 4

// need fails when the input has fewer than n bytes left (before a read of
// n bytes that the msgpack library would allocate in one piece).
func (rd *renderer) need(n int) error {
	if n < 0 || n > rd.r.Len() {
		return fmt.Errorf("%d bytes declared, %d left", n, rd.r.Len())
	}
	return nil
}

// value renders one value; depth is the number of non-empty containers
// around it, keys the number of map keys it is in (itself included when it
// is one).
func (rd *renderer) value(sb *strings.Builder, depth, keys int) error {
	d := rd.d
	code, err := d.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case code == msgpcode.Nil:
		sb.WriteString("null")
		return d.DecodeNil()
	case code == msgpcode.False || code == msgpcode.True:
		v, err := d.DecodeBool()
		sb.WriteString(strconv.FormatBool(v))
		return err
	case msgpcode.IsFixedNum(code) || code == msgpcode.Int8 || code == msgpcode.Int16 ||
		code == msgpcode.Int32 || code == msgpcode.Int64:
		v, err := d.DecodeInt64()
		sb.WriteString(strconv.FormatInt(v, 10))
		return err
	case code == msgpcode.Uint8 || code == msgpcode.Uint16 || code == msgpcode.Uint32 || code == msgpcode.Uint64:
		v, err := d.DecodeUint64()
		sb.WriteString(strconv.FormatUint(v, 10))
		return err
	case code == msgpcode.Float:
		v, err := d.DecodeFloat32()
		sb.WriteString(renderFloat(float64(v), 32))
		return err
	case code == msgpcode.Double:
		v, err := d.DecodeFloat64()
		sb.WriteString(renderFloat(v, 64))
		return err
	case msgpcode.IsString(code):
		v, err := d.DecodeString()
		if err != nil {
			return err
		}
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			return errors.New("string not UTF-8 or with NUL")
		}
		writeJSONString(sb, v)
		return nil
	case msgpcode.IsBin(code):
		n, err := d.DecodeBytesLen()
		if err != nil {
			return err
		}
		if err := rd.need(n); err != nil {
			return err
		}
		v := make([]byte, n)
		if err := d.ReadFull(v); err != nil {
			return err
		}
		writeJSONString(sb, base64.StdEncoding.EncodeToString(v))
		return nil
	case code == msgpcode.Array16 || code == msgpcode.Array32 || msgpcode.IsFixedArray(code):
		n, err := d.DecodeArrayLen()
		if err != nil {
			return err
		}
		if err := checkNesting(n, depth, keys); err != nil {
			return err
		}
		sb.WriteByte('[')
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			if err := rd.value(sb, depth+1, keys); err != nil {
				return err
			}
		}
		sb.WriteByte(']')
		return nil
	case code == msgpcode.Map16 || code == msgpcode.Map32 || msgpcode.IsFixedMap(code):
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		if err := checkNesting(n, depth, keys); err != nil {
			return err
		}
		sb.WriteByte('{')
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			var key strings.Builder
			if err := rd.value(&key, depth+1, keys+1); err != nil {
				return err
			}
			k := key.String()
			if !strings.HasPrefix(k, `"`) { // not a string: the string of its JSON text
				var b strings.Builder
				writeJSONString(&b, k)
				k = b.String()
			}
			sb.WriteString(k)
			sb.WriteByte(':')
			if err := rd.value(sb, depth+1, keys); err != nil {
				return err
			}
		}
		sb.WriteByte('}')
		return nil
	case msgpcode.IsExt(code):
		id, n, err := d.DecodeExtHeader()
		if err != nil {
			return err
		}
		if err := rd.need(n); err != nil {
			return err
		}
		buf := make([]byte, n)
		if err := d.ReadFull(buf); err != nil {
			return err
		}
		if id == -1 {
			s, err := timestampText(buf)
			if err != nil {
				return err
			}
			writeJSONString(sb, s)
			return nil
		}
		if subject, ok := personalSubject(id, buf); ok {
			sb.WriteString(`{"personal":"encrypted","subject":`)
			writeJSONString(sb, subject)
			sb.WriteByte('}')
			return nil
		}
		fmt.Fprintf(sb, `{"ext":%d,"data":`, id)
		writeJSONString(sb, base64.StdEncoding.EncodeToString(buf))
		sb.WriteByte('}')
		return nil
	default:
		return fmt.Errorf("unexpected code 0x%x", code)
	}
}

// personalSubject returns the subject of the data of an extension that is
// an encrypted personal field as msgpack_to_jsonb recognises one: type 80,
// format 1, a subject of valid UTF-8 without NUL, room for the nonce and
// the tag.
func personalSubject(id int8, data []byte) (string, bool) {
	if id != 80 || len(data) < 31 || data[0] != 1 {
		return "", false
	}
	n := int(binary.BigEndian.Uint16(data[1:3]))
	if len(data) < 31+n {
		return "", false
	}
	subject := data[3 : 3+n]
	if !utf8.Valid(subject) || bytes.IndexByte(subject, 0) >= 0 {
		return "", false
	}
	return string(subject), true
}

// checkNesting rejects a non-empty array or map (of n items) at depth, in
// keys map keys, beyond msgpack_to_jsonb's limits.
func checkNesting(n, depth, keys int) error {
	switch {
	case n > 0 && depth >= maxDecodeDepth:
		return errors.New("nesting too deep")
	case n > 0 && keys > maxKeyNesting:
		return errors.New("map keys that are arrays or maps nested too deep")
	}
	return nil
}

// timestampText renders the data of a msgpack timestamp extension as
// msgpack_to_jsonb does: RFC 3339 in UTC, fractional seconds only when not
// zero. The seconds are reduced modulo 400 Gregorian years (which repeat
// exactly) before time.Unix sees them, so that the whole int64 range
// renders correctly (time.Time does not cover it).
func timestampText(b []byte) (string, error) {
	var secs, nanos int64
	switch len(b) {
	case 4:
		secs = int64(binary.BigEndian.Uint32(b))
	case 8:
		x := binary.BigEndian.Uint64(b)
		secs, nanos = int64(x&(1<<34-1)), int64(x>>34)
	case 12:
		secs, nanos = int64(binary.BigEndian.Uint64(b[4:])), int64(binary.BigEndian.Uint32(b))
	default:
		return "", fmt.Errorf("timestamp of %d bytes", len(b))
	}
	if nanos > 999999999 {
		return "", fmt.Errorf("timestamp with %d nanoseconds", nanos)
	}
	const cycle = 146097 * 86400 // seconds in 400 Gregorian years
	cycles := secs / cycle
	if secs%cycle < 0 {
		cycles--
	}
	tm := time.Unix(secs-cycles*cycle, nanos).UTC()
	year := int64(tm.Year()) + 400*cycles
	sign := ""
	if year < 0 {
		sign, year = "-", -year
	}
	return fmt.Sprintf("%s%04d%s", sign, year, tm.Format("-01-02T15:04:05.999999999Z07:00")), nil
}

func renderFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return `"NaN"`
	case math.IsInf(f, 1):
		return `"Infinity"`
	case math.IsInf(f, -1):
		return `"-Infinity"`
	}
	// PostgreSQL writes the shortest decimal strictly inside the interval
	// of the numbers that read back as f, the nearest of that many digits,
	// a tie rounded to even. Go may write a decimal on the interval's edge
	// (float32 -46450888: Go -4.645089e+07, which reads back as f only as a
	// tie to even; PostgreSQL -4.6450888e+07), or the other of two equally
	// near (float32 2^-12: Go 0.00024414063, PostgreSQL 0.00024414062).
	if s, ok := shortestInside(f, bits); ok {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// shortestInside is the decimal of the fewest digits strictly between the
// midpoints from f to its neighbours at its width (bits), the nearest to f
// of those. The nearest decimal of that many digits may lie outside while
// the one next to it lies inside: when f is a power of two, its neighbour
// below is half as far as the one above (float64 2^544: PostgreSQL
// 5.758609657015292e+163, whose nearest 16 digits 5.758609657015291e+163
// are too low).
func shortestInside(f float64, bits int) (string, bool) {
	var lo, hi float64
	if bits == 32 {
		lo = float64(math.Nextafter32(float32(f), float32(math.Inf(-1))))
		hi = float64(math.Nextafter32(float32(f), float32(math.Inf(1))))
	} else {
		lo, hi = math.Nextafter(f, math.Inf(-1)), math.Nextafter(f, math.Inf(1))
	}
	if f == 0 || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return "", false
	}
	x := new(big.Rat).SetFloat64(f)
	half := big.NewRat(1, 2)
	mlo := new(big.Rat).Mul(new(big.Rat).Add(new(big.Rat).SetFloat64(lo), x), half)
	mhi := new(big.Rat).Mul(new(big.Rat).Add(new(big.Rat).SetFloat64(hi), x), half)
	for digits := 1; digits <= 17; digits++ {
		// The nearest decimal of that many digits, as sign, digits and
		// exponent, and the ones a unit in its last digit away.
		s := strconv.FormatFloat(f, 'e', digits-1, 64)
		mantissa, exponent, _ := strings.Cut(s, "e")
		sign := ""
		if strings.HasPrefix(mantissa, "-") {
			sign, mantissa = "-", mantissa[1:]
		}
		m, ok1 := new(big.Int).SetString(strings.Replace(mantissa, ".", "", 1), 10)
		e, err := strconv.Atoi(exponent)
		if !ok1 || err != nil {
			panic("unexpected FormatFloat output " + s)
		}
		best, bestDistance := "", new(big.Rat)
		for _, step := range []int64{0, -1, 1} {
			text := fmt.Sprintf("%s%se%d", sign, new(big.Int).Add(m, big.NewInt(step)), e-(digits-1))
			d, _ := new(big.Rat).SetString(text)
			if d.Cmp(mlo) <= 0 || d.Cmp(mhi) >= 0 {
				continue
			}
			distance := new(big.Rat).Abs(new(big.Rat).Sub(d, x))
			if best == "" || distance.Cmp(bestDistance) < 0 {
				best, bestDistance = text, distance
			}
		}
		if best != "" {
			return best, true
		}
	}
	return "", false
}

func writeJSONString(sb *strings.Builder, s string) {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	sb.Write(b)
}

// box wraps one value as an event type, so that the project's codec
// encodes it (as the map {"V": value}).
type box[T any] struct{ V T }

// encodeBox encodes v with es.Registry, as the store would.
func encodeBox[T any](t testing.TB, v T) []byte {
	t.Helper()
	r := es.NewRegistry()
	require.NoError(t, es.Register[box[T]](r, "box"))
	_, data, err := r.Encode(box[T]{V: v})
	require.NoError(t, err)
	return data
}

type decodeInner struct {
	Name  string
	Count int
	Tags  []string
	When  time.Time
	ID    uuid.UUID
	Inner *decodeInner
}

type decodeAll struct {
	S        string
	Unicode  string
	Int      int
	Int8     int8
	Int16    int16
	Int32    int32
	Int64    int64
	Uint     uint
	Uint8    uint8
	Uint16   uint16
	Uint32   uint32
	Uint64   uint64
	F32      float32
	F64      float64
	B        bool
	Nil      *int
	Ptr      *int
	Bytes    []byte
	Ints     []int
	Map      map[string]any
	IntKeys  map[int]string
	ID       uuid.UUID
	IDs      []uuid.UUID
	At       time.Time
	Zero     time.Time
	Nested   decodeInner
	Children []decodeInner
	Any      any
}

type namedCase struct {
	name string
	data []byte
}

// decodeCorpus encodes every kind of value with the project's codec and,
// for extensions and non-string keys, builds raw msgpack.
func decodeCorpus(t testing.TB) []namedCase {
	t.Helper()
	var cs []namedCase
	add := func(name string, data []byte) { cs = append(cs, namedCase{name, data}) }

	for _, s := range []string{"", "a", "hello", "héllo wörld ✓ 日本語 🎉 \u00e9\u0301", "quote \" backslash \\ newline \n tab \t ctl \x01\x1f del \x7f",
		strings.Repeat("x", 31), strings.Repeat("y", 32), strings.Repeat("z", 255), strings.Repeat("é", 128),
		strings.Repeat("w", 65535), strings.Repeat("v", 65536), strings.Repeat("日本", 20000)} {
		add(fmt.Sprintf("string len %d", len(s)), encodeBox(t, s))
	}
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxInt64, math.MinInt64,
		-1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MaxInt32, math.MaxInt32 + 1} {
		add(fmt.Sprintf("int64 %d", v), encodeBox(t, v))
	}
	for _, v := range []uint64{0, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxInt64, 1 << 63, math.MaxUint64} {
		add(fmt.Sprintf("uint64 %d", v), encodeBox(t, v))
	}
	add("int8", encodeBox(t, []int8{0, 1, -1, 127, -128, -33}))
	add("int16", encodeBox(t, []int16{0, 255, 256, -129, math.MaxInt16, math.MinInt16}))
	add("int32", encodeBox(t, []int32{65535, 65536, math.MaxInt32, math.MinInt32}))
	add("uint8", encodeBox(t, []uint16{0, 255, 256, math.MaxUint16}))
	add("uint32", encodeBox(t, []uint32{0, 65536, math.MaxUint32}))
	for _, f := range []float64{0, 0.1, 1.5, -2.25, 123456.789, 1e300, -1e300, 1e-300, 5e-324, 2.2250738585072014e-308,
		math.MaxFloat64, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 1e21, 1e20, 1e-7, math.Pi, 9007199254740993} {
		add(fmt.Sprintf("float64 %v", f), encodeBox(t, f))
	}
	for _, f := range []float32{0, 0.1, 1.1, -3.5, 3.4028235e38, 1e-45, 1.17549435e-38, 16777217, float32(math.Copysign(0, -1)),
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e10, math.Pi} {
		add(fmt.Sprintf("float32 %v", f), encodeBox(t, f))
	}
	add("bools", encodeBox(t, []bool{true, false}))
	add("nil pointer", encodeBox[*int](t, nil))
	seven := 7
	add("pointer", encodeBox(t, &seven))
	for _, n := range []int{0, 5, 255, 256, 300, 65535, 65536, 70000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		add(fmt.Sprintf("bytes len %d", n), encodeBox(t, b))
	}
	for _, n := range []int{0, 3, 15, 16, 17, 65535, 65536, 70000} {
		ints := make([]int, n)
		strs := make([]string, n)
		m := make(map[string]int, n)
		mi := make(map[int]string, n)
		for i := range n {
			ints[i] = i * 3
			strs[i] = strconv.Itoa(i)
			m["k"+strconv.Itoa(i)] = i
			mi[i-n/2] = "v" + strconv.Itoa(i)
		}
		add(fmt.Sprintf("[]int len %d", n), encodeBox(t, ints))
		add(fmt.Sprintf("map[string]int len %d", n), encodeBox(t, m))
		if n <= 17 {
			add(fmt.Sprintf("[]string len %d", n), encodeBox(t, strs))
			add(fmt.Sprintf("map[int]string len %d", n), encodeBox(t, mi))
		}
	}
	id := uuid.MustParse("6f1c2f4e-8a0b-4c5d-9e7f-0123456789ab")
	add("uuid", encodeBox(t, id))
	add("uuids", encodeBox(t, []uuid.UUID{id, uuid.Nil, uuid.Max}))
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Unix(1, 0), time.Unix(1<<32-1, 0), // fixext4
		time.Date(2026, 11, 22, 19, 39, 25, 123456789, time.UTC), // fixext8
		time.Date(2026, 11, 22, 19, 39, 25, 100000000, time.UTC),
		time.Date(2026, 11, 22, 19, 39, 25, 1, time.UTC),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),      // after 2106: fixext8
		time.Date(2600, 2, 29, 12, 0, 0, 5000, time.UTC), // after 2514: ext8 12 bytes
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500000000, time.UTC), // before 1970: 12 bytes
		time.Date(1900, 2, 28, 1, 2, 3, 0, time.UTC),
		time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2024, 2, 29, 23, 0, 0, 0, time.FixedZone("X", 5*3600)), // a zone: UTC in the output
	} {
		add("time "+tm.String(), encodeBox(t, tm))
	}
	add("zero time", encodeBox(t, time.Time{}))
	when := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	nested := decodeInner{Name: "n", Count: 2, Tags: []string{"a"}, When: when, ID: id,
		Inner: &decodeInner{Name: "deeper", Inner: &decodeInner{Name: "deepest"}}}
	add("nested", encodeBox(t, nested))
	ptr := 42
	all := decodeAll{
		S: "s", Unicode: "ünï ✓", Int: -5, Int8: -100, Int16: -1000, Int32: -100000, Int64: math.MinInt64,
		Uint: 5, Uint8: 200, Uint16: 60000, Uint32: 4000000000, Uint64: math.MaxUint64,
		F32: 0.1, F64: 0.1, B: true, Ptr: &ptr, Bytes: []byte("bytes"), Ints: []int{1, 2, 3},
		Map:     map[string]any{"a": 1, "b": []any{"x", 2.5, nil, true}, "c": map[string]any{"d": "e"}},
		IntKeys: map[int]string{1: "one", -2: "minus two", 300: "three hundred"},
		ID:      id, IDs: []uuid.UUID{id}, At: when, Nested: nested,
		Children: []decodeInner{nested, {Name: "second"}}, Any: map[string]any{"k": []any{1, "2"}},
	}
	add("all fields", encodeBox(t, all))
	add("map[bool]int", encodeBox(t, map[bool]int{true: 1, false: 0}))

	// Raw msgpack: extensions of every size, non-string keys.
	raw := func(name string, f func(e *msgpack.Encoder) error) {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		require.NoError(t, f(e), name)
		add(name, buf.Bytes())
	}
	for _, n := range []int{1, 2, 4, 8, 16, 0, 3, 17, 255, 256, 300, 65535, 65536, 70000} {
		for _, typ := range []int8{5, -5, 127, -128} {
			raw(fmt.Sprintf("ext type %d len %d", typ, n), func(e *msgpack.Encoder) error {
				if err := e.EncodeExtHeader(typ, n); err != nil {
					return err
				}
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(i + int(typ))
				}
				_, err := e.Writer().Write(b)
				return err
			})
		}
	}
	// Encrypted personal fields (extension 80), well formed and not.
	for _, c := range []struct {
		name    string
		format  byte
		subject string
		length  int // declared subject length; -1: len(subject)
		rest    int // nonce, ciphertext and tag
	}{
		{"personal field", 1, "customer-42", -1, 12 + 5 + 16},
		{"personal field without content", 1, "c-1", -1, 12 + 16},
		{"personal field with quotes and controls", 1, "a\"b\\c\n\x01é", -1, 40},
		{"personal field of format 2", 2, "customer-42", -1, 40},
		{"personal field cut short", 1, "customer-42", -1, 27},
		{"personal field with a long subject length", 1, "customer-42", 200, 40},
		{"personal field with invalid UTF-8", 1, "a\xffb", -1, 40},
		{"personal field with NUL", 1, "a\x00b", -1, 40},
	} {
		n := c.length
		if n < 0 {
			n = len(c.subject)
		}
		data := append([]byte{c.format, byte(n >> 8), byte(n)}, c.subject...)
		data = append(data, bytesRepeat(0xab, c.rest)...)
		raw(c.name, func(e *msgpack.Encoder) error {
			if err := e.EncodeMapLen(1); err != nil {
				return err
			}
			if err := e.EncodeString("Email"); err != nil {
				return err
			}
			if err := e.EncodeExtHeader(80, len(data)); err != nil {
				return err
			}
			_, err := e.Writer().Write(data)
			return err
		})
	}
	raw("ext in a map with a time", func(e *msgpack.Encoder) error {
		if err := e.EncodeMapLen(2); err != nil {
			return err
		}
		if err := e.EncodeString("ext"); err != nil {
			return err
		}
		if err := e.EncodeExtHeader(9, 2); err != nil {
			return err
		}
		if _, err := e.Writer().Write([]byte{1, 2}); err != nil {
			return err
		}
		if err := e.EncodeString("time"); err != nil {
			return err
		}
		return e.EncodeTime(when)
	})
	raw("non-string keys", func(e *msgpack.Encoder) error {
		if err := e.EncodeMapLen(7); err != nil {
			return err
		}
		for _, kv := range [][2]any{{1, "int"}, {-300, "negative"}, {uint64(math.MaxUint64), "uint64"}, {true, "true"}, {false, "false"}, {nil, "nil"}, {"s", "string"}} {
			if err := e.Encode(kv[0]); err != nil {
				return err
			}
			if err := e.Encode(kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	// Timestamps at the ends of the 12-byte form's int64 seconds.
	for _, secs := range []int64{math.MinInt64, math.MinInt64 + 1, -1 << 62, -62135596801, 253402300800, 1 << 62, math.MaxInt64} {
		b := []byte{0xc7, 12, 0xff, 0x3b, 0x9a, 0xc9, 0xff} // 999999999 ns
		add(fmt.Sprintf("timestamp of %d s", secs), binary.BigEndian.AppendUint64(b, uint64(secs)))
	}
	raw("float64 encoded as float32 and back", func(e *msgpack.Encoder) error { return e.EncodeFloat32(16777216) })
	raw("scalar nil", func(e *msgpack.Encoder) error { return e.EncodeNil() })
	raw("scalar string", func(e *msgpack.Encoder) error { return e.EncodeString("top") })
	raw("empty map", func(e *msgpack.Encoder) error { return e.EncodeMapLen(0) })
	raw("map16 with 16 entries", func(e *msgpack.Encoder) error {
		if err := e.EncodeMapLen(16); err != nil {
			return err
		}
		for i := range 16 {
			if err := e.EncodeString(fmt.Sprint("k", i)); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(0); err != nil {
				return err
			}
		}
		return nil
	})
	return cs
}

// TestMsgpackToJSONBMatchesGo proves that msgpack_to_jsonb returns what the
// Go reference renders for every value of the corpus.
func TestMsgpackToJSONBMatchesGo(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	for _, tc := range decodeCorpus(t) {
		want, err := renderJSON(tc.data)
		require.NoError(t, err, tc.name)
		c.requireDecodes(tc.name, tc.data, want)
	}

	// Keys that are containers or extensions: the string of their jsonb text.
	got, err := c.decode("msgpack_to_jsonb", []byte{0x82, 0x92, 0x01, 0x02, 0xa1, 'x', 0x81, 0xa1, 'a', 0x90, 0xa1, 'y'})
	require.NoError(t, err)
	requireSameJSON(t, "container keys", `{"[1, 2]": "x", "{\"a\": []}": "y"}`, *got)
	got, err = c.decode("msgpack_to_jsonb", []byte{0x81, 0xd4, 0x03, 0x07, 0xc0})
	require.NoError(t, err)
	requireSameJSON(t, "extension key", `{"{\"ext\": 3, \"data\": \"Bw==\"}": null}`, *got)

	// The float text does not depend on the session's extra_float_digits.
	for _, f := range []float64{0.1, 1.0 / 3, 1e300, 5e-324} {
		for _, data := range [][]byte{encodeBox(t, f), encodeBox(t, float32(f))} {
			want, err := renderJSON(data)
			require.NoError(t, err)
			for _, digits := range []int{-15, 0, 3} {
				var got string
				tx, err := c.pool.Begin(c.ctx)
				require.NoError(t, err)
				_, err = tx.Exec(c.ctx, fmt.Sprintf("SET LOCAL extra_float_digits = %d", digits))
				require.NoError(t, err)
				require.NoError(t, tx.QueryRow(c.ctx, fmt.Sprintf("SELECT %s.msgpack_to_jsonb($1)::text", c.schema), data).Scan(&got))
				require.NoError(t, tx.Rollback(c.ctx))
				requireSameJSON(t, fmt.Sprintf("%v with extra_float_digits %d", f, digits), want, got)
			}
		}
	}

	// It is PARALLEL SAFE: it runs in a parallel worker (no subtransaction).
	tx, err := c.pool.Begin(c.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.WithoutCancel(c.ctx)) }()
	for _, set := range []string{"SET LOCAL statement_timeout = '" + decodeStatementTimeout + "'", "SET LOCAL parallel_setup_cost = 0",
		"SET LOCAL parallel_tuple_cost = 0", "SET LOCAL max_parallel_workers_per_gather = 2"} {
		_, err = tx.Exec(c.ctx, set)
		require.NoError(t, err)
	}
	if _, err = tx.Exec(c.ctx, "SET LOCAL debug_parallel_query = on"); err != nil { // PostgreSQL 16+
		_, err = tx.Exec(c.ctx, "ROLLBACK; BEGIN; SET LOCAL force_parallel_mode = on; SET LOCAL statement_timeout = '"+decodeStatementTimeout+"'")
		require.NoError(t, err)
	}
	var plan string
	require.NoError(t, tx.QueryRow(c.ctx, fmt.Sprintf("EXPLAIN (COSTS OFF) SELECT %s.msgpack_to_jsonb($1)", c.schema), []byte{0x01}).Scan(&plan))
	require.Contains(t, plan, "Gather", "the query should run in a parallel worker")
	var parallel string
	require.NoError(t, tx.QueryRow(c.ctx, fmt.Sprintf("SELECT %s.msgpack_to_jsonb($1)::text", c.schema),
		[]byte{0x81, 0xa1, 's', 0xa2, 0xc3, 0xa9}).Scan(&parallel))
	requireSameJSON(t, "in a parallel worker", `{"s": "é"}`, parallel)
	_, err = tx.Exec(c.ctx, fmt.Sprintf("SELECT %s.msgpack_to_jsonb($1)::text", c.schema), []byte{0xa2, 0xc3, 0x28})
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "%v", err)
	require.Equal(t, "PE006", pgErr.Code, "invalid UTF-8 in a parallel worker: %v", err)
	require.NoError(t, tx.Rollback(c.ctx))

	// Nesting up to the limit (512) decodes.
	deep := append(bytes.Repeat([]byte{0x91}, 512), 0x01)
	want := strings.Repeat("[", 512) + "1" + strings.Repeat("]", 512)
	c.requireDecodes("512 nested arrays", deep, want)
}

// TestMsgpackToJSONBMalformed proves that malformed input raises PE006 (and
// try_msgpack_to_jsonb returns NULL), never another error or a hang.
func TestMsgpackToJSONBMalformed(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	id := uuid.MustParse("6f1c2f4e-8a0b-4c5d-9e7f-0123456789ab")
	valid := [][]byte{
		encodeBox(t, decodeInner{Name: "naïve", Count: -70000, Tags: []string{"a", strings.Repeat("b", 40)},
			When: time.Date(2026, 11, 22, 19, 39, 25, 123456789, time.UTC), ID: id,
			Inner: &decodeInner{Name: "x", When: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}}),
		encodeBox(t, map[string]any{"f": 0.1, "g": float32(1.5), "u": uint64(math.MaxUint64), "b": []byte{1, 2, 3}, "n": nil}),
		{0xd7, 0xff, 0, 0, 0, 4, 0, 0, 0, 1},                                         // fixext8 timestamp
		{0xc7, 12, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // ext8 timestamp
		{0xc8, 0x00, 0x03, 0x07, 1, 2, 3},                                            // ext16
		{0xde, 0x00, 0x01, 0xa1, 'k', 0xdc, 0x00, 0x02, 0xc3, 0xc2},                  // map16 with array16
	}
	for i, v := range valid {
		want, err := renderJSON(v)
		require.NoError(t, err)
		c.requireDecodes(fmt.Sprintf("valid %d", i), v, want)
		for n := range len(v) {
			c.requireMalformed(fmt.Sprintf("valid %d truncated to %d bytes", i, n), v[:n])
		}
		c.requireMalformed(fmt.Sprintf("valid %d with a trailing byte", i), append(bytes.Clone(v), 0x00))
		c.requireMalformed(fmt.Sprintf("valid %d with trailing garbage", i), append(bytes.Clone(v), 0xc1, 0xff, 0xff))
	}

	for _, tc := range malformedCorpus() {
		_, err := renderJSON(tc.data)
		require.Error(t, err, "%s: the Go reference accepts it", tc.name)
		c.requireMalformed(tc.name, tc.data)
	}
}

// malformedCorpus is malformed msgpack of every kind msgpack_to_jsonb
// rejects.
func malformedCorpus() []namedCase {
	return []namedCase{
		{"empty", []byte{}},
		{"reserved 0xc1", []byte{0xc1}},
		{"reserved 0xc1 in an array", []byte{0x92, 0x01, 0xc1}},
		{"fixstr longer than the input", []byte{0xa5, 'a', 'b', 'c'}},
		{"str8 longer than the input", []byte{0xd9, 0x10, 'a'}},
		{"str16 longer than the input", []byte{0xda, 0xff, 0xff, 'a'}},
		{"str32 of 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"bin32 of 2 GiB", []byte{0xc6, 0x7f, 0xff, 0xff, 0xff, 0}},
		{"ext32 of 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{"array32 of 4G elements", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"map32 of 4G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01}},
		{"array16 with fewer elements", []byte{0xdc, 0x00, 0x03, 0x01, 0x02}},
		{"map with a key and no value", []byte{0x81, 0xa1, 'k'}},
		{"fixmap with more entries than bytes", []byte{0x8f, 0x01, 0x01}},
		{"uint64 cut short", []byte{0xcf, 0xff, 0xff}},
		{"float64 cut short", []byte{0xcb, 0x3f, 0xb9}},
		{"fixext16 cut short", []byte{0xd8, 0x01, 0x00}},
		{"invalid UTF-8", []byte{0xa2, 0xff, 0xfe}},
		{"invalid UTF-8 in a key", []byte{0x81, 0xa1, 0x80, 0x01}},
		{"overlong UTF-8", []byte{0xa2, 0xc0, 0x80}},
		{"NUL in a string", []byte{0xa3, 'a', 0x00, 'b'}},
		{"timestamp of 2 bytes", []byte{0xd5, 0xff, 0x00, 0x00}},
		{"timestamp of 16 bytes", append([]byte{0xd8, 0xff}, make([]byte, 16)...)},
		{"timestamp with 1e9 nanoseconds", []byte{0xc7, 12, 0xff, 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"fixext8 timestamp with too many nanoseconds", []byte{0xd7, 0xff, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0}},
		{"two values", []byte{0x01, 0x02}},
		{"nesting beyond 512", append(bytes.Repeat([]byte{0x91}, 513), 0x01)},
		{"nesting of maps beyond 512", append(bytes.Repeat([]byte{0x81, 0xa0}, 600), 0x01)},
		{"deep nesting, truncated", bytes.Repeat([]byte{0x91}, 100000)},
	}
}

// TestMsgpackToJSONBRandom feeds random bytes and mutations of valid
// payloads: each gives a result or PE006, never another error or a hang.
func TestMsgpackToJSONBRandom(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x6d7367))

	for i := range 300 {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		c.requireResultOrPE006(fmt.Sprintf("random %d", i), b)
	}

	var valid [][]byte
	for _, tc := range append(decodeCorpus(t), containerKeyCorpus()...) {
		if len(tc.data) < 2000 {
			valid = append(valid, tc.data)
		}
	}
	for i := range 300 {
		b := bytes.Clone(valid[rng.IntN(len(valid))])
		for range 1 + rng.IntN(4) {
			switch op := rng.IntN(4); {
			case op == 0 && len(b) > 0: // flip a byte
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			case op == 1 && len(b) > 0: // delete a byte
				j := rng.IntN(len(b))
				b = append(b[:j], b[j+1:]...)
			case op == 2: // insert a byte
				j := rng.IntN(len(b) + 1)
				b = append(b[:j], append([]byte{byte(rng.UintN(256))}, b[j:]...)...)
			default: // an interesting type byte
				if len(b) > 0 {
					b[rng.IntN(len(b))] = []byte{0xc1, 0xdb, 0xdd, 0xdf, 0xc6, 0xc9, 0xd7, 0xff, 0x00, 0x7f}[rng.IntN(10)]
				}
			}
		}
		c.requireResultOrPE006(fmt.Sprintf("mutation %d", i), b)
	}
}

// TestMsgpackToJSONBSpeed reports the cost of msgpack_to_jsonb on a typical
// event against convert_from(...)::jsonb of the same data as JSON text.
func TestMsgpackToJSONBSpeed(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	type order struct {
		OrderID  uuid.UUID
		Customer string
		Email    string
		Amount   int64
		Price    float64
		Items    []string
		Express  bool
		PlacedAt time.Time
		Address  map[string]string
	}
	ev := order{
		OrderID: uuid.MustParse("6f1c2f4e-8a0b-4c5d-9e7f-0123456789ab"), Customer: "Jane Q. Example", Email: "jane@example.com",
		Amount: 12345, Price: 19.99, Items: []string{"sku-1", "sku-22", "sku-333"}, Express: true,
		PlacedAt: time.Date(2026, 11, 22, 19, 39, 25, 123456789, time.UTC),
		Address:  map[string]string{"city": "Springfield", "zip": "12345"},
	}
	data := encodeBox(t, ev)
	want, err := renderJSON(data)
	require.NoError(t, err)
	c.requireDecodes("typical event", data, want)

	const n = 5000
	timeIt := func(expr string, arg any) time.Duration {
		var best time.Duration
		for range 3 {
			start := time.Now()
			_, err := c.pool.Exec(c.ctx, fmt.Sprintf(
				"SELECT count(%s) FROM generate_series(1, %d) AS g, (SELECT $1::bytea AS d) AS s", expr, n), arg)
			require.NoError(t, err)
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
		}
		return best
	}
	decode := timeIt(c.schema+".msgpack_to_jsonb(CASE WHEN g > 0 THEN d END)", data)
	parse := timeIt("convert_from(CASE WHEN g > 0 THEN d END, 'UTF8')::jsonb", []byte(want))
	t.Logf("msgpack_to_jsonb on a %d-byte event: %.1f µs per call; convert_from(...)::jsonb on its %d-byte JSON: %.1f µs; ratio %.1f×",
		len(data), float64(decode.Microseconds())/n, len(want), float64(parse.Microseconds())/n, float64(decode)/float64(parse))
}

// TestCompareJSON checks the comparison the decoder tests rely on: it must
// tell different values apart, and with canonicalKeys treat keys that
// denote the same value as one.
func TestCompareJSON(t *testing.T) {
	t.Parallel()
	parse := func(s string) any {
		v, err := parseJSON(s)
		require.NoError(t, err, s)
		return v
	}
	for _, tc := range []struct {
		a, b      string
		same      bool
		canonical bool
	}{
		{a: `{"a": [1, 2.50, "x"]}`, b: `{"a": [1, 2.5, "x"]}`, same: true},
		{a: `{"a": [1, 2, "x"]}`, b: `{"a": [1, 3, "x"]}`},
		{a: `{"a": 1}`, b: `{"a": 1, "b": 2}`},
		{a: `{"a": 1}`, b: `{"b": 1}`},
		{a: `[1]`, b: `{"1": 1}`},
		{a: `{"1e+2": true}`, b: `{"100": true}`},
		{a: `{"1e+2": true}`, b: `{"100": true}`, same: true, canonical: true},
		{a: `{"1e+2": true}`, b: `{"101": true}`, canonical: true},
	} {
		keys := (func(map[string]any) map[string]any)(nil)
		if tc.canonical {
			keys = canonicalKeys
		}
		_, same := compareJSON(parse(tc.a), parse(tc.b), "$", keys)
		require.Equal(t, tc.same, same, "%s vs %s (canonical keys: %v)", tc.a, tc.b, tc.canonical)
	}
}
