package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errLeaseLost is returned by a subscription session whose lease was taken
// by another instance (it lapsed while this one was busy or cut off): the
// session ends and the subscription waits for the lease again.
var errLeaseLost = errors.New("the subscription's lease was taken over by another instance")

// acquireLease takes the lease of subscription name for holder (SQL
// acquire_lease), reporting whether it got it.
func (s *Store) acquireLease(ctx context.Context, q rowQuerier, name, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, s.sql.acquireLease, name, holder, ttl).Scan(&ok); err != nil {
		return false, interpretError(err)
	}
	return ok, nil
}

// Keep renews the session's lease (SQL renew_lease) when a third of its TTL
// has passed since it was last taken or renewed, and returns errLeaseLost
// when another instance has taken it. It also measures and reports where
// the session reads the log from (replica_subscribe.go).
func (ss *session) Keep(ctx context.Context) error {
	ss.measureReplica(ctx)
	ttl := ss.s.config.Subscriptions.LeaseTTL
	if time.Since(ss.renewed) < ttl/3 {
		return nil
	}
	var ok bool
	if err := ss.l.conn.QueryRow(ctx, ss.s.sql.renewLease, ss.name, ss.holder, ttl).Scan(&ok); err != nil {
		return fmt.Errorf("renewing the lease: %w", interpretError(err))
	}
	if !ok {
		return errLeaseLost
	}
	ss.renewed = time.Now()
	ss.l.lastUsed = ss.renewed
	return nil
}

// releaseLease gives the lease up (SQL release_lease) so that a waiting
// instance takes over at once, and so that once Subscribe has returned the
// subscription no longer runs (a reset is not refused). When the
// subscription's connection is gone (a query interrupted by the stop closes
// it), the pool releases it. Best effort: a lease left behind expires, or is
// freed when its backend is gone.
func (ss *session) releaseLease() {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if !ss.l.conn.IsClosed() {
		if _, err := ss.l.conn.Exec(ctx, ss.s.sql.releaseLease, ss.name, ss.holder); err == nil {
			return
		}
	}
	_, _ = ss.s.pool.Exec(ctx, ss.s.sql.releaseLease, ss.name, ss.holder)
}

// errNotHolder: the instance no longer holds the subscription's lease.
var errNotHolder = errors.New("the subscription's lease is not held")

// asHolder runs one of the functions only the lease's holder may call
// (report_status, park_event, parked_retried) with q: their first two
// arguments are the subscription and the holder, args the rest, and they
// return whether the holder holds the lease (errNotHolder when not).
func (ss *session) asHolder(ctx context.Context, q rowQuerier, sql string, args ...any) error {
	var held bool
	if err := q.QueryRow(ctx, sql, append([]any{ss.name, ss.holder}, args...)...).Scan(&held); err != nil {
		return interpretError(err)
	}
	if !held {
		return errNotHolder
	}
	ss.l.lastUsed = time.Now()
	return nil
}

// errorText is err's text for SQL, NULL for no error.
func errorText(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}
