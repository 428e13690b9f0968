package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// closeTimeout bounds the clean-up a stopping subscription does on its
// listener connection (saving the checkpoint, closing).
const closeTimeout = 5 * time.Second

// listener is a subscription's dedicated connection: hijacked from the
// pool (so pool maintenance never closes it and it never goes back),
// holding the subscription's lease, LISTENing on the store's channel.
// Events are read and checkpoints written on it too. The lease names this
// connection's backend: if the connection dies, another instance may take
// the lease at once.
type listener struct {
	conn     *pgx.Conn
	lastUsed time.Time // last round trip that proved the connection alive
}

// connectListener acquires a connection from the pool, hijacks it and names
// it in pg_stat_activity.application_name.
func (s *Store) connectListener(ctx context.Context, appName string) (*listener, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := c.Hijack()
	l := &listener{conn: conn}
	if _, err := conn.Exec(ctx, setApplicationName, appName); err != nil {
		l.close()
		return nil, err
	}
	l.lastUsed = time.Now()
	return l, nil
}

// close closes the connection, which ends the LISTEN (and frees a lease
// still held for this backend).
func (l *listener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = l.conn.Close(ctx)
}

// listen starts listening on channel.
func (l *listener) listen(ctx context.Context, channel string) error {
	_, err := l.conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	return err
}

// wait waits up to d for a notification. It reports whether one came; a
// timeout is not an error and leaves the connection usable.
func (l *listener) wait(ctx context.Context, d time.Duration, wake <-chan struct{}) (bool, error) {
	select {
	case <-wake:
		return true, nil
	default:
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	woken := make(chan bool, 1)
	go func() {
		select {
		case <-wake:
			woken <- true
			cancel()
		case <-wctx.Done():
			woken <- false
		}
	}()
	n, err := l.conn.WaitForNotification(wctx)
	cancel()
	if <-woken && ctx.Err() == nil && !l.conn.IsClosed() {
		// Interrupted by wake (or a notification came meanwhile): like a
		// timeout, the interruption leaves the connection usable (pgconn
		// interrupts the wait with a deadline).
		return true, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
			if l.conn.IsClosed() {
				return false, err
			}
			return false, nil
		}
		return false, err
	}
	return n != nil, nil
}

// drain discards the notifications already received: one read after them
// covers them all.
func (l *listener) drain() {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		if n, err := l.conn.WaitForNotification(done); err != nil || n == nil {
			return
		}
	}
}

// ping checks the connection with a round trip.
func (l *listener) ping(ctx context.Context) error {
	if err := l.conn.Ping(ctx); err != nil {
		return err
	}
	l.lastUsed = time.Now()
	return nil
}
