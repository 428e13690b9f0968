package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es/internal/pgtest"
)

// This file proves that msgpack_to_jsonb (schema/code/decode.sql) does work
// linear in its input, whatever the input's shape: for each shape, an input
// 8 times larger must not cost more than maxLinearRatio times as much.

const (
	// maxLinearRatio bounds cost(8n)/cost(n): 8 for linear work, 4 times
	// that for what is left after taking minimums: jsonb's sort of an
	// object's keys (n log n), and inputs that outgrow the CPU's caches as
	// they grow from about 150 KB to 1.3 MB (linear work measured up to 25
	// times on a 2-core machine busy with other servers); quadratic work
	// gives about 64.
	maxLinearRatio = 8 * 4.0
	// linearRounds is how many times each size is measured, sizes
	// interleaved, for the minimum of each.
	linearRounds = 5
	// linearAttempts is how many times a shape is measured before its
	// ratio fails the test: a ratio spoiled by a burst of load on a shared
	// machine does not repeat, superlinear work does.
	linearAttempts = 3
)

// linearShape builds an input of a shape; its size grows in proportion to
// n.
type linearShape struct {
	name  string
	build func(n int) []byte
}

// linearShapes are the shapes whose cost must grow linearly: the ones an
// earlier decoder was quadratic on (maps whose keys are arrays or maps,
// which copied the whole output so far for each key), the ones with work
// of their own (container keys nested in each other, strings to escape,
// control characters, deep nesting), and the common ones.
func linearShapes() []linearShape {
	arrayOf := func(n int, item func(b mp, i int) mp) []byte {
		b := mp{}.arrayHeader(n)
		for i := range n {
			b = item(b, i)
		}
		return b
	}
	mapOf := func(n int, entry func(b mp, i int) mp) []byte {
		b := mp{}.mapHeader(n)
		for i := range n {
			b = entry(b, i)
		}
		return b
	}
	return []linearShape{
		{"map with array keys", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp { return b.arrayHeader(2).uint(uint64(i)).uint(7).uint(1) })
		}},
		{"map with map keys", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp { return b.mapHeader(1).str("k").uint(uint64(i)).append(0xc0) })
		}},
		{"map with container keys nested 4 deep", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp {
				return b.keyChain(3, func(b mp) mp { return b.arrayHeader(1).uint(uint64(i)) }).uint(1)
			})
		}},
		{"one key nested 4 deep around strings to escape", func(n int) []byte {
			return mp{}.mapHeader(1).keyChain(3, func(b mp) mp {
				return append(b, arrayOf(n, func(b mp, i int) mp { return b.str(`a"b\c`) })...)
			}).uint(1)
		}},
		{"map with container keys under 400 arrays", func(n int) []byte {
			return append(bytes.Repeat([]byte{0x91}, 400),
				mapOf(n, func(b mp, i int) mp { return b.arrayHeader(1).uint(uint64(i)).uint(1) })...)
		}},
		{"map with control characters in array keys", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp { return b.arrayHeader(2).str("a\x01").uint(uint64(i)).uint(1) })
		}},
		{"map of many short string keys", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp { return b.str("k" + strconv.Itoa(i)).uint(uint64(i)) })
		}},
		{"many strings to escape", func(n int) []byte {
			return arrayOf(n, func(b mp, i int) mp { return b.str("q\"b\\n\né\x01") })
		}},
		{"many strings with control characters", func(n int) []byte {
			return arrayOf(n, func(b mp, i int) mp { return b.str("ab\x01cd\x1fef") })
		}},
		{"one long string with control characters", func(n int) []byte {
			return mp{}.str(strings.Repeat("abc\x01def\tghijklm\n", n))
		}},
		{"one long string to escape", func(n int) []byte {
			return mp{}.str(strings.Repeat(`abc"def\ghé`, n))
		}},
		{"one long string under 500 arrays", func(n int) []byte {
			return append(bytes.Repeat([]byte{0x91}, 500), mp{}.str(strings.Repeat("x", 64*n))...)
		}},
		{"deep nesting, many times", func(n int) []byte {
			return arrayOf(n, func(b mp, i int) mp {
				return append(append(b, bytes.Repeat([]byte{0x91}, 63)...), 0x01)
			})
		}},
		{"array of mixed scalars", func(n int) []byte {
			return arrayOf(n, func(b mp, i int) mp {
				return b.arrayHeader(7).uint(uint64(i)*1000003).int(-int64(i)).float64(float64(i)/3).timestamp8(int64(i), uint32(i)).
					append(0xc3, 0xc0).bin([]byte{1, 2, 3, byte(i)})
			})
		}},
		{"map of maps", func(n int) []byte {
			return mapOf(n, func(b mp, i int) mp {
				return b.str("e" + strconv.Itoa(i)).mapHeader(2).str("id").uint(uint64(i)).str("tags").arrayHeader(2).str("a").str("b")
			})
		}},
	}
}

