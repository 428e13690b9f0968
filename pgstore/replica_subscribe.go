package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// A subscription that reads a standby (SubscriptionConfig.ReadReplicas)
// reads the log there (Read, End, Hidden) and does everything else on the
// primary, on its listener connection: the lease, the LISTEN (a standby
// cannot LISTEN, and the primary's notifications do not reach it), the
// checkpoint, the transactional form's transaction, parked events. The
// delivery guarantees are those of a subscription on the primary: a
// standby shows a prefix of the primary's log (what it has replayed, up to
// its own horizon), so reading after the checkpoint there returns the next
// events of the log or none yet, never a later one first; reading the
// primary or another standby next is as safe.
//
// A notification wakes the subscription before its standby may have
// replayed the append: a read that finds nothing while the standby's log
// ends before the primary's counts as hidden events (Hidden), which the
// engine re-reads soon, backing off up to a second, until the standby
// shows them.

// replicaMeasureEvery is how often a subscription on a standby measures
// the standby's lag and, when it changed, reports it (report_replica).
const replicaMeasureEvery = time.Second

// replicaReportEvery is how often an unchanged lag is reported again.
const replicaReportEvery = 30 * time.Second

// readsFromPrimary is what report_replica records for a session that
// reads the primary.
const readsFromPrimary = "primary"

// logSource is where one subscription session reads the log: a standby,
// while it answers, or the primary.
type logSource struct {
	replica *pgxpool.Pool // nil: the session reads the primary
	name    string        // the standby's host:port

	// After a read on the standby failed for a reason reconnecting may
	// cure (it restarts, it lost its connection), the session reads the
	// primary until downUntil, the wait doubling with each failure.
	downUntil time.Time
	backoff   time.Duration
	// endOnPrimary: the last End was the primary's, so the next Read goes
	// there too (a read that does not fill its batch must cover End).
	endOnPrimary bool

	measuredAt  time.Time // last lag measurement
	reported    bool      // something was reported in this session
	reportedAt  time.Time
	reportedOn  string
	reportedLag time.Duration
}

