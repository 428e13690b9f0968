package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
)

const (
	// EnvDatabaseURL names the environment variable with the connection
	// string of a server to use instead of a throwaway cluster.
	EnvDatabaseURL = "ES_TEST_DATABASE_URL"

	// EnvRequirePostgres names the environment variable that, set to 1,
	// makes tests fail instead of skip when no PostgreSQL is available.
	EnvRequirePostgres = "ES_REQUIRE_POSTGRES"

	adminTimeout = time.Minute

	// leakTimeout is how long the leak check of MainCheckingLeaks waits for
	// goroutines that are ending. goleak.Find alone gives them under half a
	// second, which a busy machine may not.
	leakTimeout = time.Minute
)

// The process-wide server, set up on first use.
var (
	mainCalled atomic.Bool

	setupOnce sync.Once
	theServer *server // valid after setupOnce, nil when setupErr is set
	setupErr  error
	setupSkip bool // setupErr means "no PostgreSQL here": skip unless required

	skipNotice sync.Once
)

// server is where the test process's databases live.
type server struct {
	cluster  *Cluster // the throwaway cluster; nil when using EnvDatabaseURL
	url      string   // EnvDatabaseURL; "" for a cluster
	dbname   string   // the per-process database
	connStr  string   // connection string of dbname
	adminStr string   // connection string of the maintenance database

	mu      sync.Mutex
	created map[string]bool // databases not yet dropped
	roles   []string        // roles the migrations of NewSchema created
}

// Main runs the package's tests (m.Run), then stops and removes the
// throwaway cluster the process started, or drops the databases it created
// on the ES_TEST_DATABASE_URL server, and exits with the tests' exit code.
// Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The cleanup also runs when m.Run panics on the main goroutine. A panic in
// a test goroutine ends the process at once; the server then shuts itself
// down (see the package documentation).
//
// An example cannot skip itself, so when no PostgreSQL can be found (no
// ES_TEST_DATABASE_URL and no binaries) and ES_REQUIRE_POSTGRES is not 1,
// Main skips the package's examples (adding ^Example to -test.skip), with
// a loud message.
func Main(m *testing.M) { os.Exit(run(m, false)) }

// MainCheckingLeaks is [Main] that also fails the run when goroutines are
// left running once the tests have finished and the server is cleaned up
// (checked with goleak, waiting up to a minute for goroutines that are
// ending). Use it in packages whose code starts goroutines:
//
//	func TestMain(m *testing.M) { pgtest.MainCheckingLeaks(m) }
func MainCheckingLeaks(m *testing.M) { os.Exit(run(m, true)) }

