package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

const (
	// firstNormalXID is the first transaction id PostgreSQL hands out
	// (0 to 2 are reserved), in every epoch.
	firstNormalXID = 3

	// slruPagesPerSegment is the number of pages in a pg_xact segment
	// file (SLRU_PAGES_PER_SEGMENT); a page holds the status of four
	// transactions per byte.
	slruPagesPerSegment = 32
)

// advanceXID moves the transaction counter of a freshly initialised,
// stopped cluster to next (epoch in the high 32 bits) and starts it, the
// way pg_upgrade carries a counter into a new cluster:
//
//  1. start the server without autovacuum and VACUUM FREEZE every database
//     (template0 too), so that no row refers to a transaction id of the
//     old counter: rows whose xmin lies more than 2^31 ids behind the new
//     counter would otherwise look as if they came from the future, and
//     vanish;
//  2. stop it and run pg_resetwal -x (next id) -e (epoch) -u (oldest id),
//     creating the pg_xact (commit log) segment that holds the new id,
//     zero-filled, as the pg_resetwal documentation asks: the server reads
//     the page of the next id at startup. pg_multixact needs nothing, as
//     the multixact counters do not move;
//  3. start it again and set every table's relfrozenxid and every
//     database's datfrozenxid to the new id (as pg_upgrade's
//     set_frozenxids does), so that the catalogs agree with the control
//     file and VACUUM neither warns about nor "repairs" values from the
//     future, and autovacuum sees nothing to freeze.
func (c *Cluster) advanceXID(next uint64) error {
	ctx, cancel := context.WithTimeout(context.Background(), programTimeout)
	defer cancel()
	xid, epoch := uint32(next), uint32(next>>32)

	if err := c.start("-c", "autovacuum=off"); err != nil {
		return err
	}
	current, blockSize, err := c.counter(ctx)
	if err == nil && next < current {
		err = fmt.Errorf("pgtest: NextXID %d is below the counter initdb left, %d", next, current)
	}
	if err == nil {
		err = c.inEveryDatabase(ctx, "VACUUM (FREEZE)")
	}
	if err := errors.Join(err, c.Stop()); err != nil {
		return err
	}

	u := strconv.FormatUint(uint64(xid), 10)
	cmd := c.serverCommand(ctx, c.dir, "pg_resetwal", "-x", u, "-e", strconv.FormatUint(uint64(epoch), 10), "-u", u, "-D", c.dataDir)
	if err := runCommand(cmd); err != nil {
		return err
	}
	if err := c.createXactSegment(xid, blockSize); err != nil {
		return err
	}

	if err := c.Start(); err != nil {
		return err
	}
	if err := c.inEveryDatabase(ctx,
		"UPDATE pg_catalog.pg_class SET relfrozenxid = '"+u+"' WHERE relkind IN ('r', 'm', 't')"); err != nil {
		return err
	}
	return c.exec(ctx, "postgres", "UPDATE pg_catalog.pg_database SET datfrozenxid = '"+u+"'")
}

// counter returns the running server's next full transaction id (without
// taking one) and its block size.
func (c *Cluster) counter(ctx context.Context) (next uint64, blockSize int, err error) {
	conn, err := c.connect(ctx, "postgres")
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = conn.QueryRow(ctx, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, current_setting('block_size')::int").
		Scan(&next, &blockSize)
	if err != nil {
		return 0, 0, fmt.Errorf("pgtest: reading the transaction counter: %w", err)
	}
	return next, blockSize, nil
}

// createXactSegment makes sure that the pg_xact segment file holding the
// status of transaction xid exists and is complete: it creates it, or
// extends a shorter one (initdb writes only the pages it used), with
// zeroes, which mean "in progress", right for ids not handed out yet.
func (c *Cluster) createXactSegment(xid uint32, blockSize int) error {
	xidsPerSegment := uint32(blockSize) * 4 * slruPagesPerSegment
	segmentSize := int64(blockSize) * slruPagesPerSegment
	path := filepath.Join(c.dataDir, "pg_xact", fmt.Sprintf("%04X", xid/xidsPerSegment))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: creating the pg_xact segment: %w", err)
	}
	info, err := f.Stat()
	if err == nil && info.Size() < segmentSize {
		err = f.Truncate(segmentSize)
	}
	if err := errors.Join(err, f.Close(), c.chown(path)); err != nil {
		return fmt.Errorf("pgtest: creating the pg_xact segment: %w", err)
	}
	return nil
}
