package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgevent/es"
	"github.com/pgevent/es/internal/pgtest"
	"github.com/pgevent/es/pgstore"
)

// notifyPayload is the wake-up hint append sends on <schema>_events.
type notifyPayload struct {
	StreamID string `json:"stream_id"`
	Category string `json:"category"`
	Version  int64  `json:"version"`
	Position string `json:"position"`
}

// quietWindow is how long a listener waits to conclude that no notification
// came. A notification that should not exist is also caught by the
// ordering checks below, which do not depend on it.
const quietWindow = 300 * time.Millisecond

// arrivalTimeout is how long a listener waits for a notification that must
// come: long, since a busy machine may deliver it late, and a wait ends as
// soon as it comes.
const arrivalTimeout = 2 * time.Minute

type listenBundle struct {
	ctx      context.Context
	store    *pgstore.Store
	channel  string
	listener *pgx.Conn
}

// listenSetup returns a fresh schema whose store's connections ask for the
// full notification payload (es.notify_payload = full), and a listener.
func listenSetup(t *testing.T) *listenBundle {
	t.Helper()
	ctx := testContext(t, testTimeout)
	pool, schema := pgtest.NewSchema(t)
	cfg := pool.Config()
	cfg.ConnConfig.RuntimeParams["es.notify_payload"] = "full"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := pgstore.New(pool, &pgstore.Config{Schema: schema})
	require.NoError(t, err)
	channel := schema + "_events"
	require.Equal(t, channel, store.Channel())

	// A dedicated connection, as psql or any client would LISTEN.
	listener := connect(t, ctx, pgtest.ConnString(t))
	_, err = listener.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	require.NoError(t, err)
	return &listenBundle{ctx: ctx, store: store, channel: channel, listener: listener}
}

// next waits up to d for a notification on the listener; nil when none came.
func (b *listenBundle) next(t *testing.T, d time.Duration) *pgconn.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	n, err := b.listener.WaitForNotification(ctx)
	if err != nil {
		require.True(t, errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err), "WaitForNotification: %v", err)
		require.NoError(t, b.ctx.Err(), "the test ran out of time")
		require.False(t, b.listener.IsClosed(), "a wait timeout must not close the listener")
		return nil
	}
	return n
}

// requireNotification checks that n is a notification on the channel about
// the append res to stream.
func (b *listenBundle) requireNotification(t *testing.T, n *pgconn.Notification, stream string, res es.AppendResult) {
	t.Helper()
	require.NotNil(t, n, "no notification about %s", stream)
	require.Equal(t, b.channel, n.Channel)
	require.Less(t, len(n.Payload), 8000)
	var p notifyPayload
	require.NoError(t, json.Unmarshal([]byte(n.Payload), &p), n.Payload)
	require.Equal(t, notifyPayload{
		StreamID: stream,
		Category: es.Category(stream),
		Version:  res.StreamVersion,
		Position: res.LastPosition.String(),
	}, p, n.Payload)
	pos, err := es.ParsePosition(p.Position)
	require.NoError(t, err)
	require.Equal(t, res.LastPosition, pos)
}

func someEvents(n int) []es.NewEvent {
	events := make([]es.NewEvent, n)
	for i := range events {
		events[i] = es.NewEvent{ID: uuid.New(), Type: "Happened", Data: []byte{0x80}}
	}
	return events
}

