package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/syncbuf"
)

// healthTests check what operators see of subscriptions (health) and do
// to them (reset, rewind).
var healthTests = []test{
	{"Unknown", testHealthUnknown},
	{"LiveAndCatchingUp", testHealthLiveAndCatchingUp},
	{"FiltersCountOnlyKeptEvents", testHealthFilters},
	{"Failing", testHealthFailing},
	{"ResetRefusedWhileRunning", testResetRefusedWhileRunning},
	{"ResetRebuildsAndRewinds", testResetRebuildsAndRewinds},
	{"ResetInvalid", testResetInvalid},
	{"Progress", testProgress},
	{"Logging", testLogging},
}

// health reads the health of name.
func health(t *testing.T, sub es.Subscriber, name string) es.SubscriptionHealth {
	t.Helper()
	h, err := sub.SubscriptionHealth(t.Context(), name)
	require.NoError(t, err)
	require.Equal(t, name, h.Name)
	return h
}

// awaitHealth polls the health of name until cond holds.
func awaitHealth(t *testing.T, sub es.Subscriber, name, what string, cond func(es.SubscriptionHealth) bool) es.SubscriptionHealth {
	t.Helper()
	return poll(t, fmt.Sprintf("subscription %q: %s", name, what), func() es.SubscriptionHealth { return health(t, sub, name) }, cond)
}

func testHealthUnknown(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	res := mustAppend(t, s, streamID("health"), es.NoStream, Events(3))
	awaitVisible(t, s, res.LastPosition)
	h := health(t, sub, subscriptionName())
	require.Equal(t, es.HealthIdle, h.Health)
	require.False(t, h.HasCheckpoint)
	require.True(t, h.Checkpoint.IsZero())
	require.Equal(t, int64(3), h.EventsBehind, "every event is ahead of a subscription that never ran")
	require.False(t, h.OldestUnhandledAt.IsZero())
	require.Positive(t, h.Behind(time.Now().Add(time.Hour)))
	_, err := sub.SubscriptionHealth(t.Context(), "")
	require.ErrorIs(t, err, es.ErrInvalidArgument)
}

func testHealthLiveAndCatchingUp(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	first := mustAppend(t, s, streamID("health"), es.NoStream, Events(2))
	release := make(chan struct{})
	var blocked atomic.Bool
	blocked.Store(true)
	run := start(t, sub, name, func(ctx context.Context, e es.Event) error {
		if e.Position.Compare(first.LastPosition) > 0 && blocked.Load() {
			select { // hold the third event until the test has looked
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}, fastOpts(es.SubscribeOpts{CheckpointEvery: 1}))
	h := awaitHealth(t, sub, name, "live", func(h es.SubscriptionHealth) bool {
		return h.Health == es.HealthLive && h.Checkpoint == first.LastPosition
	})
	require.Zero(t, h.EventsBehind)
	require.True(t, h.HasCheckpoint)
	require.False(t, h.LastProgressAt.IsZero())
	require.True(t, h.OldestUnhandledAt.IsZero())
	require.Zero(t, h.Behind(time.Now()))

	// The handler holds the next event: events wait, and the checkpoint
	// moved just now.
	more := mustAppend(t, s, streamID("health"), es.NoStream, Events(2))
	h = awaitHealth(t, sub, name, "catching up", func(h es.SubscriptionHealth) bool { return h.EventsBehind == 2 && h.HiddenEvents == 0 })
	require.Equal(t, es.HealthCatchingUp, h.Health)
	require.False(t, h.OldestUnhandledAt.IsZero())
	blocked.Store(false)
	close(release)
	awaitHealth(t, sub, name, "live again", func(h es.SubscriptionHealth) bool {
		return h.Health == es.HealthLive && h.Checkpoint == more.LastPosition
	})
	require.NoError(t, run.stop(t))
	h = health(t, sub, name)
	require.Equal(t, es.HealthIdle, h.Health, "stopped")
	require.Equal(t, more.LastPosition, h.Checkpoint)
}

func testHealthFilters(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	kept := mustAppend(t, s, streamID("kept"), es.NoStream, Events(1))
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Categories: []string{"kept"}, CheckpointEvery: 1}))
	r.waitFor(t, 1)
	awaitHealth(t, sub, name, "live", func(h es.SubscriptionHealth) bool { return h.Checkpoint == kept.LastPosition })
	require.NoError(t, run.stop(t))
	// Events of other categories are not behind: the subscription will
	// never handle them.
	mustAppend(t, s, streamID("skipped"), es.NoStream, Events(3))
	mustAppend(t, s, streamID("kept"), es.NoStream, Events(2))
	h := awaitHealth(t, sub, name, "two kept events behind", func(h es.SubscriptionHealth) bool { return h.EventsBehind == 2 })
	require.Equal(t, es.HealthIdle, h.Health)
}

