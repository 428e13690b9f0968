package pgtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// clusterPort is the port of every throwaway cluster. Each cluster has
	// its own socket directory and listens on no TCP address, so they never
	// collide.
	clusterPort = 5432

	// clusterSuperuser is the bootstrap superuser created by initdb.
	clusterSuperuser = "postgres"

	// serverOSUser runs initdb and postgres when the test process is root.
	serverOSUser = "postgres"

	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
	killTimeout  = 10 * time.Second

	// programTimeout bounds the preparation of a cluster with
	// ClusterOptions.NextXID (StartCluster takes no context).
	programTimeout = 5 * time.Minute
)

// defaultSettings are the postgresql.conf settings of every throwaway
// cluster unless ClusterOptions.Settings overrides them: fast (no fsync, no
// full page writes) but with synchronous commits, and room for stress tests.
var defaultSettings = map[string]string{
	"fsync":              "off",
	"full_page_writes":   "off",
	"synchronous_commit": "on",
	"max_connections":    "300",
	"shared_buffers":     "128MB",
	"log_min_messages":   "warning",
}

// ClusterOptions configures [StartCluster] (and the new cluster of
// [Cluster.StartReplica] and [Cluster.Upgrade]). A nil *ClusterOptions is
// the zero value.
type ClusterOptions struct {
	// Settings are extra postgresql.conf settings (e.g. "fsync": "on"). They
	// override the defaults, which are fsync=off, full_page_writes=off,
	// synchronous_commit=on, max_connections=300, shared_buffers=128MB and
	// log_min_messages=warning (and, for a replica, hot_standby=on and
	// hot_standby_feedback=on); listen_addresses, port and
	// unix_socket_directories are set by the cluster and cannot be
	// overridden. Defaults to none.
	Settings map[string]string

	// NextXID, when not zero, is where the new cluster's transaction
	// counter starts: the full 64-bit transaction id (epoch in the high 32
	// bits) that pg_current_xact_id() returns, so 3_000_000_000 is late in
	// epoch 0 and 1<<32 + 1000 early in epoch 1. Use it to test what
	// depends on transaction ids (xid8 values near or past the 32-bit
	// wrap, or a database moved to a cluster whose counter is lower, as
	// after pg_dump and pg_restore). pgtest's own preparation takes a few
	// ids after it, so the first transaction of a test gets a little more
	// (less than NextXID+100). Its low 32 bits must be at least 3 (ids
	// 0 to 2 are reserved), and it must be above the counter initdb leaves
	// (a few hundred). StartCluster only: a replica and an upgraded
	// cluster take the counter of the cluster they come from. Defaults to
	// 0: the counter initdb leaves.
	NextXID uint64
}

func (o *ClusterOptions) validate() error {
	if o.NextXID != 0 && uint32(o.NextXID) < firstNormalXID {
		return fmt.Errorf("pgtest: NextXID %d: its low 32 bits (%d) must be at least %d", o.NextXID, uint32(o.NextXID), firstNormalXID)
	}
	return nil
}

// Cluster is a throwaway PostgreSQL cluster in a temporary directory,
// reachable only through a unix socket in that directory. Its methods are
// safe for concurrent use.
type Cluster struct {
	binDir  string
	dir     string // the temporary directory, removed by Remove
	dataDir string
	sockDir string
	logPath string
	cred    *syscall.Credential // the server's OS user when we are root; nil otherwise
	primary *Cluster            // the cluster a replica streams from; nil for others

	mu      sync.Mutex
	pm      *postmaster // the running server; nil when stopped
	removed bool
}

// postmaster is a running server process, a child of the test process.
type postmaster struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // the wait error; read only after done is closed
}