func TestListenNotify(t *testing.T) {
	t.Parallel()

	t.Run("AfterCommitOnly", func(t *testing.T) {
		t.Parallel()
		b := listenSetup(t)
		tx, err := b.store.Pool().Begin(b.ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.Background()) }()
		res, err := b.store.WithTx(tx).Append(b.ctx, "order-7", es.NoStream, someEvents(2))
		require.NoError(t, err)

		require.Nil(t, b.next(t, quietWindow), "a notification before commit")
		require.NoError(t, tx.Commit(b.ctx))
		b.requireNotification(t, b.next(t, arrivalTimeout), "order-7", res)

		// A plain append notifies too, and a rolled-back one does not.
		tx, err = b.store.Pool().Begin(b.ctx)
		require.NoError(t, err)
		_, err = b.store.WithTx(tx).Append(b.ctx, "order-8", es.NoStream, someEvents(1))
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(b.ctx))
		res, err = b.store.Append(b.ctx, "invoice-1", es.NoStream, someEvents(3))
		require.NoError(t, err)
		b.requireNotification(t, b.next(t, arrivalTimeout), "invoice-1", res)
	})

	t.Run("NotifyOff", func(t *testing.T) {
		t.Parallel()
		b := listenSetup(t)
		quiet := connect(t, b.ctx, pgtest.ConnString(t))
		_, err := quiet.Exec(b.ctx, "SET es.notify = off; SET es.notify_payload = full")
		require.NoError(t, err)

		tx, err := quiet.Begin(b.ctx)
		require.NoError(t, err)
		_, err = b.store.WithTx(tx).Append(b.ctx, "quiet-1", es.NoStream, someEvents(1))
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))
		_, err = quiet.Exec(b.ctx, fmt.Sprintf(`SELECT %s.append_event('quiet-2', 'Happened', '\x80')`,
			pgx.Identifier{b.store.Schema()}.Sanitize()))
		require.NoError(t, err)
		require.Nil(t, b.next(t, quietWindow), "a notification with es.notify = off")

		// Another session with the default notifies: the next notification
		// is about its append, not about the quiet ones.
		res, err := b.store.Append(b.ctx, "loud-1", es.NoStream, someEvents(1))
		require.NoError(t, err)
		b.requireNotification(t, b.next(t, arrivalTimeout), "loud-1", res)

		// Back on in the quiet session.
		_, err = quiet.Exec(b.ctx, "SET es.notify = on")
		require.NoError(t, err)
		tx, err = quiet.Begin(b.ctx)
		require.NoError(t, err)
		res, err = b.store.WithTx(tx).Append(b.ctx, "quiet-3", es.NoStream, someEvents(1))
		require.NoError(t, err)
		require.NoError(t, tx.Commit(b.ctx))
		b.requireNotification(t, b.next(t, arrivalTimeout), "quiet-3", res)
	})

	// psql as the listener: it prints the notifications its session
	// receives after each command.
	t.Run("Psql", func(t *testing.T) {
		t.Parallel()
		b := listenSetup(t)
		schema := pgx.Identifier{b.store.Schema()}.Sanitize()
		out, err := psql(t, b.ctx, pgtest.ConnString(t), "-At",
			"-c", "LISTEN "+pgx.Identifier{b.channel}.Sanitize(),
			"-c", "SET es.notify_payload = full",
			"-c", fmt.Sprintf(`SELECT stream_version FROM %s.append_event('psql-1', 'Happened', '\x80')`, schema),
		)
		require.NoError(t, err, out)
		m := regexp.MustCompile(`Asynchronous notification "` + regexp.QuoteMeta(b.channel) +
			`" with payload "(.*)" received from server process`).FindStringSubmatch(out)
		require.NotNil(t, m, "psql printed no notification:\n%s", out)
		var p notifyPayload
		require.NoError(t, json.Unmarshal([]byte(m[1]), &p), m[1])
		require.Equal(t, "psql-1", p.StreamID)
		require.Equal(t, "psql", p.Category)
		require.Equal(t, int64(1), p.Version)
		_, err = es.ParsePosition(p.Position)
		require.NoError(t, err)

		// The Go listener got the same one.
		n := b.next(t, arrivalTimeout)
		require.NotNil(t, n)
		require.Equal(t, m[1], n.Payload)
	})
}

// es.notify is read like a PostgreSQL boolean setting: every spelling of
// false that SET accepts for a boolean turns notifications off. Each quiet
// append is followed by one from a session with the default; notifications
// arrive in commit order, so the next one must be about the latter.
func TestListenNotifyOffSpellings(t *testing.T) {
	t.Parallel()
	b := listenSetup(t)
	quiet := connect(t, b.ctx, pgtest.ConnString(t))
	schema := pgx.Identifier{b.store.Schema()}.Sanitize()
	for i, spelling := range []string{"off", "OFF", "Off", "false", "FALSE", "f", "no", "n", "0"} {
		_, err := quiet.Exec(b.ctx, "SELECT set_config('es.notify', $1, false)", spelling)
		require.NoError(t, err)
		_, err = quiet.Exec(b.ctx, fmt.Sprintf(`SELECT %s.append_event('quiet-%d', 'Happened', '\x80')`, schema, i))
		require.NoError(t, err)
		loud := fmt.Sprintf("loud-%d", i)
		res, err := b.store.Append(b.ctx, loud, es.NoStream, someEvents(1))
		require.NoError(t, err)
		n := b.next(t, arrivalTimeout)
		require.NotNil(t, n)
		var p notifyPayload
		require.NoError(t, json.Unmarshal([]byte(n.Payload), &p))
		require.Equal(t, loud, p.StreamID, "es.notify = %q did not turn notifications off", spelling)
		b.requireNotification(t, n, loud, res)
	}
}