func testHealthFailing(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	mustAppend(t, s, streamID("failing"), es.NoStream, Events(1))
	boom := errors.New("boom: cannot handle")

	// Retrying: failing, with the handler's error.
	run := start(t, sub, name, func(context.Context, es.Event) error { return boom },
		fastOpts(es.SubscribeOpts{HandlerRetries: 1 << 20, RetryBackoff: 20 * time.Millisecond}))
	h := awaitHealth(t, sub, name, "failing while retrying", func(h es.SubscriptionHealth) bool { return h.Health == es.HealthFailing })
	require.Contains(t, h.LastError, "boom: cannot handle")
	require.Equal(t, int64(1), h.EventsBehind)
	require.NoError(t, run.stop(t))

	// Stopped after its retries: still failing, until an instance runs
	// again and handles the event.
	run = start(t, sub, name, func(context.Context, es.Event) error { return boom }, fastOpts(es.SubscribeOpts{}))
	var herr *es.HandlerError
	require.ErrorAs(t, run.wait(t), &herr)
	h = health(t, sub, name)
	require.Equal(t, es.HealthFailing, h.Health)
	require.Contains(t, h.LastError, "boom: cannot handle")

	r := newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{CheckpointEvery: 1}))
	r.waitFor(t, 1)
	h = awaitHealth(t, sub, name, "live after the fix", func(h es.SubscriptionHealth) bool { return h.Health == es.HealthLive })
	require.Empty(t, h.LastError)
	require.NoError(t, run.stop(t))
}

func testResetRefusedWhileRunning(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	mustAppend(t, s, streamID("reset"), es.NoStream, Events(2))
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	r.waitFor(t, 2)
	require.ErrorIs(t, sub.ResetCheckpoint(t.Context(), name, es.Position{}), es.ErrSubscriptionRunning)
	_, err := sub.DeleteCheckpoint(t.Context(), name)
	require.ErrorIs(t, err, es.ErrSubscriptionRunning)
	require.NoError(t, run.stop(t))
	require.NoError(t, sub.ResetCheckpoint(t.Context(), name, es.Position{}))
	requireCheckpoint(t, sub, name, es.Position{})
}

func testResetRebuildsAndRewinds(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("rebuild"), es.NoStream, Events(4))
	awaitVisible(t, s, res.LastPosition)
	all := readAll(t, s, nil)
	r := newRecorder()
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	r.waitFor(t, 4)
	require.NoError(t, run.stop(t))
	requireCheckpoint(t, sub, name, res.LastPosition)

	// Rewind to the second event: the next run delivers the last two.
	require.NoError(t, sub.ResetCheckpoint(t.Context(), name, all[1].Position))
	requireCheckpoint(t, sub, name, all[1].Position)
	r = newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{}))
	got := r.waitFor(t, 2)
	require.Equal(t, []int64{3, 4}, versionsOf(got))
	require.NoError(t, run.stop(t))

	// Reset to the start: a rebuild delivers everything again.
	require.NoError(t, sub.ResetCheckpoint(t.Context(), name, es.Position{}))
	r = newRecorder()
	run = start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{Start: es.StartFromEnd}))
	got = r.waitFor(t, 4)
	require.Equal(t, []int64{1, 2, 3, 4}, versionsOf(got), "a reset checkpoint exists: StartFromEnd does not apply")
	require.NoError(t, run.stop(t))
}

