package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// FuzzMsgpackToJSONB feeds msgpack_to_jsonb (schema/code/decode.sql)
// random and mutated bytes. For every input:
//
//   - it returns a result or raises PE006 (any other error, a statement
//     timeout included, or a lost connection fails), within the statement
//     timeout;
//   - try_msgpack_to_jsonb returns NULL exactly when it raises, and the same
//     result otherwise;
//   - it raises exactly when renderJSON (the Go reference, decode_test.go)
//     rejects the input, and otherwise returns the JSON renderJSON writes,
//     compared as by requireSameJSON except for map keys that are not msgpack
//     strings (sameJSONNormalised).
//
// Plain go test runs the seed corpus (the valid values of decodeCorpus and
// containerKeyCorpus, the malformed ones of malformedCorpus and
// keyNestingCorpus, and the files under testdata/fuzz/FuzzMsgpackToJSONB);
// go test -fuzz FuzzMsgpackToJSONB
// fuzzes. The fuzzing workers are separate processes running this test
// binary; shareServerWithFuzzWorkers makes them use the server of the
// process that coordinates them.
func FuzzMsgpackToJSONB(f *testing.F) {
	fz := newFuzzDecoder(f)
	shareServerWithFuzzWorkers(f)

	for _, tc := range decodeCorpus(f) {
		if len(tc.data) <= 1024 { // the large values add time, not coverage
			f.Add(tc.data)
		}
	}
	for _, tc := range malformedCorpus() {
		if len(tc.data) <= 1024 {
			f.Add(tc.data)
		}
	}
	for _, tc := range append(containerKeyCorpus(), keyNestingCorpus()...) {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			t.Skipf("%d bytes: longer than the %d the fuzz target tries", len(data), fuzzMaxInput)
		}
		fz.check(t, data)
	})
}

const (
	// fuzzMaxInput bounds the inputs tried, so that each one decodes well
	// within the statement timeout on a busy machine.
	fuzzMaxInput = 64 << 10
	// fuzzStatementTimeout is the server's limit for one call while
	// fuzzing: a decoder that loops is cancelled by the server and fails
	// the input. It is below the 10 s after which go test -fuzz declares a
	// worker hung.
	fuzzStatementTimeout = "5s"
)

// fuzzing reports whether this process fuzzes (go test -fuzz, as the
// coordinator or a worker), rather than running the seed corpus.
func fuzzing() bool {
	fuzzFlag, workerFlag := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return fuzzFlag != nil && fuzzFlag.Value.String() != "" || workerFlag != nil && workerFlag.Value.String() == "true"
}

// shareServerWithFuzzWorkers points the fuzzing workers at this process's
// PostgreSQL server when this process coordinates go test -fuzz: it sets
// ES_TEST_DATABASE_URL (unless already set) to the server's maintenance
// database, and the workers, which inherit the environment when the
// fuzzing starts, then create their databases there (pgtest drops them as
// each worker exits) instead of each starting a throwaway cluster. The
// server outlives the workers: this process removes it when its tests are
// done. In any other run it does nothing.
func shareServerWithFuzzWorkers(f *testing.F) {
	f.Helper()
	fuzzFlag, workerFlag := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	if fuzzFlag == nil || workerFlag == nil || fuzzFlag.Value.String() == "" || workerFlag.Value.String() == "true" {
		return
	}
	if os.Getenv(pgtest.EnvDatabaseURL) != "" {
		return
	}
	require.NoError(f, os.Setenv(pgtest.EnvDatabaseURL, pgtest.AdminConnString(f)))
}

// fuzzDecoder calls the decoding functions of one schema through a pool
// whose connections have a statement timeout.
type fuzzDecoder struct {
	pool   *pgxpool.Pool
	schema string
}

func newFuzzDecoder(f *testing.F) *fuzzDecoder {
	f.Helper()
	_, schema := pgtest.NewSchema(f)
	config, err := pgxpool.ParseConfig(pgtest.ConnString(f))
	require.NoError(f, err)
	// When plain go test runs the seed corpus, no hang detector is in the
	// way: the generous limit of the other decoder tests, for a busy machine.
	config.ConnConfig.RuntimeParams["statement_timeout"] = decodeStatementTimeout
	if fuzzing() {
		config.ConnConfig.RuntimeParams["statement_timeout"] = fuzzStatementTimeout
	}
	config.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), config)
	require.NoError(f, err)
	f.Cleanup(pool.Close)
	return &fuzzDecoder{pool: pool, schema: schema}
}

