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
	if err := q.QueryRow(ctx, "SELECT "+s.config.Schema+".acquire_lease($1, $2, $3)", name, holder, ttl).Scan(&ok); err != nil {
		return false, interpretError(err)
	}
	return ok, nil
}

// renewLease extends holder's lease of subscription name (SQL renew_lease),
// reporting whether holder still held it.
func (s *Store) renewLease(ctx context.Context, q rowQuerier, name, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, "SELECT "+s.config.Schema+".renew_lease($1, $2, $3)", name, holder, ttl).Scan(&ok); err != nil {
		return false, interpretError(err)
	}
	return ok, nil
}

// keepLease renews the session's lease when a third of its TTL has passed
// since it was last taken or renewed, and returns errLeaseLost when another
// instance has taken it.
func (sub *subscription) keepLease(ctx context.Context) error {
	if time.Since(sub.renewed) < sub.o.LeaseTTL/3 {
		return nil
	}
	ok, err := sub.s.renewLease(ctx, sub.l.conn, sub.name, sub.holder, sub.o.LeaseTTL)
	if err != nil {
		return fmt.Errorf("renewing the lease: %w", err)
	}
	if !ok {
		return errLeaseLost
	}
	sub.renewed = time.Now()
	sub.l.lastUsed = sub.renewed
	return nil
}

// releaseLease gives the lease up when the session ends, so that a waiting
// instance takes over at once (best effort: a lease left behind expires, or
// is freed when its backend is gone).
func (sub *subscription) releaseLease() {
	if sub.l == nil || sub.l.conn.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_, _ = sub.l.conn.Exec(ctx, "SELECT "+sub.s.config.Schema+".release_lease($1, $2)", sub.name, sub.holder)
}