// TestMsgpackToJSONBLinear measures, for each shape of linearShapes, the
// decoder's cost on inputs of size n, 2n, 4n and 8n, n chosen so that the
// smallest costs a few milliseconds, and requires cost(8n)/cost(n) <=
// maxLinearRatio. It fails on superlinear growth by ratio, never on
// absolute time.
//
// The cost is the CPU time of the server process serving the connection
// (/proc/<pid>/schedstat), when the server runs on this machine: unlike
// elapsed time it does not count the time the process waits for a CPU,
// which on a busy shared machine would inflate a long call more than a
// short one. Elsewhere it is the elapsed time of the call measured inside
// the server. Either way each size is measured linearRounds times, the
// sizes interleaved, and the minimum kept; a shape whose ratio is too high
// is measured again, up to linearAttempts times in all.
func TestMsgpackToJSONBLinear(t *testing.T) {
	t.Parallel()
	c := newDecodeConn(t)
	m := newDecodeMeter(t, c)
	t.Logf("cost measured as %s", m.what)

	for _, shape := range linearShapes() {
		// The shape decodes, as the Go reference says.
		small := shape.build(3)
		want, err := renderJSON(small)
		require.NoError(t, err, shape.name)
		got, err := c.decode("msgpack_to_jsonb", small)
		require.NoError(t, err, "%s: msgpack %x", shape.name, truncateBytes(small))
		w, err := parseJSON(want)
		require.NoError(t, err, shape.name)
		g, err := parseJSON(*got)
		require.NoError(t, err, shape.name)
		_, same := sameJSONNormalised(w, g, "$")
		require.True(t, same, "%s: want %.300s\ngot  %.300s", shape.name, want, *got)

		var report []string
		passed := false
		for attempt := 1; attempt <= linearAttempts && !passed; attempt++ {
			r := m.growth(shape)
			report = append(report, r.String())
			passed = r.ratio() <= maxLinearRatio
		}
		t.Logf("%s: %s", shape.name, strings.Join(report, "; again: "))
		if !passed { // the other shapes are still measured, for the record
			t.Errorf("%s: cost(8n)/cost(n) above %.0f in %d attempts: %s",
				shape.name, maxLinearRatio, linearAttempts, strings.Join(report, "; "))
		}
	}
}

// decodeMeter measures the cost of one msgpack_to_jsonb call on a
// connection of its own.
type decodeMeter struct {
	t      *testing.T
	ctx    context.Context
	conn   *pgx.Conn
	schema string
	pid    int    // the server process, when its CPU time can be read
	what   string // what the cost is, for the log
	// query, when set, is the statement measured instead of
	// msgpack_to_jsonb($1) (its one argument is the input's bytes).
	query string
}

func newDecodeMeter(t *testing.T, c *decodeConn) *decodeMeter {
	t.Helper()
	conn := connect(t, c.ctx, pgtest.ConnString(t))
	_, err := conn.Exec(c.ctx, "SET statement_timeout = '60s'")
	require.NoError(t, err)
	m := &decodeMeter{t: t, ctx: c.ctx, conn: conn, schema: c.schema, what: "elapsed time inside the server"}
	var pid int
	require.NoError(t, conn.QueryRow(c.ctx, "SELECT pg_backend_pid()").Scan(&pid))
	if serverIsLocal(conn) {
		if before, err := pgtest.ProcessCPU(pid); err == nil {
			// It is the process that serves us if its CPU time grows with
			// our work.
			_, err := conn.Exec(c.ctx, "SELECT count(*) FROM generate_series(1, 300000)")
			require.NoError(t, err)
			if after, err := pgtest.ProcessCPU(pid); err == nil && after > before {
				m.pid = pid
				m.what = fmt.Sprintf("CPU time of the server process %d", pid)
			}
		}
	}
	if m.pid == 0 {
		_, err := conn.Exec(c.ctx, fmt.Sprintf(`
			CREATE FUNCTION pg_temp.decode_seconds(p_data bytea) RETURNS float8 LANGUAGE plpgsql AS $$
			DECLARE
			    t0 timestamptz := clock_timestamp();
			    j  jsonb;
			BEGIN
			    j := %s.msgpack_to_jsonb(p_data);
			    RETURN extract(epoch FROM clock_timestamp() - t0)::float8;
			END
			$$`, c.schema))
		require.NoError(t, err)
	}
	return m
}

