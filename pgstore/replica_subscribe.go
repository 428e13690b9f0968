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
)

// A subscription that reads a standby (SubscriptionConfig.ReadReplicas)
// reads the log there (Read, Hidden) and does everything else on the
// primary, on its listener connection: the lease, the LISTEN (a standby
// cannot LISTEN, and the primary's notifications do not reach it), the
// checkpoint, the end of the log (End), the transactional form's
// transaction, parked events. The delivery guarantees are those of a
// subscription on the primary: a standby shows a prefix of the primary's
// log (what it has replayed, up to its own horizon), so reading after the
// checkpoint there returns the next events of the log or none yet, never a
// later one first; reading the primary or another standby next is as safe.
//
// Two servers, two views of the log's end, and the subscription delivers
// what both show:
//   - A notification wakes the subscription before its standby may have
//     replayed the append: a read that finds nothing while the standby's
//     log ends before the primary's counts as hidden events (Hidden), which
//     the engine re-reads soon, backing off up to a second, until the
//     standby shows them.
//   - A standby may show a commit before the primary's own snapshots do:
//     the primary makes a commit visible only after flushing its WAL (and,
//     with synchronous replication, after standbys confirmed it), and the
//     standby can replay it in between. A batch is cut at the primary's end
//     of the log (log_end: below the primary's horizon too), so that every
//     event handed over is one the primary shows, with everything before
//     it: the checkpoint can be saved there (advance_checkpoint refuses a
//     position beyond the primary's log), and a handler finds it on the
//     primary. The events cut off count as hidden until the primary shows
//     them.

// replicaMeasureEvery is how often a subscription on a standby measures
// the standby's lag and, when it changed, reports it (report_replica).
const replicaMeasureEvery = time.Second

// replicaReportEvery is how often an unchanged lag is reported again.
const replicaReportEvery = 30 * time.Second

// standbyQueryTimeout bounds a statement on a standby: one that hangs (a
// network partition that resets nothing) counts as the standby failing,
// well before the subscription's lease (renewed every LeaseTTL/3) lapses.
const standbyQueryTimeout = 10 * time.Second

// primaryEndFresh is how long the primary's end of the log, once read,
// is trusted as a lower bound of it.
const primaryEndFresh = time.Second

// readsFromPrimary is what report_replica records for a session that
// reads the primary.
const readsFromPrimary = "primary"

// logSource is where one subscription session reads the log: a standby,
// while it answers, or the primary.
type logSource struct {
	replica *pgxpool.Pool // nil: the session reads the primary
	index   int           // the standby's index in Config.Replicas
	name    string        // its host:port

	// After a read on the standby failed for a reason reconnecting may
	// cure (it restarts, it lost its connection), the session tries the
	// next standby at once; once every standby failed in a row, it reads
	// the primary until downUntil, the wait doubling with each round.
	failures  int
	downUntil time.Time
	backoff   time.Duration
	// cover, when coverSet: the last End (the primary's), which the next
	// Read must cover (a read that does not fill its batch says the log is
	// handled up to End): it reads the standby once the standby's log
	// reaches it, else the primary.
	cover    es.Position
	coverSet bool
	// primaryEnd is the primary's end of the log when last read, at
	// primaryEndAt.
	primaryEnd   es.Position
	primaryEndAt time.Time

	measuredAt  time.Time // last lag measurement
	reported    bool      // something was reported in this session
	reportedAt  time.Time
	reportedOn  string
	reportedLag time.Duration
	warned      bool // a failed measurement or report was logged
}

// useReplica makes the session read standby i of Config.Replicas.
func (ss *session) useReplica(i int) {
	r := ss.s.config.Replicas[i]
	cc := r.Config().ConnConfig
	ss.log.replica, ss.log.index, ss.log.name = r, i, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))
}

// onReplica reports whether the session reads its standby now.
func (ss *session) onReplica() bool {
	return ss.log.replica != nil && !time.Now().Before(ss.log.downUntil)
}

