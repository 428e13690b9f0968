package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/schema"
)

// This file proves that nothing but pg_catalog runs inside the decoding
// functions (schema/code/decode.sql), whoever calls them and whatever their
// search_path: a login that may create objects in a schema (public, or its
// own pg_temp) must not be able to run code as the superuser who decodes.

// decodeFunctions are the functions of decode.sql.
var decodeFunctions = []string{"msgpack_to_jsonb", "try_msgpack_to_jsonb", "msgpack_float_text"}

// TestMsgpackToJSONBSearchPath proves the two defences of decode.sql. In a
// database of its own, public gets an operator for every operator name and
// pair of types the bodies could use and a function for every signature of
// every function they call, and each of them raises "trap ran"; then:
//
//   - each function pins search_path to pg_catalog, pg_temp: in a session
//     whose search_path is pg_temp, public, pg_catalog, with types named
//     text, bytea, jsonb, json, float8 and float4 in its pg_temp, every
//     input decodes as in a clean session and nothing planted runs;
//   - each body resolves in pg_catalog alone, which would protect it were
//     the SET clause lost: every function call names pg_catalog (checked
//     in the source), and every operator has operands of exactly the types
//     of one of pg_catalog's. A copy of decode.sql whose search_path is
//     pg_catalog, public, pg_temp decodes every input as the original: an
//     operator whose operands needed a cast to reach pg_catalog's would
//     have found an exact match in public instead.
func TestMsgpackToJSONBSearchPath(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 5*time.Minute)
	connString := migratedDatabase(t, ctx) // schema "es"
	admin := connect(t, ctx, connString)

	// The functions pin search_path.
	for _, name := range decodeFunctions {
		var config []string
		require.NoError(t, admin.QueryRow(ctx, `SELECT coalesce(proconfig, '{}') FROM pg_proc
			WHERE pronamespace = 'es'::regnamespace AND proname = $1`, name).Scan(&config))
		if !slices.Contains(config, "search_path=pg_catalog, pg_temp") {
			t.Errorf("%s does not pin search_path = pg_catalog, pg_temp: its settings are %v", name, config)
		}
	}

	// Every function call in the bodies names pg_catalog (or the schema).
	source := renderDecodeSQL(t, "es")
	for _, call := range unqualifiedCalls(source) {
		t.Errorf("decode.sql calls %s( without naming its schema: write pg_catalog.%s(", call, call)
	}

	// A copy whose search_path puts public right after pg_catalog, installed
	// before the traps so that installing it runs none.
	pinned := "SET search_path = pg_catalog, pg_temp"
	if strings.Count(source, pinned) != len(decodeFunctions) {
		t.Errorf("decode.sql has %q %d times, want once per function (%d)", pinned, strings.Count(source, pinned), len(decodeFunctions))
	}
	copySQL := strings.ReplaceAll(renderDecodeSQL(t, "exactcopy"), pinned, "SET search_path = pg_catalog, public, pg_temp")
	_, err := admin.Exec(ctx, "CREATE SCHEMA exactcopy")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, copySQL)
	require.NoError(t, err)

	plantTraps(t, ctx, admin, source)

	// The reference: the es functions in a session with the default
	// search_path ("$user", public, after pg_catalog).
	clean := connect(t, ctx, connString)
	// The attacked session: public and pg_temp first, pg_temp holding types
	// named text, bytea, jsonb, json, float8 and float4.
	attacked := connect(t, ctx, connString)
	_, err = attacked.Exec(ctx, `
		CREATE TYPE pg_temp.text AS (x int);
		CREATE TYPE pg_temp.bytea AS (x int);
		CREATE TYPE pg_temp.jsonb AS (x int);
		CREATE TYPE pg_temp.json AS (x int);
		CREATE TYPE pg_temp.float8 AS (x int);
		CREATE TYPE pg_temp.float4 AS (x int);
		SET search_path = pg_temp, public, pg_catalog`)
	require.NoError(t, err)

	inputs := searchPathInputs(t)
	for _, digits := range []int{1, 0} { // 0: msgpack_float_text runs
		for _, conn := range []*pgx.Conn{clean, attacked} {
			_, err := conn.Exec(ctx, fmt.Sprintf("SET extra_float_digits = %d", digits))
			require.NoError(t, err)
		}
		for _, tc := range inputs {
			for _, fn := range decodeFunctions[:2] {
				want := decodeOutcome(ctx, clean, "es."+fn, tc.data)
				require.NotContains(t, want, "trap ran", "%s on a clean connection", fn)
				got := decodeOutcome(ctx, attacked, "es."+fn, tc.data)
				require.Equal(t, want, got, "%s(%s) with extra_float_digits %d, search_path pg_temp, public, pg_catalog",
					fn, tc.name, digits)
				got = decodeOutcome(ctx, clean, "exactcopy."+fn, tc.data)
				require.Equal(t, want, got, "%s(%s) with extra_float_digits %d, resolved in pg_catalog, public",
					fn, tc.name, digits)
			}
		}
	}
}