// serverIsLocal reports whether conn reaches the server through a unix
// socket, so that the server's processes are this machine's.
func serverIsLocal(conn *pgx.Conn) bool {
	return runtime.GOOS == "linux" && conn.PgConn().Conn().RemoteAddr().Network() == "unix"
}

// cost returns the cost of msgpack_to_jsonb(data).
func (m *decodeMeter) cost(data []byte) time.Duration {
	m.t.Helper()
	if m.query != "" && m.pid == 0 {
		start := time.Now()
		var ok bool
		require.NoError(m.t, m.conn.QueryRow(m.ctx, m.query, data).Scan(&ok))
		return time.Since(start)
	}
	if m.pid == 0 {
		var secs float64
		require.NoError(m.t, m.conn.QueryRow(m.ctx, "SELECT pg_temp.decode_seconds($1)", data).Scan(&secs))
		return time.Duration(secs * float64(time.Second))
	}
	before, err := pgtest.ProcessCPU(m.pid)
	require.NoError(m.t, err)
	var ok bool
	query := m.query
	if query == "" {
		query = fmt.Sprintf("SELECT %s.msgpack_to_jsonb($1) IS NOT NULL", m.schema)
	}
	require.NoError(m.t, m.conn.QueryRow(m.ctx, query, data).Scan(&ok))
	after, err := pgtest.ProcessCPU(m.pid)
	require.NoError(m.t, err)
	return after - before
}

// linearGrowth is what growth measured for one shape: the sizes in bytes
// and the minimum cost of each.
type linearGrowth struct {
	bytes [4]int
	cost  [4]time.Duration
}

func (g linearGrowth) ratio() float64 { return float64(g.cost[3]) / float64(g.cost[0]) }

func (g linearGrowth) String() string {
	var b strings.Builder
	for i := range g.bytes {
		if i > 0 {
			fmt.Fprintf(&b, ", ×%.1f ", float64(g.cost[i])/float64(g.cost[i-1]))
		}
		fmt.Fprintf(&b, "%d B %v", g.bytes[i], g.cost[i].Round(10*time.Microsecond))
	}
	fmt.Fprintf(&b, "; 8n/n ×%.1f", g.ratio())
	return b.String()
}

// growth measures shape at n, 2n, 4n and 8n: n doubles from 16 until the
// smallest input costs at least a few milliseconds (or reaches 128 KiB, so
// that the largest stays about 1 MiB), then
// each size is measured linearRounds times, interleaved, in alternating
// order, and the minimum kept.
func (m *decodeMeter) growth(shape linearShape) linearGrowth {
	m.t.Helper()
	minCost := 4 * time.Millisecond
	if m.pid == 0 {
		minCost = 20 * time.Millisecond // elapsed time: long enough to be shared alike
	}
	n := 16
	for {
		data := shape.build(n)
		if len(data) >= 128<<10 || min(m.cost(data), m.cost(data)) >= minCost {
			break
		}
		n *= 2
	}
	var g linearGrowth
	inputs := make([][]byte, len(g.bytes))
	for i := range inputs {
		inputs[i] = shape.build(n << i)
		g.bytes[i] = len(inputs[i])
		g.cost[i] = time.Duration(math.MaxInt64)
	}
	for round := range linearRounds {
		for j := range inputs {
			i := j
			if round%2 == 1 {
				i = len(inputs) - 1 - j
			}
			g.cost[i] = min(g.cost[i], m.cost(inputs[i]))
		}
	}
	return g
}
