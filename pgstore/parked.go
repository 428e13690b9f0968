package pgstore

import (
	"context"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// ParkedEvents returns the subscription's unresolved parked events; see
// [es.Subscriber.ParkedEvents].
func (s *Store) ParkedEvents(ctx context.Context, name string) ([]es.ParkedEvent, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return nil, err
	}
	parked, err := s.parked(ctx, s.db, name)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parked events of %q: %w", name, err)
	}
	return parked, nil
}

func (s *Store) parked(ctx context.Context, q querier, name string) ([]es.ParkedEvent, error) {
	rows, err := q.Query(ctx, s.sql.parkedEvents, name)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var (
		parked   []es.ParkedEvent
		p        es.ParkedEvent
		errText  *string
		attempts int32
	)
	sc := newEventScanner(true)
	for rows.Next() {
		e, err := sc.scan(rows, &p.Behind, &errText, &attempts, &p.ParkedAt, &p.RetryRequested)
		if err != nil {
			return nil, err
		}
		p.Subscription, p.Event, p.Error, p.Attempts = name, e, deref(errText), int(attempts)
		parked = append(parked, p)
	}
	if err := rows.Err(); err != nil {
		return nil, interpretError(err)
	}
	return parked, nil
}

// RetryParked asks the running subscription to retry the parked event at
// pos (SQL retry_parked); see [es.Subscriber.RetryParked].
func (s *Store) RetryParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	found, err := s.resolveParked(ctx, s.sql.retryParked, "retrying", name, pos)
	if found {
		s.progress.RetryRequested(name) // an instance in this process retries at once
	}
	return found, err
}

// SkipParked resolves the parked event at pos without handling it (SQL
// skip_parked); see [es.Subscriber.SkipParked].
func (s *Store) SkipParked(ctx context.Context, name string, pos es.Position) (bool, error) {
	return s.resolveParked(ctx, s.sql.skipParked, "skipping", name, pos)
}

func (s *Store) resolveParked(ctx context.Context, q, what, name string, pos es.Position) (bool, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return false, err
	}
	var found bool
	if err := s.db.QueryRow(ctx, q, name, pos.TxKey(), pos.Global()).Scan(&found); err != nil {
		return false, fmt.Errorf("pgstore: %s parked event %s of %q: %w", what, pos, name, interpretError(err))
	}
	return found, nil
}

// park records p (SQL park_event) with q: the listener connection, or the
// transactional form's transaction.
func (ss *session) park(ctx context.Context, q rowQuerier, p es.ParkedEvent) error {
	var errText *string
	if p.Error != "" {
		errText = &p.Error
	}
	e := &p.Event
	return ss.asHolder(ctx, q, ss.s.sql.parkEvent, e.Position.TxKey(), e.Position.Global(),
		e.StreamID, e.ID, e.Type, p.Behind, errText, p.Attempts)
}

// retried records the outcome of a retry (SQL parked_retried) with q.
func (ss *session) retried(ctx context.Context, q rowQuerier, pos es.Position, handled bool, err error) error {
	return ss.asHolder(ctx, q, ss.s.sql.parkedRetried, pos.TxKey(), pos.Global(), handled, errorText(err))
}

// Park parks p at once (the plain form).
func (ss *session) Park(ctx context.Context, p es.ParkedEvent) error {
	return ss.park(ctx, ss.l.conn, p)
}

// Retried records the outcome of a retry at once (the plain form).
func (ss *session) Retried(ctx context.Context, pos es.Position, handled bool, err error) error {
	return ss.retried(ctx, ss.l.conn, pos, handled, err)
}

// Parked reads the subscription's unresolved parked events.
func (ss *session) Parked(ctx context.Context) ([]es.ParkedEvent, error) {
	return ss.s.parked(ctx, ss.l.conn, ss.name)
}

// Park parks p in the transaction.
func (t *subscriptionTx) Park(ctx context.Context, p es.ParkedEvent) error {
	return t.ss.park(ctx, t.tx, p)
}

// Retried records the outcome of a retry in the transaction.
func (t *subscriptionTx) Retried(ctx context.Context, pos es.Position, handled bool, err error) error {
	return t.ss.retried(ctx, t.tx, pos, handled, err)
}
