package integration_test

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/schema"
)

// This file reads the SQL of the schema (schema/code and schema/migrations)
// for the names it leaves to the caller's search_path: operator symbols,
// function names and type names. TestTrojanPlants (trojan_test.go,
// trojan_plants_test.go) plants an object in public (and pg_temp) under
// each of them, so that the plants keep up with the SQL as it changes.

// sqlNames is what the schema's SQL names without a schema.
type sqlNames struct {
	// Ops are the operator symbols, written or implied (= by IN, ANY and
	// CASE, <> by NOT IN, >= and <= by BETWEEN, ~~ by LIKE).
	Ops []string
	// Funcs maps each name written as name(...) to the argument counts of
	// its call sites. Keywords and aliases are in it too (IF, TABLE, u(...)):
	// the plants keep only the names of pg_catalog functions.
	Funcs map[string][]int
	// Idents are the identifiers not preceded by a dot: the plants keep
	// those that name a type of pg_catalog (text, jsonb, xid8, ...).
	Idents []string
}

// schemaSQLNames extracts the names from every file of the code package
// and the migrations.
func schemaSQLNames(t testing.TB) sqlNames {
	t.Helper()
	var texts []string
	for _, fsys := range []fs.FS{schema.Code(), schema.Migrations()} {
		require.NoError(t, fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
				return err
			}
			b, err := fs.ReadFile(fsys, path)
			texts = append(texts, string(b))
			return err
		}))
	}
	require.NotEmpty(t, texts)
	return sqlNamesOf(texts...)
}

var (
	templateComment = regexp.MustCompile(`(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}`)
	templateAction  = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	dollarTag       = regexp.MustCompile(`^\$([A-Za-z_][A-Za-z0-9_]*)?\$`)
	opRun           = regexp.MustCompile("[-+*/<>=~!@#%^&|`?]+")
	callName        = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`)
	identifier      = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	implied         = []struct {
		re  *regexp.Regexp
		ops []string
	}{
		{regexp.MustCompile(`(?i)\b(IN\s*\(|ANY\b|SOME\b|ALL\b|CASE\b|NULLIF\b|DISTINCT\s+FROM\b)`), []string{"=", "<>"}},
		{regexp.MustCompile(`(?i)\bBETWEEN\b`), []string{">=", "<="}},
		{regexp.MustCompile(`(?i)\bI?LIKE\b`), []string{"~~", "!~~", "~~*", "!~~*"}},
		{regexp.MustCompile(`(?i)\bSIMILAR\s+TO\b`), []string{"~"}},
	}
)

// sqlNamesOf extracts the names from SQL texts (tern templates).
func sqlNamesOf(texts ...string) sqlNames {
	ops := map[string]bool{}
	funcs := map[string]map[int]bool{}
	idents := map[string]bool{}
	for _, text := range texts {
		code := sqlCodeOnly(templateAction.ReplaceAllString(templateComment.ReplaceAllString(text, " "), " es "))
		for _, loc := range opRun.FindAllStringIndex(code, -1) {
			op := code[loc[0]:loc[1]]
			if loc[0] > 0 && code[loc[0]-1] == ':' { // := is an assignment
				op = strings.TrimPrefix(op, "=")
			}
			if op == "" || op == "=>" {
				continue
			}
			// PostgreSQL's lexer: a multi-character operator ends in + or -
			// only if it holds one of ~ ! @ # % ^ & | ` ?.
			for len(op) > 1 && strings.ContainsAny(op[len(op)-1:], "+-") && !strings.ContainsAny(op, "~!@#%^&|`?") {
				op = op[:len(op)-1]
			}
			ops[op] = true
		}
		for _, imp := range implied {
			if imp.re.MatchString(code) {
				for _, op := range imp.ops {
					ops[op] = true
				}
			}
		}
		for _, m := range callName.FindAllStringSubmatchIndex(code, -1) {
			if qualifiedAt(code, m[2]) {
				continue
			}
			name := strings.ToLower(code[m[2]:m[3]])
			open := strings.IndexByte(code[m[3]:], '(') + m[3]
			if funcs[name] == nil {
				funcs[name] = map[int]bool{}
			}
			funcs[name][callArity(code[open:])] = true
		}
		for _, m := range identifier.FindAllStringIndex(code, -1) {
			if !qualifiedAt(code, m[0]) {
				idents[strings.ToLower(code[m[0]:m[1]])] = true
			}
		}
	}
	names := sqlNames{Ops: slices.Sorted(maps.Keys(ops)), Funcs: map[string][]int{}, Idents: slices.Sorted(maps.Keys(idents))}
	for name, arities := range funcs {
		names.Funcs[name] = slices.Sorted(maps.Keys(arities))
	}
	return names
}