// pickReplica returns the standby the next subscription session reads
// (the replicas in turn) and its name.
func (s *Store) pickReplica() (*pgxpool.Pool, string) {
	r := s.config.Replicas[int(s.nextReplica.Add(1)%uint64(len(s.config.Replicas)))]
	cc := r.Config().ConnConfig
	return r, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// onReplica reports whether the session reads its standby now.
func (ss *session) onReplica() bool {
	return ss.log.replica != nil && !time.Now().Before(ss.log.downUntil)
}

// onLog runs fn with the server the session reads the log from: its
// standby, or the primary (the listener connection) when it reads no
// standby, while its standby is down, or when fn failed on the standby for
// a reason other than the session's end or a fatal error (which it
// returns). Such a failure makes the session read the primary for a while
// (SubscriptionConfig.ReconnectBackoff, doubling up to
// ReconnectBackoffMax), then try the standby again. fn must start afresh
// on each call.
func (ss *session) onLog(ctx context.Context, fn func(q querier) error) error {
	if ss.onReplica() && !ss.log.endOnPrimary {
		err := fn(ss.log.replica)
		if err == nil {
			if ss.log.backoff > 0 {
				ss.log.backoff = 0
				if lg := ss.logger; lg != nil {
					lg.Info("subscription reads its replica again", "subscription", ss.name, "replica", ss.log.name)
				}
			}
			return nil
		}
		if ctx.Err() != nil || fatal(err) {
			return err
		}
		ss.replicaFailed(err)
	}
	return fn(ss.l.conn)
}

// replicaFailed makes the session read the primary for a while after a
// read on its standby failed with err.
func (ss *session) replicaFailed(err error) {
	c := &ss.s.config.Subscriptions
	ss.log.backoff = min(max(2*ss.log.backoff, c.ReconnectBackoff), c.ReconnectBackoffMax)
	ss.log.downUntil = time.Now().Add(ss.log.backoff)
	if lg := ss.logger; lg != nil {
		lg.Warn("subscription reads the primary: its replica failed", "subscription", ss.name,
			"replica", ss.log.name, "error", err, "retry_in", ss.log.backoff)
	}
}

// logEnd returns the end of the visible log on q (SQL log_end).
func (ss *session) logEnd(ctx context.Context, q querier) (es.Position, error) {
	var tx uint64
	var global int64
	if err := q.QueryRow(ctx, ss.s.sql.logEnd).Scan(&tx, &global); err != nil {
		return es.Position{}, interpretError(err)
	}
	return es.NewPosition(tx, global), nil
}

// primaryShowWait bounds how long a session waits for the primary to show
// an event its standby shows (awaitPrimary).
const primaryShowWait = 30 * time.Second

// awaitPrimary waits until the primary shows the event at pos, which the
// session's standby showed, or its removal. A standby may show a commit
// before the primary's own snapshots do: the primary makes a commit
// visible only after flushing its WAL (and, with synchronous replication,
// after the standbys confirmed it), and a standby can replay it in
// between. Until then the primary would refuse a checkpoint at the event
// (advance_checkpoint: beyond the last event of the log), and a handler
// that looks the event up on the primary would not find it; so no event is
// handed over before the primary shows it. The wait is that of the commit
// in flight: pauses of 1 ms doubling up to 20 ms.
func (ss *session) awaitPrimary(ctx context.Context, pos es.Position) error {
	deadline := time.Now().Add(primaryShowWait)
	pause := time.Millisecond
	for {
		var shown bool
		if err := ss.l.conn.QueryRow(ctx, ss.s.sql.primaryShown, pos.TxKey(), pos.Global()).Scan(&shown); err != nil {
			return fmt.Errorf("waiting for the primary to show %s: %w", pos, interpretError(err))
		}
		if shown {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the primary does not show %s, which the replica %s shows, after %v", pos, ss.log.name, primaryShowWait)
		}
		if !storekit.Sleep(ctx, pause) {
			return ctx.Err()
		}
		pause = min(2*pause, replicaPoll)
	}
}

// replicaBehind reports whether the session's standby shows less of the
// log than the primary, and how long ago the oldest event it does not show
// yet was recorded (its lag, zero when it shows everything). A standby
// that fails to answer makes the session read the primary (onLog): then it
// reports false.
func (ss *session) replicaBehind(ctx context.Context) (bool, time.Duration, error) {
	primary, err := ss.logEnd(ctx, ss.l.conn)
	if err != nil {
		return false, 0, err
	}
	var replica es.Position
	onReplica := false
	if err := ss.onLog(ctx, func(q querier) error {
		onReplica = q != querier(ss.l.conn)
		replica, err = ss.logEnd(ctx, q)
		return err
	}); err != nil {
		return false, 0, err
	}
	if !onReplica || !replica.Before(primary) {
		return false, 0, nil
	}
	var lag time.Duration
	err = ss.l.conn.QueryRow(ctx, ss.s.sql.recordedAgo, replica.TxKey(), replica.Global()).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return true, 0, nil // the event was removed meanwhile
	}
	if err != nil {
		return false, 0, interpretError(err)
	}
	return true, lag, nil
}

// measureReplica measures where the session reads from and its standby's
// lag, at most every replicaMeasureEvery, and reports it (report_replica)
// when it changed or was last reported replicaReportEvery ago. A session
// that reads no standby reports once that it reads the primary.
func (ss *session) measureReplica(ctx context.Context) error {
	now := time.Now()
	if ss.log.replica == nil && ss.log.reported || now.Sub(ss.log.measuredAt) < replicaMeasureEvery {
		return nil
	}
	ss.log.measuredAt = now
	on, lag := readsFromPrimary, time.Duration(-1)
	if ss.log.replica != nil {
		_, l, err := ss.replicaBehind(ctx)
		if err != nil {
			return fmt.Errorf("measuring the replica's lag: %w", err)
		}
		if ss.onReplica() {
			on, lag = ss.log.name, l
		}
	}
	return ss.reportReplica(ctx, on, lag)
}

// reportReplica records on and lag (negative: none) when they changed
// enough to tell, or were last recorded replicaReportEvery ago.
func (ss *session) reportReplica(ctx context.Context, on string, lag time.Duration) error {
	lg := &ss.log
	if lg.reported && on == lg.reportedOn && time.Since(lg.reportedAt) < replicaReportEvery &&
		(lag < 0) == (lg.reportedLag < 0) && (lag-lg.reportedLag).Abs() < 100*time.Millisecond {
		return nil
	}
	var lagArg *time.Duration
	if lag >= 0 {
		lagArg = &lag
	}
	err := ss.asHolder(ctx, ss.l.conn, ss.s.sql.reportReplica, on, lagArg)
	if errors.Is(err, errNotHolder) {
		return nil // Keep finds the lease lost
	}
	if err != nil {
		return fmt.Errorf("reporting the replica's lag: %w", err)
	}
	lg.reported, lg.reportedAt, lg.reportedOn, lg.reportedLag = true, time.Now(), on, lag
	return nil
}
