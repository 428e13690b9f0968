package pgtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Upgrade moves the data of cluster c into a new cluster with pg_upgrade,
// as a user upgrading PostgreSQL does, and starts the new cluster (its own
// temporary directory and socket; the caller must call [Cluster.Remove] on
// it). c is stopped first (fast shutdown) and stays stopped; pg_upgrade
// copies its files (no --link), so c is left intact and may be started
// again. The new cluster is initialised like [StartCluster]'s, with
// opts.Settings; its databases, roles, and transaction counter (next id and
// epoch) come from c. Both sides use the binaries of [BinDir]: pg_upgrade
// accepts the same major version on both sides.
//
// pg_upgrade runs as the server's OS user in a work directory inside the
// new cluster's directory, starts each server itself there on a unix socket
// (no TCP: it sets listen_addresses to the empty string), and stops it
// again. Those servers are not children of the test process: if it dies
// during the upgrade, they may outlive it. opts may be nil; opts.NextXID
// must be 0.
func (c *Cluster) Upgrade(ctx context.Context, opts *ClusterOptions) (*Cluster, error) {
	opts = cmp.Or(opts, &ClusterOptions{})
	if opts.NextXID != 0 {
		return nil, errors.New("pgtest: an upgraded cluster takes the old cluster's transaction counter: NextXID must be 0")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := c.Stop(); err != nil {
		return nil, err
	}
	n, err := newCluster()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = n.Remove()
		}
	}()
	if err := n.initdb(opts.Settings); err != nil {
		return nil, err
	}

	work := filepath.Join(n.dir, "upgrade")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := n.chown(work); err != nil {
		return nil, err
	}
	cmd := n.serverCommand(ctx, work, "pg_upgrade",
		"-b", c.binDir, "-B", n.binDir,
		"-d", c.dataDir, "-D", n.dataDir,
		"-U", clusterSuperuser,
		"-s", work,
		"--no-sync")
	if err := runCommand(cmd); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, upgradeLogs(n.dataDir))
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	ok = true
	return n, nil
}

// upgradeLogs returns the tails of the logs pg_upgrade left in the new
// data directory after a failure (they go with the cluster's directory).
func upgradeLogs(dataDir string) string {
	const maxTail = 2 << 10
	var b strings.Builder
	_ = filepath.WalkDir(filepath.Join(dataDir, "pg_upgrade_output.d"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil || len(data) == 0 {
			return nil
		}
		if len(data) > maxTail {
			data = data[len(data)-maxTail:]
		}
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", filepath.Base(path), data)
		return nil
	})
	return b.String()
}
