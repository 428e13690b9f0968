package pgtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/pgevent/es/storekit"
)

// replicaSettings are the defaults a replica adds to the primary's
// settings: it answers queries while it replays (hot_standby), and it
// tells the primary which rows its queries still need
// (hot_standby_feedback), so that replaying the primary's clean-up never
// cancels a test's query on the replica.
var replicaSettings = map[string]string{
	"hot_standby":          "on",
	"hot_standby_feedback": "on",
}

// replicaPoll is how often the replica is polled while waiting for it.
const replicaPoll = 10 * time.Millisecond

// StartReplica starts a streaming hot-standby replica of the running
// cluster c, in a cluster of its own (its own temporary directory and
// socket; the caller must call [Cluster.Remove] on it), and waits until it
// accepts connections and streams WAL from c. It copies c with
// pg_basebackup -R (a fast checkpoint, WAL streamed during the copy; -R
// writes primary_conninfo and standby.signal), then appends pgtest's
// settings to the copied postgresql.conf: the defaults, opts.Settings, and
// the replica's own socket directory. The replica is read-only: writes on
// it fail with SQLSTATE 25006 (read_only_sql_transaction). Use
// [Cluster.WaitReplayed] to wait until it shows what c has committed. opts
// may be nil; opts.NextXID must be 0 (a replica has its primary's
// counter).
func (c *Cluster) StartReplica(ctx context.Context, opts *ClusterOptions) (*Cluster, error) {
	opts = cmp.Or(opts, &ClusterOptions{})
	if opts.NextXID != 0 {
		return nil, errors.New("pgtest: a replica takes its primary's transaction counter: NextXID must be 0")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r, err := newCluster()
	if err != nil {
		return nil, err
	}
	r.primary = c
	ok := false
	defer func() {
		if !ok {
			_ = r.Remove()
		}
	}()

	cmd := r.serverCommand(ctx, r.dir, "pg_basebackup", "-D", r.dataDir, "-R", "-X", "stream", "-c", "fast",
		"--no-sync", "-d", c.ConnString("postgres"))
	if err := runCommand(cmd); err != nil {
		return nil, err
	}
	settings := maps.Clone(replicaSettings)
	maps.Copy(settings, opts.Settings)
	if err := r.writeConf(settings); err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	if err := r.waitStreaming(ctx); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// waitStreaming polls the replica until its WAL receiver streams from the
// primary.
func (c *Cluster) waitStreaming(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var status string
		err := conn.QueryRow(ctx, "SELECT coalesce((SELECT status FROM pg_catalog.pg_stat_wal_receiver), 'not started')").Scan(&status)
		if err != nil {
			return fmt.Errorf("pgtest: waiting for the replica to stream: %w", err)
		}
		if status == "streaming" {
			return nil
		}
		if !storekit.Sleep(ctx, replicaPoll) {
			return fmt.Errorf("pgtest: the replica is not streaming (WAL receiver: %s): %w; log: %s", status, ctx.Err(), c.logPath)
		}
	}
}

// WaitReplayed waits until the replica c has replayed its primary's WAL up
// to where it ended when WaitReplayed was called (the primary's
// pg_current_wal_lsn() against the replica's pg_last_wal_replay_lsn()), so
// that everything the primary had committed by then is visible on the
// replica. It polls until then or until ctx ends. c must come from
// [Cluster.StartReplica], and both must run.
func (c *Cluster) WaitReplayed(ctx context.Context) error {
	if c.primary == nil {
		return errors.New("pgtest: WaitReplayed: the cluster is not a replica")
	}
	primary, err := c.primary.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	var target string
	err = primary.QueryRow(ctx, "SELECT pg_catalog.pg_current_wal_lsn()::text").Scan(&target)
	_ = primary.Close(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("pgtest: reading the primary's WAL position: %w", err)
	}

	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for {
		var replayed string
		var done bool
		err := conn.QueryRow(ctx, "SELECT coalesce(pg_catalog.pg_last_wal_replay_lsn()::text, ''), "+
			"coalesce(pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", target).Scan(&replayed, &done)
		if err != nil {
			return fmt.Errorf("pgtest: reading the replica's replay position: %w", err)
		}
		if done {
			return nil
		}
		if !storekit.Sleep(ctx, replicaPoll) {
			return fmt.Errorf("pgtest: the replica replayed up to %s, not %s: %w", replayed, target, ctx.Err())
		}
	}
}