// call returns fn(data) as text (nil for SQL NULL).
func (fz *fuzzDecoder) call(ctx context.Context, fn string, data []byte) (*string, error) {
	var out *string
	err := fz.pool.QueryRow(ctx, "SELECT "+fz.schema+"."+fn+"($1)::text", data).Scan(&out)
	return out, err
}

// check proves the properties listed on FuzzMsgpackToJSONB for one input.
func (fz *fuzzDecoder) check(t *testing.T, data []byte) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	want, refErr := renderJSON(data)

	got, err := fz.call(ctx, "msgpack_to_jsonb", data)
	tried, tryErr := fz.call(ctx, "try_msgpack_to_jsonb", data)
	require.NoError(t, tryErr, "try_msgpack_to_jsonb of %x", truncateBytes(data))
	if err != nil {
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "msgpack_to_jsonb of %x: %v", truncateBytes(data), err)
		require.Equal(t, "PE006", pgErr.Code, "msgpack_to_jsonb of %x: %v", truncateBytes(data), err)
		require.True(t, strings.HasPrefix(pgErr.Message, "msgpack_to_jsonb: "), pgErr.Message)
		require.Nil(t, tried, "try_msgpack_to_jsonb of %x must be NULL: msgpack_to_jsonb raises %v", truncateBytes(data), err)
		require.Error(t, refErr, "msgpack_to_jsonb of %x raises %v; the Go reference renders %.300s",
			truncateBytes(data), err, want)
		return
	}
	require.NotNil(t, got)
	require.NotNil(t, tried, "try_msgpack_to_jsonb of %x is NULL, msgpack_to_jsonb is %.300s", truncateBytes(data), *got)
	require.Equal(t, *got, *tried, "try_msgpack_to_jsonb and msgpack_to_jsonb of %x", truncateBytes(data))
	require.NoError(t, refErr, "msgpack_to_jsonb of %x returns %.300s; the Go reference rejects it", truncateBytes(data), *got)
	w, err := parseJSON(want)
	require.NoError(t, err, "reference JSON %.300s", want)
	g, err := parseJSON(*got)
	require.NoError(t, err, "server JSON %.300s", *got)
	if path, ok := sameJSONNormalised(w, g, "$"); !ok {
		require.Failf(t, "msgpack_to_jsonb differs from the Go reference",
			"msgpack %x at %s\nwant %.500s\ngot  %.500s", truncateBytes(data), path, want, *got)
	}
}

// sameJSONNormalised is sameJSON, except that object keys are compared by
// their canonical form (canonicalKey). msgpack_to_jsonb turns a map key
// that is not a string into the string of its jsonb text, which the
// reference cannot reproduce exactly: jsonb prints numbers in plain
// notation (1e+300 as 1 followed by 300 zeros), puts ", " and ": " between
// items and orders an object's keys by length first; the reference writes
// Go's JSON. Both denote the same value, so the keys are compared as values.
// (A map holding both a non-string key and a string key equal to the
// reference's text of it would differ; random bytes do not produce that.)
func sameJSONNormalised(a, b any, path string) (string, bool) {
	return compareJSON(a, b, path, canonicalKeys)
}

// canonicalKeys returns m with its keys replaced by canonicalKey.
func canonicalKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[canonicalKey(k)] = v
	}
	return out
}

// canonicalKey is the canonical JSON text of the value k holds when k is
// the JSON text of a number, bool, null, array or object, and k itself
// otherwise.
func canonicalKey(k string) string {
	// "011" is not JSON, although it starts with the number 0; "\n0" is
	// (JSON allows whitespace around a value), but jsonb never writes a
	// key's text with whitespace around it, so that key is a string.
	if strings.Trim(k, " \t\n\r") != k || !json.Valid([]byte(k)) {
		return k
	}
	v, err := parseJSON(k)
	if err != nil {
		return k
	}
	if _, isString := v.(string); isString {
		return k
	}
	return canonicalJSON(v)
}

// canonicalJSON writes v (from parseJSON) with numbers as exact rationals,
// object keys canonical and sorted, and no spaces.
func canonicalJSON(v any) string {
	switch v := v.(type) {
	case json.Number:
		r, ok := new(big.Rat).SetString(string(v))
		if !ok {
			return string(v)
		}
		return r.RatString()
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = canonicalJSON(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case map[string]any:
		m := canonicalKeys(v)
		keys := slices.Sorted(maps.Keys(m))
		parts := make([]string, len(keys))
		for i, k := range keys {
			kb, _ := json.Marshal(k)
			parts[i] = string(kb) + ":" + canonicalJSON(m[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
