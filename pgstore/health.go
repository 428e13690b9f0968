package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// SubscriptionHealth describes the subscription name (SQL
// subscription_health); see [es.Subscriber.SubscriptionHealth].
func (s *Store) SubscriptionHealth(ctx context.Context, name string) (es.SubscriptionHealth, error) {
	if err := storekit.ValidateSubscriptionName(name); err != nil {
		return es.SubscriptionHealth{}, err
	}
	rows, err := s.db.Query(ctx, s.sql.subscriptionHealth, name)
	if err != nil {
		return es.SubscriptionHealth{}, fmt.Errorf("pgstore: health of subscription %q: %w", name, interpretError(err))
	}
	h, err := pgx.CollectExactlyOneRow(rows, scanHealth)
	if err != nil {
		return es.SubscriptionHealth{}, fmt.Errorf("pgstore: health of subscription %q: %w", name, interpretError(err))
	}
	return h, nil
}

// Subscriptions describes every subscription that has a checkpoint, a
// reported status or a lease (SQL subscriptions_view), by name.
func (s *Store) Subscriptions(ctx context.Context) ([]es.SubscriptionHealth, error) {
	rows, err := s.db.Query(ctx, s.sql.subscriptions)
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading subscriptions_view: %w", interpretError(err))
	}
	hs, err := pgx.CollectRows(rows, scanHealth)
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading subscriptions_view: %w", interpretError(err))
	}
	return hs, nil
}

func scanHealth(row pgx.CollectableRow) (es.SubscriptionHealth, error) {
	var (
		h             es.SubscriptionHealth
		health        string
		tx            uint64
		global        int64
		progress, age *time.Time
		rate          *float64
		lastError     *string
		readsFrom     *string
		replicaLag    *time.Duration
	)
	if err := row.Scan(&h.Name, &health, &tx, &global, &h.HasCheckpoint, &progress, &h.EventsBehind, &h.HiddenEvents, &age, &rate,
		&h.ParkedEvents, &lastError, &readsFrom, &replicaLag); err != nil {
		return es.SubscriptionHealth{}, err
	}
	h.Health, h.Checkpoint = es.Health(health), es.NewPosition(tx, global)
	if progress != nil {
		h.LastProgressAt = *progress
	}
	if age != nil {
		h.OldestUnhandledAt = *age
	}
	h.Rate = deref(rate)
	h.ReadsFrom, h.ReplicaLag = deref(readsFrom), deref(replicaLag)
	if lastError != nil && h.Health == es.HealthFailing {
		h.LastError = *lastError
	}
	return h, nil
}

// HorizonHolder is a running transaction that holds the global log's
// horizon back: no event committed after it began writing is read (by
// ReadAll, subscriptions) until it ends. See [Store.HorizonHolders].
type HorizonHolder struct {
	// PID is the backend's process id (0 for a prepared transaction);
	// Database, User and ApplicationName say whose it is.
	PID             int
	Database        string
	User            string
	ApplicationName string
	// State is the backend's state ("idle in transaction": a client that
	// left its transaction open), or "prepared".
	State string
	// XactStart is when the transaction began; QueryStart and Query are
	// its current or last statement.
	XactStart  time.Time
	QueryStart time.Time
	Query      string
	// XID is the transaction's id; PreparedGID the name of a prepared
	// transaction.
	XID         int64
	PreparedGID string
}

// HorizonHolders lists the running transactions that hold the global
// log's horizon back, oldest first (SQL horizon_holders): when a
// subscription is live with hidden events, or looks stalled, the first one
// is what it waits for. It shows other users' sessions in full only to a
// login with pg_read_all_stats (or a superuser).
func (s *Store) HorizonHolders(ctx context.Context) ([]HorizonHolder, error) {
	rows, err := s.db.Query(ctx, s.sql.horizonHolders)
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading horizon_holders: %w", interpretError(err))
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HorizonHolder, error) {
		var (
			h                                HorizonHolder
			pid                              *int32
			db, user, app, state, query, gid *string
			xactStart, queryStart            *time.Time
			xid                              *int64
		)
		if err := row.Scan(&pid, &db, &user, &app, &state, &xactStart, &queryStart, &query, &xid, &gid); err != nil {
			return HorizonHolder{}, err
		}
		if pid != nil {
			h.PID = int(*pid)
		}
		h.Database, h.User, h.ApplicationName, h.State = deref(db), deref(user), deref(app), deref(state)
		h.Query, h.PreparedGID = deref(query), deref(gid)
		if xactStart != nil {
			h.XactStart = *xactStart
		}
		if queryStart != nil {
			h.QueryStart = *queryStart
		}
		if xid != nil {
			h.XID = *xid
		}
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: reading horizon_holders: %w", interpretError(err))
	}
	return hs, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Report records what the instance reports (SQL report_status), with its
// filters, so that subscription_health counts only the events it keeps.
func (ss *session) Report(ctx context.Context, r storekit.Report, err error, rate float64) error {
	var ratep *float64
	if rate > 0 {
		ratep = &rate
	}
	if err := ss.asHolder(ctx, ss.l.conn, ss.s.sql.reportStatus, string(r), errorText(err), ss.categories, ss.types, ratep); err != nil {
		return fmt.Errorf("reporting status: %w", err)
	}
	return nil
}

// Behind counts the events after `after` that the subscription's filters
// keep (SQL log_behind).
func (ss *session) Behind(ctx context.Context, after es.Position) (int64, error) {
	var n int64
	p, np := ss.partitionArgs()
	if err := ss.l.conn.QueryRow(ctx, ss.s.sql.logBehind, after.TxKey(), after.Global(), ss.categories, ss.types, p, np).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the events behind: %w", interpretError(err))
	}
	return n, nil
}
