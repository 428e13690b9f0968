package integration_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// TestFunctionTableDocumented checks every row of the function table in
// the README section "From SQL" against the installed functions: the
// names, types and order of the arguments, and which have defaults and
// what they are.
func TestFunctionTableDocumented(t *testing.T) {
	t.Parallel()
	rows := readmeFunctionRows(t)
	require.GreaterOrEqual(t, len(rows), 10, "the function table's rows")

	pool, schema := pgtest.NewSchema(t)
	type function struct{ name, args string }
	var installed []function
	res, err := pool.Query(t.Context(), `
		SELECT p.proname, pg_catalog.pg_get_function_arguments(p.oid)
		  FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = $1::regnamespace`, schema)
	require.NoError(t, err)
	for res.Next() {
		var f function
		require.NoError(t, res.Scan(&f.name, &f.args))
		installed = append(installed, f)
	}
	require.NoError(t, res.Err())

	for _, row := range rows {
		documented := splitArgs(row.args)
		for _, name := range row.names {
			var candidates []string
			found := false
			for _, f := range installed {
				if f.name != name {
					continue
				}
				args := installedArgs(f.args)
				candidates = append(candidates, strings.Join(args, ", "))
				if len(args) == len(documented) {
					require.Equal(t, args, documented, "README: the arguments of %s", name)
					found = true
				}
			}
			require.True(t, found, "README: %s(%s) is not installed; installed: %q", name, row.args, candidates)
		}
	}
}

type readmeFunctionRow struct {
	names []string // the functions of the row (one, or two with the same arguments)
	args  string   // the argument list as documented
}

// readmeFunctionRows returns the rows of the table that follows the header
// "| function | arguments | returns |" in README.md.
func readmeFunctionRows(t *testing.T) []readmeFunctionRow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "\n| function | arguments | returns |\n|---|---|---|\n")
	require.NotEqual(t, -1, start, "README: the function table")
	name := regexp.MustCompile("`([a-z_]+)`")
	var rows []readmeFunctionRow
	for _, line := range strings.Split(text[start+1:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|") // no cell holds a |
		require.Len(t, cells, 3, "README: a function table row: %s", line)
		var row readmeFunctionRow
		for _, m := range name.FindAllStringSubmatch(cells[0], -1) {
			row.names = append(row.names, m[1])
		}
		require.NotEmpty(t, row.names, "README: a function table row without a function: %s", line)
		args := strings.TrimSpace(cells[1])
		require.True(t, args == "" || strings.Count(args, "`") == 2 && strings.HasPrefix(args, "`") && strings.HasSuffix(args, "`"),
			"README: the arguments of %v are one code span (or none): %s", row.names, args)
		row.args = strings.Trim(args, "`")
		rows = append(rows, row)
	}
	return rows
}

// splitArgs splits a documented argument list ("p_a text, p_b int = 1")
// into normalized arguments ("p_a text", "p_b integer = 1").
func splitArgs(list string) []string {
	var args []string
	if list == "" {
		return args
	}
	for _, a := range strings.Split(list, ", ") {
		a = regexp.MustCompile(`\bint\b`).ReplaceAllString(a, "integer")
		args = append(args, a)
	}
	return args
}

// installedArgs turns pg_get_function_arguments' output into the
// documented form: the input arguments only, "DEFAULT x::type" as "= x".
func installedArgs(list string) []string {
	var args []string
	if list == "" {
		return args
	}
	cast := regexp.MustCompile(`::[a-z0-9_ ]+(\[\])?$`)
	for _, a := range strings.Split(list, ", ") {
		if strings.HasPrefix(a, "OUT ") {
			continue
		}
		if decl, def, ok := strings.Cut(a, " DEFAULT "); ok {
			a = decl + " = " + cast.ReplaceAllString(def, "")
		}
		args = append(args, a)
	}
	return args
}

// TestNotifyPayloadDocumented checks the two payloads the README section
// "Notifications and LISTEN" shows, the default and the full one, against
// the notifications of appends that make them (their positions aside).
func TestNotifyPayloadDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "\n## Notifications and LISTEN\n")
	require.NotEqual(t, -1, start, "README: the section")
	section := text[start:]
	section = section[:strings.Index(section[1:], "\n## ")+1]
	documented := regexp.MustCompile(`with payload\s+"(\{.*\})"`).FindAllStringSubmatch(section, -1)
	require.Len(t, documented, 2, "README: the default and the full payload")
	position := regexp.MustCompile(`"position": "[0-9]+/[0-9]+"`)

	ctx := testContext(t, testTimeout)
	_, schema := pgtest.NewSchema(t)
	listener := connect(t, ctx, pgtest.ConnString(t))
	_, err = listener.Exec(ctx, "LISTEN "+pgx.Identifier{schema + "_events"}.Sanitize())
	require.NoError(t, err)
	writer := connect(t, ctx, pgtest.ConnString(t))
	appendEvent := func() string {
		t.Helper()
		var pos string
		require.NoError(t, writer.QueryRow(ctx, fmt.Sprintf(
			`SELECT transaction_id || '/' || last_position FROM %s.append_event('order-42', 'Happened', '\x80')`,
			pgx.Identifier{schema}.Sanitize())).Scan(&pos))
		return pos
	}
	payload := func(pos string) string {
		t.Helper()
		n, err := listener.WaitForNotification(ctx)
		require.NoError(t, err)
		require.Contains(t, n.Payload, `"position": "`+pos+`"`)
		return n.Payload
	}

	got := payload(appendEvent())
	require.Equal(t, position.ReplaceAllString(documented[0][1], `"position": "P"`),
		position.ReplaceAllString(got, `"position": "P"`), "the default payload")

	payload(appendEvent()) // version 2
	_, err = writer.Exec(ctx, "SET es.notify_payload = full")
	require.NoError(t, err)
	got = payload(appendEvent()) // version 3, as documented
	require.Equal(t, position.ReplaceAllString(documented[1][1], `"position": "P"`),
		position.ReplaceAllString(got, `"position": "P"`), "the full payload")
}