// StartCluster initialises a new cluster in a temporary directory (initdb
// with trust authentication, superuser postgres, UTF8, C locale), starts it
// and waits until it accepts connections. With opts.NextXID set, the
// transaction counter is advanced before the cluster is handed over (see
// [ClusterOptions.NextXID]). The caller must call [Cluster.Remove]. opts
// may be nil.
func StartCluster(opts *ClusterOptions) (*Cluster, error) {
	opts = cmp.Or(opts, &ClusterOptions{})
	if err := opts.validate(); err != nil {
		return nil, err
	}

	c, err := newCluster()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = c.Remove()
		}
	}()

	if err := c.initdb(opts.Settings); err != nil {
		return nil, err
	}
	if opts.NextXID != 0 {
		if err := c.advanceXID(opts.NextXID); err != nil {
			return nil, err
		}
	} else if err := c.Start(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// newCluster makes the directory of a cluster that has no data directory
// yet, for initdb, pg_basebackup or pg_upgrade to fill.
func newCluster() (*Cluster, error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeClusterDir(cred)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logPath: filepath.Join(dir, "postgres.log"),
		cred:    cred,
	}
	if err := c.makeDirs(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// makeDirs creates the (empty) data and socket directories, owned by the
// server's OS user.
func (c *Cluster) makeDirs() error {
	if err := os.Mkdir(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Mkdir(c.sockDir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return c.chown(c.dataDir, c.sockDir)
}

// chown gives paths to the server's OS user when we run as root.
func (c *Cluster) chown(paths ...string) error {
	if c.cred == nil {
		return nil
	}
	for _, path := range paths {
		if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// ConnString returns a keyword/value connection string for database dbname
// on the cluster, as the superuser postgres over the unix socket, e.g.
// "host=/tmp/es-pg-123/sock port=5432 user=postgres dbname=postgres sslmode=disable".
func (c *Cluster) ConnString(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quoteConnValue(c.sockDir), clusterPort, clusterSuperuser, quoteConnValue(dbname))
}

// LogPath returns the path of the server log, to show or search in a
// failing test.
func (c *Cluster) LogPath() string { return c.logPath }

// Start starts the server on the cluster's data directory and waits until it
// accepts connections. Use it after [Cluster.Stop] or [Cluster.Kill]; after
// a Kill the server runs crash recovery first. Starting a running cluster is
// an error. A failed start reports the tail of the server log.
func (c *Cluster) Start() error {
	return c.start()
}

// start starts the server with extra command-line arguments (such as
// "-c", "autovacuum=off" while pgtest prepares the cluster).
func (c *Cluster) start(args ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.removed {
		return errors.New("pgtest: starting a removed cluster")
	}
	if c.pm != nil {
		select {
		case <-c.pm.done: // died on its own: start again
			c.pm = nil
		default:
			return fmt.Errorf("pgtest: cluster %s is already running", c.dir)
		}
	}

	logFile, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: opening server log: %w", err)
	}
	defer logFile.Close() // the server holds its own copy of the descriptor
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), append([]string{"-D", c.dataDir}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = serverEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = serverSysProcAttr(c.cred)

	pm, err := startPostmaster(cmd)
	if err != nil {
		return fmt.Errorf("pgtest: running postgres: %w", err)
	}
	if err := c.waitReady(pm); err != nil {
		_ = killPostmaster(pm)
		return fmt.Errorf("pgtest: starting PostgreSQL in %s: %w\n--- server log (tail) ---\n%s",
			c.dataDir, err, c.logTail(logStart))
	}
	c.pm = pm
	return nil
}

// Stop shuts the server down with a fast shutdown (what pg_ctl stop -m fast
// does: SIGINT to the postmaster, which disconnects clients, writes a
// checkpoint and exits) and waits until it has exited. If the server does
// not exit within a minute it is killed. Stopping a stopped cluster does
// nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

func (c *Cluster) stopLocked() error {
	pm := c.pm
	if pm == nil {
		return nil
	}
	c.pm = nil

	if err := pm.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: stopping postgres: %w", err)
	}
	select {
	case <-pm.done:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := killPostmaster(pm); err != nil {
		return err
	}
	return fmt.Errorf("pgtest: postgres did not stop within %s and was killed; log: %s", stopTimeout, c.logPath)
}

// Kill simulates a crash: it sends SIGKILL to the postmaster and to all its
// child processes (backends, checkpointer, WAL writer, ...), so nothing gets
// to shut down cleanly, and waits until they are all gone. Connections fail
// afterwards; [Cluster.Start] runs crash recovery. Killing a stopped cluster
// does nothing.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()

	pm := c.pm
	if pm == nil {
		return nil
	}
	c.pm = nil
	return killPostmaster(pm)
}

// Remove stops the server if it runs and deletes the cluster's directory.
// Removing a removed cluster does nothing.
func (c *Cluster) Remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.removed {
		return nil
	}
	stopErr := c.stopLocked()
	c.removed = true
	if err := os.RemoveAll(c.dir); err != nil {
		return errors.Join(stopErr, fmt.Errorf("pgtest: removing cluster directory: %w", err))
	}
	return stopErr
}

// initdb initialises the data directory and writes the settings.
func (c *Cluster) initdb(settings map[string]string) error {
	cmd := exec.Command(filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir,
		"-A", "trust",
		"-U", clusterSuperuser,
		"-E", "UTF8",
		"--locale=C",
		"--no-sync",
	)
	cmd.Dir = c.dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}

	return c.writeConf(settings)
}

// writeConf appends pgtest's settings (the defaults, settings, and the
// cluster's own socket) to postgresql.conf; later lines win, so this also
// overrides the settings of a data directory copied from another cluster.
func (c *Cluster) writeConf(settings map[string]string) error {
	conf, err := clusterConf(settings, c.sockDir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(conf)
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("pgtest: writing postgresql.conf: %w", err)
	}
	return nil
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// clusterConf renders the lines appended to postgresql.conf; later lines
// win, so the fixed network settings come last.
func clusterConf(extra map[string]string, sockDir string) (string, error) {
	settings := maps.Clone(defaultSettings)
	maps.Copy(settings, extra)
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		if !settingName.MatchString(name) {
			return "", fmt.Errorf("pgtest: invalid setting name %q", name)
		}
		fmt.Fprintf(&b, "%s = %s\n", name, quoteConfValue(settings[name]))
	}
	fmt.Fprintf(&b, "listen_addresses = ''\n")
	fmt.Fprintf(&b, "port = %d\n", clusterPort)
	fmt.Fprintf(&b, "unix_socket_directories = %s\n", quoteConfValue(sockDir))
	return b.String(), nil
}

// waitReady polls until the server accepts a connection, the process exits,
// or startTimeout passes.
func (c *Cluster) waitReady(pm *postmaster) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	connString := c.ConnString("postgres")

	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attemptCtx, connString)
		if err == nil {
			err = conn.Ping(attemptCtx)
			_ = conn.Close(context.Background())
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		lastErr = err

		select {
		case <-pm.done:
			return fmt.Errorf("postgres exited: %v", pm.err)
		case <-ctx.Done():
			return fmt.Errorf("server not accepting connections after %s: %w", startTimeout, lastErr)
		case <-tick.C:
		}
	}
}

