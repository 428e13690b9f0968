package main_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// normalise replaces each JSON line's volatile fields (position, event_id,
// recorded_at) with placeholders, after checking their form.
func normalise(t *testing.T, out string) string {
	t.Helper()
	var b bytes.Buffer
	for line := range strings.Lines(out) {
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &ev), "line %q", line)
		require.Regexp(t, `^\d+/\d+$`, ev["position"])
		require.Regexp(t, `^[0-9a-f-]{36}$`, ev["event_id"])
		require.Regexp(t, `^\d{4}-\d\d-\d\dT[0-9:.]+Z$`, ev["recorded_at"])
		ev["position"], ev["event_id"], ev["recorded_at"] = "POSITION", "EVENT_ID", "RECORDED_AT"
		j, err := json.Marshal(ev) // sorts the keys
		require.NoError(t, err)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}

func TestStreamShow(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.exec(t, `SELECT * FROM es.append_json('order-1', 'OrderPlaced', '{"total": 12.5, "lines": [{"sku": "a-1", "qty": 2}]}',
		'{"correlation_id": "c-1", "causation_id": "c-0"}')`)
	b.appendJSON(t, "order-1", "OrderShipped", `{"carrier": "post", "tracking": null}`)
	b.appendJSON(t, "order-2", "OrderPlaced", `{"total": 1}`)

	out := b.ok(t, "stream", "show", "order-1", "--json")
	golden(t, "stream_show.golden", normalise(t, out))

	// Positions follow the log; versions count from 1.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)

	out = b.ok(t, "stream", "show", "order-1")
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2)
	require.Regexp(t, regexp.MustCompile(`(?m)^\d+/\d+  order-1@1  \S+  OrderPlaced  \{"lines":\[\{"qty":2,"sku":"a-1"\}\],"total":12.5\}  metadata=\{"causation_id":"c-0","correlation_id":"c-1"\}$`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^\d+/\d+  order-1@2  \S+  OrderShipped  \{"carrier":"post","tracking":null\}$`), out)

	// An event at another schema version says so.
	b.exec(t, `SELECT * FROM es.append_json('order-2', 'OrderPlaced', '{"total": 2}', p_schema_version => 3)`)
	out = b.ok(t, "stream", "show", "order-2")
	require.Regexp(t, regexp.MustCompile(`(?m)^\d+/\d+  order-2@1  \S+  OrderPlaced  \{"total":1\}$`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^\d+/\d+  order-2@2  \S+  OrderPlaced \(v3\)  \{"total":2\}$`), out)
	require.Contains(t, b.ok(t, "stream", "show", "order-2", "--json"), `"schema_version":3`)

	_, stderr, code := b.es(t, "stream", "show", "order-9")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `stream "order-9" has no events`)

	_, _, code = b.es(t, "stream", "list")
	require.Equal(t, 2, code)
}