// sqlCodeOnly returns src with comments removed and every string literal
// replaced by '_'; dollar quotes (function bodies) become spaces, since
// their content is code.
func sqlCodeOnly(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case strings.HasPrefix(src[i:], "--"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 4
			b.WriteByte(' ')
		case c == '\'':
			escapes := i > 0 && (src[i-1] == 'E' || src[i-1] == 'e') &&
				(i == 1 || !isIdentByte(src[i-2]))
			if escapes {
				s := b.String()
				b.Reset()
				b.WriteString(s[:len(s)-1]) // the E
			}
			i++
			for i < len(src) {
				if escapes && src[i] == '\\' {
					i += 2
					continue
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						i += 2
						continue
					}
					break
				}
				i++
			}
			i++
			b.WriteString("'_'")
		case c == '$' && dollarTag.MatchString(src[i:]) && (i == 0 || !isIdentByte(src[i-1])):
			i += len(dollarTag.FindString(src[i:]))
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// qualifiedAt reports whether the name at code[i:] follows a dot (a
// schema or a table alias qualifies it), a $ or a quote, or another
// name's characters.
func qualifiedAt(code string, i int) bool {
	return i > 0 && (isIdentByte(code[i-1]) || strings.IndexByte(".$\"", code[i-1]) >= 0)
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// callArity counts the arguments of the call whose "(" starts s: the
// top-level commas, and the keywords FROM, FOR, IN and PLACING of the
// SQL-standard forms (substring(x FROM a FOR b)); count(*) has none.
func callArity(s string) int {
	depth, end := 0, len(s)
	for i := 0; i < len(s); i++ {
		if s[i] == '(' || s[i] == '[' {
			depth++
		} else if s[i] == ')' || s[i] == ']' {
			if depth--; depth == 0 {
				end = i
				break
			}
		}
	}
	inner := s[1:max(end, 1)]
	if strings.Trim(inner, " \t\n*") == "" {
		return 0
	}
	n := 1
	depth = 0
	for i := 0; i < len(inner); i++ {
		switch c := inner[i]; {
		case c == '(' || c == '[':
			depth++
		case c == ')' || c == ']':
			depth--
		case depth == 0 && c == ',':
			n++
		case depth == 0 && isIdentByte(c) && (i == 0 || !isIdentByte(inner[i-1])):
			j := i
			for j < len(inner) && isIdentByte(inner[j]) {
				j++
			}
			switch strings.ToUpper(inner[i:j]) {
			case "FROM", "FOR", "IN", "PLACING":
				n++
			}
			i = j - 1
		}
	}
	return n
}

func TestTrojanSQLNames(t *testing.T) {
	t.Parallel()
	names := sqlNamesOf(`
		{{- $s := .schema | default "es" -}}
		-- a comment with f(x) and a || b
		CREATE FUNCTION {{ $s }}.f(p bigint) RETURNS text LANGUAGE plpgsql AS $body$
		DECLARE v int := 1; t text;
		BEGIN
		    v := (p >> 52) & 2047;
		    t := 'x' || encode(substring(b FROM v + 1 FOR 8), 'hex') || E'it''s \' (a, b)';
		    IF x=-1 AND y IN (1, 2) THEN RETURN power(2::float8, -1074)::text; END IF;
		    RETURN {{ $s }}.g(count(*), left(t, 1), pg_catalog.length(t)) ->> 'k';
		END $body$;`)
	require.Equal(t, []string{"&", "*", "+", "-", "->>", "<>", "=", ">>", "||"}, names.Ops)
	require.Equal(t, []int{2}, names.Funcs["encode"])
	require.Equal(t, []int{3}, names.Funcs["substring"])
	require.Equal(t, []int{2}, names.Funcs["power"])
	require.Equal(t, []int{0}, names.Funcs["count"])
	require.Equal(t, []int{2}, names.Funcs["left"])
	require.NotContains(t, names.Funcs, "length", "qualified")
	require.NotContains(t, names.Funcs, "g", "qualified")
	require.NotContains(t, names.Funcs, "a", "in a string")
	require.Contains(t, names.Idents, "float8")
	require.Contains(t, names.Idents, "text")
	require.NotContains(t, names.Idents, "it")

	// The schema's own SQL: the names the issue is about.
	names = schemaSQLNames(t)
	for _, op := range []string{"&", "%", "|", "<<", ">>", "||", "->>", "=", "<>", "!~", "~"} {
		require.Contains(t, names.Ops, op)
	}
	for _, fn := range []string{"to_json", "cardinality", "json_build_object", "format", "octet_length"} {
		require.Contains(t, names.Funcs, fn)
	}
	for _, typ := range []string{"text", "jsonb", "bytea", "xid8", "float8", "uuid"} {
		require.Contains(t, names.Idents, typ)
	}
}
