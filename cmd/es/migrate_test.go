package main_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMigrate(t *testing.T) {
	t.Parallel()
	b := setup(t, false)

	out := b.ok(t, "migrate", "status")
	require.Contains(t, out, "schema es: version 0, latest 6\n")
	require.Contains(t, out, "pending  1 001_tables.sql\n")

	out = b.ok(t, "migrate", "up", "--to", "2")
	require.Equal(t, "up 1 001_tables.sql\nup 2 002_keys_leases.sql\n"+
		"schema es: version 0 -> 2\nfunctions, views and privileges installed\n", out)

	out = b.ok(t, "migrate", "up")
	require.Equal(t, "up 3 003_subscription_status.sql\nup 4 004_parked_events.sql\nup 5 005_consumer_groups.sql\nup 6 006_event_schema_versions.sql\n"+
		"schema es: version 2 -> 6\nfunctions, views and privileges installed\n", out)

	out = b.ok(t, "migrate", "up")
	require.Contains(t, out, "schema es: already at version 6\n")

	out = b.ok(t, "migrate", "status")
	require.Contains(t, out, "schema es: version 6, latest 6\n")
	require.Contains(t, out, "applied  6 006_event_schema_versions.sql\n")

	// Down needs an explicit target: down to 0 drops the events.
	_, stderr, code := b.es(t, "migrate", "down")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "needs --to N")

	out = b.ok(t, "migrate", "down", "--to", "3")
	require.Equal(t, "down 6 006_event_schema_versions.sql\ndown 5 005_consumer_groups.sql\ndown 4 004_parked_events.sql\nschema es: version 6 -> 3\nfunctions, views and privileges installed\n", out)
	out = b.ok(t, "migrate", "down", "--to", "0")
	require.Contains(t, out, "down 1 001_tables.sql\nschema es: version 3 -> 0\n")
	require.Contains(t, b.ok(t, "migrate", "status"), "schema es: version 0, latest 6\n")

	// Another schema, named before or after the subcommand; --url instead
	// of DATABASE_URL.
	out = b.ok(t, "--schema", "other", "migrate", "up", "--url", b.url)
	require.Contains(t, out, "schema other: version 0 -> 6\n")
	require.Contains(t, b.ok(t, "migrate", "status", "--schema", "other"), "schema other: version 6, latest 6\n")

	_, stderr, code = b.es(t, "migrate", "sideways")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `want up, down or status, got "sideways"`)
}