func testResetInvalid(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	res := mustAppend(t, s, streamID("reset"), es.NoStream, Events(1))
	require.ErrorIs(t, sub.ResetCheckpoint(t.Context(), "", es.Position{}), es.ErrInvalidArgument)
	beyond := es.NewPosition(res.LastPosition.TxKey()+1_000_000, 1)
	require.ErrorIs(t, sub.ResetCheckpoint(t.Context(), subscriptionName(), beyond), es.ErrInvalidArgument)
}

func testProgress(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	var last es.AppendResult
	for range 10 {
		last = mustAppend(t, s, streamID("progress"), es.NoStream, Events(5))
	}
	awaitVisible(t, s, last.LastPosition)
	var (
		mu    sync.Mutex
		calls []es.SubscriptionProgress
	)
	r := newRecorder()
	run := start(t, sub, name, func(ctx context.Context, e es.Event) error {
		time.Sleep(time.Millisecond) // some work: every batch outlasts the interval
		return r.handle(ctx, e)
	}, fastOpts(es.SubscribeOpts{BatchSize: 5, ProgressInterval: time.Millisecond, OnProgress: func(p es.SubscriptionProgress) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, p)
	}}))
	r.waitFor(t, 50)
	awaitState(t, sub, name, es.SubscriptionLive)
	require.NoError(t, run.stop(t))

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, calls)
	final := calls[len(calls)-1]
	require.True(t, final.CaughtUp, "the last call says it caught up: %+v", final)
	require.Equal(t, int64(50), final.Handled)
	require.Equal(t, last.LastPosition, final.Position)
	require.Equal(t, name, final.Name)
	var during []es.SubscriptionProgress
	for _, p := range calls[:len(calls)-1] {
		require.False(t, p.CaughtUp)
		during = append(during, p)
	}
	require.NotEmpty(t, during, "calls while catching up")
	for i, p := range during {
		require.Positive(t, p.Rate, "call %d", i)
		require.Equal(t, int64(50), p.Handled+p.Behind, "call %d: handled and behind make the backlog: %+v", i, p)
		if p.Behind > 0 {
			require.Positive(t, p.Remaining, "call %d", i)
		}
		if i > 0 {
			require.GreaterOrEqual(t, p.Handled, during[i-1].Handled)
		}
	}
}

// logBuffer collects a slog handler's JSON records.
type logBuffer struct{ syncbuf.Buffer }

// records returns the JSON records written so far.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(b.String())), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal(line, &rec))
		out = append(out, rec)
	}
	return out
}

func testLogging(t *testing.T, s es.Store) {
	sub := subscriber(t, s)
	name := subscriptionName()
	res := mustAppend(t, s, streamID("logged"), es.NoStream, Events(1))
	buf := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := newRecorder()
	r.fail = func(e es.Event, calls int) error {
		if calls == 1 {
			return errors.New("boom once")
		}
		return nil
	}
	run := start(t, sub, name, r.handle, fastOpts(es.SubscribeOpts{HandlerRetries: 1, Logger: logger}))
	r.waitFor(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), subscribeTimeout)
	defer cancel()
	require.NoError(t, sub.WaitFor(ctx, name, res.LastPosition))
	require.NoError(t, run.stop(t))

	want := map[string]string{ // message: level
		"subscription active":      "INFO",
		"handler failed; retrying": "WARN",
		"subscription stopped":     "INFO",
		"subscription caught up":   "DEBUG",
	}
	seen := map[string]bool{}
	for _, rec := range buf.records(t) {
		msg, _ := rec["msg"].(string)
		level, ok := want[msg]
		if !ok {
			continue
		}
		require.Equal(t, level, rec["level"], msg)
		require.Equal(t, name, rec["subscription"], "%s names its subscription", msg)
		if msg == "handler failed; retrying" {
			require.Equal(t, "boom once", rec["error"])
			require.Equal(t, res.LastPosition.String(), rec["event"])
		}
		seen[msg] = true
	}
	for msg := range want {
		require.True(t, seen[msg], "no %q record", msg)
	}
}
