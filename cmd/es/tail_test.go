package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type tailEvent struct {
	Position  string          `json:"position"`
	StreamID  string          `json:"stream_id"`
	Version   int64           `json:"version"`
	EventType string          `json:"event_type"`
	Data      json.RawMessage `json:"data"`
}

// tail starts es tail with args and returns its JSON lines as they come
// and a function that interrupts it and returns its exit status.
func (b *testBundle) tail(t *testing.T, args ...string) (<-chan tailEvent, func() int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*commandTimeout)
	t.Cleanup(cancel)
	cmd := b.command(ctx, append([]string{"tail", "--json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan tailEvent, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev tailEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("tail printed %q: %v", sc.Text(), err)
				return
			}
			lines <- ev
		}
	}()
	stopped := false
	stop := func() int {
		stopped = true
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		for range lines { // until EOF
		}
		_ = cmd.Wait()
		return cmd.ProcessState.ExitCode()
	}
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return lines, stop
}

// next returns the next event tail printed.
func next(t *testing.T, lines <-chan tailEvent) tailEvent {
	t.Helper()
	select {
	case ev, ok := <-lines:
		require.True(t, ok, "es tail ended")
		return ev
	case <-time.After(commandTimeout):
		t.Fatal("es tail printed nothing")
		return tailEvent{}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.appendJSON(t, "order-1", "OrderPlaced", `{"total": 1}`)

	lines, stop := b.tail(t, "--from", "start", "--category", "order")
	ev := next(t, lines)
	require.Equal(t, "order-1", ev.StreamID)
	require.EqualValues(t, 1, ev.Version)
	require.JSONEq(t, `{"total": 1}`, string(ev.Data))
	first := ev.Position

	// Events appended while it runs arrive; other categories do not.
	b.appendJSON(t, "user-1", "UserRegistered", `{}`)
	b.appendJSON(t, "order-2", "OrderPlaced", `{"total": 2}`)
	b.appendJSON(t, "order-1", "OrderShipped", `{}`)
	ev = next(t, lines)
	require.Equal(t, "order-2", ev.StreamID)
	require.JSONEq(t, `{"total": 2}`, string(ev.Data))
	ev = next(t, lines)
	require.Equal(t, "order-1", ev.StreamID)
	require.Equal(t, "OrderShipped", ev.EventType)
	require.EqualValues(t, 2, ev.Version)
	require.Equal(t, 0, stop(), "es tail exits 0 on SIGINT")

	// From a position, by type.
	lines, stop = b.tail(t, "--from", first, "--type", "OrderPlaced,UserRegistered")
	ev = next(t, lines)
	require.Equal(t, "user-1", ev.StreamID)
	ev = next(t, lines)
	require.Equal(t, "order-2", ev.StreamID)
	b.appendJSON(t, "user-2", "UserRegistered", `{"name": "Ada"}`)
	ev = next(t, lines)
	require.Equal(t, "user-2", ev.StreamID)
	require.JSONEq(t, `{"name": "Ada"}`, string(ev.Data))
	require.Equal(t, 0, stop())

	// From the end: nothing appended before it starts. Probes are
	// appended until one arrives, since when it read the log's end is not
	// known.
	lines, stop = b.tail(t, "--from", "end")
	deadline := time.Now().Add(commandTimeout)
	for i := 1; ; i++ {
		b.appendJSON(t, fmt.Sprintf("probe-%d", i), "Probed", `{}`)
		var got bool
		select {
		case ev, ok := <-lines:
			require.True(t, ok, "es tail ended")
			require.Equal(t, "Probed", ev.EventType, "es tail --from end printed an older event")
			got = true
		case <-time.After(200 * time.Millisecond):
		}
		if got {
			break
		}
		require.True(t, time.Now().Before(deadline), "es tail --from end printed nothing")
	}
	require.Equal(t, 0, stop())

	_, stderr, code := b.es(t, "tail", "--from", "yesterday")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "--from: want start, end or a position")
}