// decodeOutcome returns fn(data) as text, or its error as SQLSTATE and
// message.
func decodeOutcome(ctx context.Context, conn *pgx.Conn, fn string, data []byte) string {
	var out *string
	err := conn.QueryRow(ctx, "SELECT "+fn+"($1)::pg_catalog.text", data).Scan(&out)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return "error " + pgErr.Code + ": " + pgErr.Message
	case err != nil:
		return "error: " + err.Error()
	case out == nil:
		return "NULL"
	}
	return *out
}

// searchPathInputs are inputs that take every branch of msgpack_to_jsonb,
// its errors included.
func searchPathInputs(t *testing.T) []namedCase {
	t.Helper()
	var cs []namedCase
	for _, tc := range decodeCorpus(t) {
		if len(tc.data) <= 4096 { // the large ones take the same branches
			cs = append(cs, tc)
		}
	}
	cs = append(cs, malformedCorpus()...)
	cs = append(cs, containerKeyCorpus()...)
	cs = append(cs, keyNestingCorpus()...)
	cs = append(cs, []namedCase{
		{"str8 with NUL", mp{}.append(0xd9, 40).append([]byte(strings.Repeat("a", 39) + "\x00")...)},
		{"str8 not UTF-8", mp{}.append(0xd9, 33).append([]byte(strings.Repeat("a", 32) + "\xff")...)},
		{"str16 to escape", mp{}.str(strings.Repeat(`"\`, 200))},
		{"fixstr with control characters", mp{}.str("a\x01\x1f")},
		{"float keys", mp{}.mapHeader(4).float64(0.1).uint(1).float64(math.NaN()).uint(2).
			append(0xca, 0x3d, 0xcc, 0xcc, 0xcd).uint(3).append(0xca, 0x7f, 0x80, 0, 0).uint(4)},
		{"subnormal floats", mp{}.arrayHeader(2).float64(5e-324).append(0xca, 0, 0, 0, 1)},
		{"integer keys of every width", mp{}.mapHeader(5).append(0xcc, 200).uint(1).append(0xd0, 0x80).uint(2).
			append(0xce, 0xff, 0xff, 0xff, 0xff).uint(3).append(0xcf, 0xff, 0, 0, 0, 0, 0, 0, 0).uint(4).append(0xe0).uint(5)},
		{"timestamp keys", mp{}.mapHeader(3).timestamp8(1, 999999999).uint(1).append(0xd6, 0xff, 0, 0, 0, 1).uint(2).
			append(0xc7, 12, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff).uint(3)},
		{"bin and ext keys", mp{}.mapHeader(2).bin([]byte{1}).uint(1).ext(100, []byte{1, 2, 3}).uint(2)},
		{"array16 and map16 under a key", mp{}.mapHeader(1).append(0xdc, 0, 1, 0xde, 0, 1, 1, 2).uint(3)},
		{"map32 key", mp{}.mapHeader(1).append(0xdf, 0, 0, 0, 1, 1, 2).uint(3)},
		{"array16 nested too deep", append(mp(strings.Repeat("\x91", 512)), 0xdc, 0, 1, 1)},
	}...)
	return cs
}

// renderDecodeSQL returns decode.sql with schema for its template variable.
func renderDecodeSQL(t *testing.T, schemaName string) string {
	t.Helper()
	data, err := fs.ReadFile(schema.Code(), "decode.sql")
	require.NoError(t, err)
	src := string(data)
	header := `{{- $s := .schema | default "es" -}}`
	require.True(t, strings.HasPrefix(src, header), "decode.sql starts with %s", header)
	src = strings.ReplaceAll(strings.TrimPrefix(src, header), "{{ $s }}", schemaName)
	require.NotContains(t, src, "{{", "decode.sql uses template syntax renderDecodeSQL does not know")
	return src
}

// unqualifiedCalls returns the functions that the bodies of sql (between
// $$ and $$) call without naming a schema. Comments and string literals are
// left out first; SQL keywords followed by "(" and type modifiers are not
// calls.
func unqualifiedCalls(sql string) []string {
	notCalls := map[string]bool{"in": true, "and": true, "or": true, "not": true, "then": true, "else": true,
		"when": true, "greatest": true, "least": true, "bit": true, "return": true, "if": true, "elsif": true}
	var calls []string
	parts := strings.Split(sql, "$$")
	call := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_$]*)\s*\(`)
	for i := 1; i < len(parts); i += 2 {
		body := stripLiteralsAndComments(parts[i])
		for _, m := range call.FindAllStringSubmatchIndex(body, -1) {
			name := body[m[2]:m[3]]
			if m[2] > 0 && body[m[2]-1] == '.' || notCalls[strings.ToLower(name)] {
				continue
			}
			if !slices.Contains(calls, name) {
				calls = append(calls, name)
			}
		}
	}
	return calls
}

// stripLiteralsAndComments replaces the string literals ('...', E'...') and
// -- comments of a PL/pgSQL body with spaces.
func stripLiteralsAndComments(body string) string {
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		switch {
		case strings.HasPrefix(body[i:], "--"):
			for i < len(body) && body[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case body[i] == '\'':
			escapes := i > 0 && (body[i-1] == 'E' || body[i-1] == 'e')
			for i++; i < len(body); i++ {
				if escapes && body[i] == '\\' {
					i++
				} else if body[i] == '\'' {
					if i+1 < len(body) && body[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
			b.WriteString("''")
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String()
}

// plantTraps creates, in public: an operator for every operator name and
// every pair of the types the decoder's expressions use (and the prefix
// operators), and a function for every signature of every function the
// bodies of source call; each raises "trap ran" if it ever runs. It takes
// many short transactions, not one of seconds: a transaction holding an
// xid holds back read_all's horizon in every database of the cluster,
// which other tests running meanwhile would wait for. (Its own SQL names
// pg_catalog in every call and uses exact operators: the traps are live as
// soon as they are created.)
func plantTraps(t *testing.T, ctx context.Context, conn *pgx.Conn, source string) {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`pg_catalog\.([a-z_0-9]+)\(`).FindAllStringSubmatch(source, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	require.NotEmpty(t, names)
	_, err := conn.Exec(ctx, `
CREATE FUNCTION public.es_trap(what text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION 'trap ran: %', what;
END
$f$`)
	require.NoError(t, err)

	types := []string{"smallint", "integer", "bigint", "numeric", "real", "double precision", "text", "name",
		"bytea", "boolean", "bit", "jsonb", "json", "text[]", "bigint[]"}
	for _, left := range types {
		_, err := conn.Exec(ctx, strings.NewReplacer("{left}", left, "{types}", strings.Join(types, "', '")).Replace(`
DO $traps$
DECLARE
    l   text := '{left}';
    r   text;
    op  text;
    ret text;
    fn  text;
BEGIN
    FOREACH r IN ARRAY ARRAY['{types}'] LOOP
        FOREACH op IN ARRAY ARRAY['+', '-', '*', '/', '%', '^', '&', '|', '#', '<<', '>>', '=', '<>', '<', '<=', '>', '>=',
                                  '||', '~', '!~', '~~', '!~~', '~*', '!~*'] LOOP
            ret := CASE WHEN op = ANY (ARRAY['=', '<>', '<', '<=', '>', '>=', '~', '!~', '~~', '!~~', '~*', '!~*']) THEN 'boolean'
                        WHEN op = '||' THEN 'text' ELSE l END;
            fn := 'public.es_trap_' || pg_catalog.md5(l || '/' || r || '/' || ret);
            EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
                fn, l, r, ret,
                pg_catalog.format('BEGIN PERFORM public.es_trap(%L); RETURN NULL; END',
                                  pg_catalog.format('operator on (%s, %s)', l, r)));
            EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)', op, l, r, fn);
        END LOOP;
    END LOOP;
    FOREACH op IN ARRAY ARRAY['-', '+', '~', '@'] LOOP
        fn := 'public.es_trap_prefix_' || pg_catalog.md5(l);
        EXECUTE pg_catalog.format('CREATE OR REPLACE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql AS %L',
            fn, l, l, pg_catalog.format('BEGIN PERFORM public.es_trap(%L); RETURN NULL; END',
                                        pg_catalog.format('prefix operator on %s', l)));
        EXECUTE pg_catalog.format('CREATE OPERATOR public.%s (RIGHTARG = %s, FUNCTION = %s)', op, l, fn);
    END LOOP;
END
$traps$`))
		require.NoError(t, err, "operators on %s", left)
	}

	// Every signature of the functions called, polymorphic types made
	// concrete.
	rows, err := conn.Query(ctx, `
		SELECT p.proname::text,
		       (SELECT pg_catalog.string_agg(CASE WHEN a = ANY (ARRAY['anyarray', 'anycompatiblearray']) THEN 'text[]'
		                                          WHEN a = ANY (ARRAY['anyelement', 'anycompatible', 'anynonarray', '"any"']) THEN 'text'
		                                          ELSE a END, ', ' ORDER BY i)
		          FROM pg_catalog.unnest(p.proargtypes::regtype[]::text[]) WITH ORDINALITY AS x(a, i)),
		       CASE WHEN p.prorettype::regtype::text = ANY (ARRAY['anyarray', 'anycompatiblearray']) THEN 'text[]'
		            WHEN p.prorettype::regtype::text = ANY (ARRAY['anyelement', 'anycompatible', 'anynonarray']) THEN 'text'
		            ELSE p.prorettype::regtype::text END
		  FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'pg_catalog'::regnamespace::oid AND p.proname::text = ANY ($1::text[]) AND NOT p.proretset`, names)
	require.NoError(t, err)
	type signature struct{ name, args, ret string }
	sigs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (signature, error) {
		var s signature
		var args *string
		err := row.Scan(&s.name, &args, &s.ret)
		if args != nil {
			s.args = *args
		}
		return s, err
	})
	require.NoError(t, err)
	created := map[string]bool{}
	for _, sig := range sigs {
		if created[sig.name+"("+sig.args+")"] { // two signatures made alike
			continue
		}
		created[sig.name+"("+sig.args+")"] = true
		_, err := conn.Exec(ctx, fmt.Sprintf(`CREATE FUNCTION public.%s(%s) RETURNS %s LANGUAGE plpgsql AS %s`,
			pgx.Identifier{sig.name}.Sanitize(), sig.args, sig.ret,
			quoteLiteral(fmt.Sprintf("BEGIN PERFORM public.es_trap('function %s'); RETURN NULL; END", sig.name))))
		require.NoError(t, err, "shadowing %s(%s)", sig.name, sig.args)
	}

	var operators, functions int
	require.NoError(t, conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace = 'public'::regnamespace::oid),
		(SELECT count(*) FROM pg_catalog.pg_proc WHERE pronamespace = 'public'::regnamespace::oid AND proname::text !~ '^es_trap')`).
		Scan(&operators, &functions))
	require.Equal(t, len(types)*len(types)*24+len(types)*4, operators, "operators planted")
	require.GreaterOrEqual(t, functions, len(names), "functions planted")
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