// run runs the tests and cleans up, and returns the exit code.
func run(m *testing.M, checkLeaks bool) int {
	mainCalled.Store(true)
	skipExamplesWithoutPostgres()
	finished := false
	defer func() {
		if !finished { // panicking: clean up, let the panic continue
			teardown()
		}
	}()
	code := m.Run()
	finished = true
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if checkLeaks && code == 0 {
		if err := findLeaks(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	return code
}

// skipExamplesWithoutPostgres adds the examples to -test.skip when no
// PostgreSQL can be found and none is required: an example that needs one
// cannot skip itself (it has no testing.TB), it would fail. A throwaway
// cluster that fails to start is only found out later: the examples then
// fail.
func skipExamplesWithoutPostgres() {
	if requirePostgres() || os.Getenv(EnvDatabaseURL) != "" {
		return
	}
	if _, err := BinDir(); err == nil {
		return
	}
	if !flag.Parsed() {
		flag.Parse()
	}
	f := flag.Lookup("test.skip")
	if f == nil {
		return
	}
	if err := f.Value.Set(withExamplesSkipped(f.Value.String())); err != nil {
		return
	}
	fmt.Fprintf(os.Stderr, "!!! pgtest: no PostgreSQL (set %s or install PostgreSQL): SKIPPING the examples (set %s=1 to fail instead)\n",
		EnvDatabaseURL, EnvRequirePostgres)
}

// withExamplesSkipped returns the -test.skip pattern skip extended to skip
// every example too. A top-level | separates alternatives in the testing
// package's patterns, each matched on its own.
func withExamplesSkipped(skip string) string {
	if skip == "" {
		return "^Example"
	}
	return skip + "|^Example"
}

// findLeaks returns goleak.Find's error if goroutines are still running
// after leakTimeout.
func findLeaks() error {
	deadline := time.Now().Add(leakTimeout)
	for {
		err := goleak.Find()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // polling, with a deadline
	}
}

// ConnString returns a connection string to a database reserved for this
// test process, created on first use (named es_test_<pid>_<random>). Tests
// that share it must keep out of each other's way (schema per test) or use
// [NewDatabase].
//
// When no PostgreSQL can be found it skips t with a loud message, or fails t
// when ES_REQUIRE_POSTGRES=1. It is safe to call from parallel tests.
func ConnString(t testing.TB) string {
	t.Helper()
	return serverFor(t).connStr
}

// NewDatabase creates a fresh, empty database (from template0) on the same
// server and returns its connection string. The database is dropped, with
// any connections to it terminated, in t.Cleanup.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := serverFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	name, err := s.createDatabase(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		if err := s.dropDatabase(ctx, name); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	connStr, err := s.connStringFor(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return connStr
}

// Pool returns a *pgxpool.Pool on [ConnString]'s database; the pool is
// closed in t.Cleanup.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), ConnString(t))
	if err != nil {
		t.Fatalf("pgtest: creating pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminConnString returns a connection string for the server's maintenance
// database (postgres) as a superuser: the bootstrap superuser postgres on a
// throwaway cluster, the ES_TEST_DATABASE_URL user otherwise.
func AdminConnString(t testing.TB) string {
	t.Helper()
	return serverFor(t).adminStr
}

// serverFor returns the process's server, setting it up on first use, or
// skips or fails t.
func serverFor(t testing.TB) *server {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("pgtest: the test package must call pgstoretest.Main (pgtest.Main inside es) from TestMain " +
			"(func TestMain(m *testing.M) { pgstoretest.Main(m) }) so that its PostgreSQL is cleaned up")
	}
	setupOnce.Do(setup)
	if setupErr == nil {
		return theServer
	}
	if setupSkip && !requirePostgres() {
		msg := fmt.Sprintf("%v: SKIPPING (set %s=1 to fail instead)", setupErr, EnvRequirePostgres)
		skipNotice.Do(func() { fmt.Fprintln(os.Stderr, "!!! "+msg) })
		t.Skip(msg)
	}
	t.Fatal(setupErr)
	return nil
}

func requirePostgres() bool {
	required, _ := strconv.ParseBool(os.Getenv(EnvRequirePostgres))
	return required
}

// setup picks the server and creates the per-process database.
func setup() {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()

	s := &server{created: map[string]bool{}}
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		s.url = u
		admin, err := withDatabase(u, "postgres")
		if err != nil {
			setupErr = fmt.Errorf("pgtest: %s: %w", EnvDatabaseURL, err)
			return
		}
		s.adminStr = admin
	} else {
		if _, err := BinDir(); err != nil {
			setupErr = fmt.Errorf("pgtest: no PostgreSQL (set %s or install PostgreSQL)", EnvDatabaseURL)
			setupSkip = true
			return
		}
		c, err := StartCluster(nil)
		if err != nil {
			setupErr = fmt.Errorf("pgtest: starting a throwaway PostgreSQL cluster: %w", err)
			setupSkip = true
			return
		}
		s.cluster = c
		s.adminStr = c.ConnString("postgres")
	}

	name, err := s.createDatabase(ctx)
	if err == nil {
		s.dbname = name
		s.connStr, err = s.connStringFor(name)
	}
	if err != nil {
		setupErr = fmt.Errorf("pgtest: %w", errors.Join(err, s.close()))
		return
	}
	theServer = s
}

// teardown removes the process's server state; afterwards no new server can
// be set up.
func teardown() error {
	setupOnce.Do(func() { setupErr = errors.New("pgtest: used after pgtest.Main finished") })
	if theServer == nil {
		return nil
	}
	return theServer.close()
}

// close drops the remaining databases on an external server, or removes the
// throwaway cluster.
func (s *server) close() error {
	if s.cluster != nil {
		return s.cluster.Remove()
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.created))
	for name := range s.created {
		names = append(names, name)
	}
	s.mu.Unlock()
	slices.Sort(names)

	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var errs []error
	for _, name := range names {
		errs = append(errs, s.dropDatabase(ctx, name))
	}
	// Roles are cluster-wide: drop the ones the test schemas' migrations
	// created, now that the databases holding their grants are gone.
	s.mu.Lock()
	roles := s.roles
	s.mu.Unlock()
	for _, role := range roles {
		if err := s.admin(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
			errs = append(errs, fmt.Errorf("dropping role %s: %w", role, err))
		}
	}
	return errors.Join(errs...)
}

// noteSchemaRoles records the roles the migrations create for schema (see
// schema/code/roles.sql), to drop them at the end on an external server.
func (s *server) noteSchemaRoles(schema string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles = append(s.roles, schema+"_reader", schema+"_writer", schema+"_snapshotter", schema+"_admin", schema+"_keyholder", schema+"_forgetter")
}

func (s *server) connStringFor(dbname string) (string, error) {
	if s.cluster != nil {
		return s.cluster.ConnString(dbname), nil
	}
	return withDatabase(s.url, dbname)
}

// createDatabase creates an empty database with a fresh name.
func (s *server) createDatabase(ctx context.Context) (string, error) {
	var random [6]byte
	_, _ = rand.Read(random[:])
	name := fmt.Sprintf("es_test_%d_%s", os.Getpid(), hex.EncodeToString(random[:]))

	s.mu.Lock()
	s.created[name] = true
	s.mu.Unlock()
	err := s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0")
	if err != nil {
		s.mu.Lock()
		delete(s.created, name)
		s.mu.Unlock()
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return name, nil
}

// dropDatabase drops a database, terminating its connections.
func (s *server) dropDatabase(ctx context.Context, name string) error {
	err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.created, name)
	s.mu.Unlock()
	return nil
}

// admin runs one statement on the maintenance database, on a connection of
// its own (CREATE/DROP DATABASE cannot run in a transaction, and a fresh
// connection leaves no goroutine behind).
func (s *server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminStr)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDatabase returns connStr (a URL or keyword/value string) with its
// database replaced by dbname.
func withDatabase(connStr, dbname string) (string, error) {
	if strings.HasPrefix(connStr, "postgres://") || strings.HasPrefix(connStr, "postgresql://") {
		u, err := url.Parse(connStr)
		if err != nil {
			return "", fmt.Errorf("parsing connection URL: %w", err)
		}
		u.Path = "/" + dbname
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Del("dbname")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In a keyword/value string the last dbname wins.
	return strings.TrimSpace(connStr) + " dbname=" + quoteConnValue(dbname), nil
}