// logTail returns the end of the server log written since offset from.
func (c *Cluster) logTail(from int64) string {
	const maxTail = 4 << 10
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", c.logPath, err)
	}
	if from > 0 && from <= int64(len(data)) {
		data = data[from:]
	}
	if len(data) > maxTail {
		data = data[len(data)-maxTail:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	if len(data) == 0 {
		return "(empty)"
	}
	return string(data)
}

// startPostmaster starts cmd and a goroutine that reaps it.
func startPostmaster(cmd *exec.Cmd) (*postmaster, error) {
	pm := &postmaster{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go pm.supervise(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return pm, nil
}

// supervise starts the postmaster and waits for it. The parent-death signal
// (see serverSysProcAttr) is sent when the *thread* that started the child
// exits, so the goroutine stays locked to its thread for the postmaster's
// whole life: the Go runtime ends a thread only when a goroutine exits while
// locked to it.
func (pm *postmaster) supervise(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := pm.cmd.Start(); err != nil {
		started <- err
		return
	}
	pm.pid = pm.cmd.Process.Pid
	started <- nil
	pm.err = pm.cmd.Wait()
	close(pm.done)
}

// killPostmaster sends SIGKILL to the postmaster and all its descendants and
// waits until they are gone. The postmaster is stopped (SIGSTOP) first so it
// cannot fork while its children are collected.
func killPostmaster(pm *postmaster) error {
	proc := pm.cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return nil
		}
		return fmt.Errorf("pgtest: stopping postmaster %d: %w", pm.pid, err)
	}
	waitStopped(pm.pid, pm.done)

	children, err := descendants(pm.pid)
	for _, child := range children {
		_ = syscall.Kill(child.pid, syscall.SIGKILL)
	}
	if err := proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: killing postmaster %d: %w", pm.pid, err)
	}

	deadline := time.After(killTimeout)
	select {
	case <-pm.done:
	case <-deadline:
		return fmt.Errorf("pgtest: postmaster %d still running %s after SIGKILL", pm.pid, killTimeout)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		children = slices.DeleteFunc(children, func(p procID) bool { return !p.alive() })
		if len(children) == 0 {
			return err // an error collecting children, if any
		}
		select {
		case <-deadline:
			return fmt.Errorf("pgtest: server processes %v still running %s after SIGKILL", children, killTimeout)
		case <-tick.C:
		}
	}
}

// procID identifies a process across pid reuse.
type procID struct {
	pid   int
	start uint64 // start time in clock ticks since boot; 0 if unknown
}

func (p procID) String() string { return strconv.Itoa(p.pid) }

// serverCredential returns the OS user to run initdb and postgres as: nil
// (the current user) unless we are root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverOSUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, so initdb must run as the %q OS user: %w", serverOSUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %q: %w", serverOSUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %q: %w", serverOSUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// makeClusterDir creates the cluster's temporary directory. It must be
// reachable by the server's OS user, and the socket path inside it must stay
// under the unix socket path limit (107 bytes), so a TMPDIR that fails either
// is replaced by /tmp.
func makeClusterDir(cred *syscall.Credential) (string, error) {
	base := os.TempDir()
	const maxBase = 107 - len("/es-pg-1234567890/sock/.s.PGSQL.5432")
	if len(base) > maxBase || (cred != nil && !othersCanTraverse(base)) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "es-pg-")
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

// othersCanTraverse reports whether every directory on the way to dir is
// searchable by any user.
func othersCanTraverse(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		info, err := os.Stat(dir)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// serverEnv is the environment of initdb and postgres: ours without libpq
// and locale variables, in the C locale.
func serverEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG")
	})
	return append(env, "LC_ALL=C", "LANG=C")
}

// quoteConfValue quotes a postgresql.conf value.
func quoteConfValue(v string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `''`) + "'"
}

var plainConnValue = regexp.MustCompile(`^[A-Za-z0-9_./:-]+$`)

// quoteConnValue quotes a value of a keyword/value connection string when it
// needs it.
func quoteConnValue(v string) string {
	if plainConnValue.MatchString(v) {
		return v
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), `'`, `\'`) + "'"
}