// onLog runs fn with the server the session reads the log from: its
// standby (with standbyQueryTimeout), or the primary (the listener
// connection) when it reads no standby, while its standbys are down, or
// when fn failed on the standby for a reason other than the session's end
// or a fatal error (which it returns). fn must start afresh on each call;
// q tells it which server it runs on.
func (ss *session) onLog(ctx context.Context, fn func(ctx context.Context, q querier) error) error {
	if ss.onReplica() {
		rctx, cancel := context.WithTimeout(ctx, standbyQueryTimeout)
		err := fn(rctx, ss.log.replica)
		cancel()
		if err == nil {
			if ss.log.failures > 0 {
				ss.log.failures, ss.log.backoff = 0, 0
				if lg := ss.logger; lg != nil {
					lg.Info("subscription reads a replica again", "subscription", ss.name, "replica", ss.log.name)
				}
			}
			return nil
		}
		if ctx.Err() != nil || fatal(err) {
			return err
		}
		ss.replicaFailed(err)
	}
	return fn(ctx, ss.l.conn)
}

// replicaFailed moves the session to the next standby after a read on its
// standby failed with err; once every standby failed in a row, the session
// reads the primary for a while (SubscriptionConfig.ReconnectBackoff,
// doubling up to ReconnectBackoffMax), then tries the standbys again.
func (ss *session) replicaFailed(err error) {
	c := &ss.s.config.Subscriptions
	failed := ss.log.name
	ss.log.failures++
	n := len(ss.s.config.Replicas)
	ss.useReplica((ss.log.index + 1) % n)
	if ss.log.failures%n != 0 {
		if lg := ss.logger; lg != nil {
			lg.Warn("subscription moves to another replica: its replica failed", "subscription", ss.name,
				"replica", failed, "error", err, "next", ss.log.name)
		}
		return
	}
	ss.log.backoff = min(max(2*ss.log.backoff, c.ReconnectBackoff), c.ReconnectBackoffMax)
	ss.log.downUntil = time.Now().Add(ss.log.backoff)
	if lg := ss.logger; lg != nil {
		lg.Warn("subscription reads the primary: its replicas failed", "subscription", ss.name,
			"replica", failed, "error", err, "retry_in", ss.log.backoff)
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

// standbyCovers reports whether the session's standby shows the log up to
// pos (its log_end, below its horizon, is at or after it), waiting for it
// as a read with es.ReadAfter does, up to Config.ReplicaWait; a standby
// that fails hands the wait to the next one, and once every standby failed
// it reports false.
func (ss *session) standbyCovers(ctx context.Context, pos es.Position) (bool, error) {
	covered, err := pollReplica(ctx, ss.s.config.ReplicaWait, func(ctx context.Context) (bool, error) {
		end, onStandby, err := ss.standbyEnd(ctx)
		switch {
		case err != nil:
			return false, err
		case onStandby:
			return !end.Before(pos), nil
		case ss.onReplica():
			return false, nil // moved to the next standby: ask it
		default:
			return false, errNoStandby
		}
	})
	if errors.Is(err, errNoStandby) {
		return false, nil
	}
	return covered, err
}

// errNoStandby ends standbyCovers' wait: every standby failed.
var errNoStandby = errors.New("no standby answers")

// standbyEnd returns the end of the visible log on the session's standby,
// and whether the standby answered (false: the session reads no standby,
// or its standby failed just now and it reads the primary).
func (ss *session) standbyEnd(ctx context.Context) (es.Position, bool, error) {
	if !ss.onReplica() {
		return es.Position{}, false, nil
	}
	var end es.Position
	onStandby := false
	err := ss.onLog(ctx, func(ctx context.Context, q querier) (err error) {
		onStandby = q != querier(ss.l.conn)
		end, err = ss.logEnd(ctx, q)
		return err
	})
	if err != nil || !onStandby {
		return es.Position{}, false, err
	}
	return end, true, nil
}

// readPrimaryEnd reads the primary's end of the log and, with after set,
// whether events after it are hidden behind the primary's horizon (SQL
// log_end and log_hidden, one statement).
func (ss *session) readPrimaryEnd(ctx context.Context, after *es.Position) (es.Position, bool, error) {
	var (
		tx     uint64
		global int64
		hidden bool
	)
	var atx *uint64
	var apos *int64
	if after != nil {
		t, g := after.TxKey(), after.Global()
		atx, apos = &t, &g
	}
	if err := ss.l.conn.QueryRow(ctx, ss.s.sql.logEndHidden, atx, apos).Scan(&tx, &global, &hidden); err != nil {
		return es.Position{}, false, interpretError(err)
	}
	end := es.NewPosition(tx, global)
	ss.log.primaryEnd, ss.log.primaryEndAt = end, time.Now()
	return end, hidden, nil
}

// cutAtPrimary cuts a batch read from the standby (the events from start
// on) at the primary's end of the log: reading that end again only when
// the batch goes beyond the end last read.
func (ss *session) cutAtPrimary(ctx context.Context, batch []es.Event, start int) ([]es.Event, error) {
	if len(batch) == start || !ss.log.primaryEnd.Before(batch[len(batch)-1].Position) {
		return batch, nil
	}
	end, _, err := ss.readPrimaryEnd(ctx, nil)
	if err != nil {
		return nil, err
	}
	for len(batch) > start && end.Before(batch[len(batch)-1].Position) {
		batch = batch[:len(batch)-1]
	}
	return batch, nil
}

// hiddenOnStandby reports whether events after `after` exist that the
// session cannot hand over yet: the standby's log ends before the
// primary's (it has not replayed them), or after it (the primary does not
// show them yet), or the primary hides events behind an older running
// transaction. It returns ok false when the standby did not answer (the
// session reads the primary now).
func (ss *session) hiddenOnStandby(ctx context.Context, after es.Position) (hidden, ok bool, err error) {
	standbyEnd, onStandby, err := ss.standbyEnd(ctx)
	if err != nil || !onStandby {
		return false, false, err
	}
	if time.Since(ss.log.primaryEndAt) < primaryEndFresh && standbyEnd.Before(ss.log.primaryEnd) {
		return true, true, nil // still replaying what the primary showed
	}
	primaryEnd, primaryHidden, err := ss.readPrimaryEnd(ctx, &after)
	if err != nil {
		return false, false, err
	}
	return primaryHidden || standbyEnd != primaryEnd, true, nil
}

// measureReplica measures where the session reads from and its standby's
// lag, at most every replicaMeasureEvery, and reports it (report_replica)
// when it changed or was last reported replicaReportEvery ago. A session
// that reads no standby reports once that it reads the primary. Neither a
// failed measurement nor a failed report stops the subscription (a schema
// without report_replica, or migrated down below 009, cannot record it):
// the first is logged, once per session.
func (ss *session) measureReplica(ctx context.Context) {
	now := time.Now()
	if ss.log.replica == nil && ss.log.reported || now.Sub(ss.log.measuredAt) < replicaMeasureEvery {
		return
	}
	ss.log.measuredAt = now
	on, lag := readsFromPrimary, time.Duration(-1)
	if ss.log.replica != nil {
		l, onStandby, err := ss.replicaLag(ctx)
		if err != nil {
			ss.measureFailed(fmt.Errorf("measuring the replica's lag: %w", err))
			return
		}
		if onStandby {
			on, lag = ss.log.name, l
		}
	}
	if err := ss.reportReplica(ctx, on, lag); err != nil {
		ss.measureFailed(err)
		// A session on the primary reports once, or gives up.
		ss.log.reported = ss.log.reported || ss.log.replica == nil
	}
}

// measureFailed logs err, the first time in the session.
func (ss *session) measureFailed(err error) {
	if lg := ss.logger; lg != nil && !ss.log.warned && ss.l.conn != nil && !ss.l.conn.IsClosed() {
		lg.Warn("subscription cannot report where it reads the log", "subscription", ss.name, "error", err)
	}
	ss.log.warned = true
}

// replicaLag returns how long ago the oldest event the primary shows and
// the session's standby does not was recorded (zero when it shows them
// all), and whether the session reads its standby.
func (ss *session) replicaLag(ctx context.Context) (time.Duration, bool, error) {
	standbyEnd, onStandby, err := ss.standbyEnd(ctx)
	if err != nil || !onStandby {
		return 0, false, err
	}
	var lag time.Duration
	err = ss.l.conn.QueryRow(ctx, ss.s.sql.recordedAgo, standbyEnd.TxKey(), standbyEnd.Global()).Scan(&lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, true, nil // the primary has nothing after it either
	}
	if err != nil {
		return 0, true, interpretError(err)
	}
	return lag, true, nil
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
