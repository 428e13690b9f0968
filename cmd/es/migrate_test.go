package main_test

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/schema"
)

// migrationNames returns the names of the embedded migrations, in order.
func migrationNames(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(schema.Migrations(), "*.sql")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(names), 4)
	return names
}

// steps returns the lines "dir N name" of the migrations from (1-based) to
// to, in the order they run.
func steps(names []string, dir string, from, to int) string {
	var b strings.Builder
	if dir == "up" {
		for v := from; v <= to; v++ {
			fmt.Fprintf(&b, "up %d %s\n", v, names[v-1])
		}
	} else {
		for v := from; v >= to; v-- {
			fmt.Fprintf(&b, "down %d %s\n", v, names[v-1])
		}
	}
	return b.String()
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	names := migrationNames(t)
	latest := len(names)

	out := b.ok(t, "migrate", "status")
	require.Contains(t, out, fmt.Sprintf("schema es: version 0, latest %d\n", latest))
	require.Contains(t, out, "pending  1 001_tables.sql\n")

	out = b.ok(t, "migrate", "up", "--to", "2")
	require.Equal(t, "up 1 001_tables.sql\nup 2 002_keys_leases.sql\n"+
		"schema es: version 0 -> 2\nfunctions, views and privileges installed\n", out)

	out = b.ok(t, "migrate", "up")
	require.Equal(t, steps(names, "up", 3, latest)+
		fmt.Sprintf("schema es: version 2 -> %d\nfunctions, views and privileges installed\n", latest), out)

	out = b.ok(t, "migrate", "up")
	require.Contains(t, out, fmt.Sprintf("schema es: already at version %d\n", latest))

	out = b.ok(t, "migrate", "status")
	require.Contains(t, out, fmt.Sprintf("schema es: version %d, latest %d\n", latest, latest))
	require.Contains(t, out, fmt.Sprintf("applied  %d %s\n", latest, names[latest-1]))

	// Down needs an explicit target: down to 0 drops the events.
	_, stderr, code := b.es(t, "migrate", "down")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "needs --to N")

	out = b.ok(t, "migrate", "down", "--to", "3")
	require.Equal(t, steps(names, "down", latest, 4)+
		fmt.Sprintf("schema es: version %d -> 3\nfunctions, views and privileges installed\n", latest), out)
	out = b.ok(t, "migrate", "down", "--to", "0")
	require.Contains(t, out, "down 1 001_tables.sql\nschema es: version 3 -> 0\n")
	require.Contains(t, b.ok(t, "migrate", "status"), fmt.Sprintf("schema es: version 0, latest %d\n", latest))

	// Another schema, named before or after the subcommand; --url instead
	// of DATABASE_URL.
	out = b.ok(t, "--schema", "other", "migrate", "up", "--url", b.url)
	require.Contains(t, out, fmt.Sprintf("schema other: version 0 -> %d\n", latest))
	require.Contains(t, b.ok(t, "migrate", "status", "--schema", "other"), fmt.Sprintf("schema other: version %d, latest %d\n", latest, latest))

	_, stderr, code = b.es(t, "migrate", "sideways")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `want up, down or status, got "sideways"`)
}
