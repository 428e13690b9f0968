package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgevent/es/pgstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // an error, or a finding of es verify
	exitUsage   = 2
)

// errUsage marks an error in the command line: the exit status is 2.
var errUsage = errors.New("usage")

// env is what every subcommand gets: the common flags, the output streams.
type env struct {
	url    string
	schema string
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands = []command{
	{"migrate", "migrate up|down|status [--to N]: install, upgrade or remove the schema", runMigrate},
	{"status", "status [--json]: schema version, counts, log head, subscriptions, horizon", runStatus},
	{"stream", "stream show ID [--json]: a stream's events, decoded", runStream},
	{"sub", "sub list|show NAME|reset NAME|rewind NAME --to POS: subscriptions", runSub},
	{"tail", "tail [--category c] [--type t] [--from start|end|POS] [--json]: follow the log", runTail},
	{"rebuild", "rebuild NAME [--reset]: reset a subscription to the start and follow its rebuild, with progress", runRebuild},
	{"verify", "verify: audit streams, checkpoints and immutability; exit 1 on a finding", runVerify},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: es [--url URL] [--schema NAME] COMMAND [ARGS]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  es %s\n", c.summary)
	}
	fmt.Fprintf(w, "\nThe connection string comes from --url or DATABASE_URL (or the PG* variables);\n"+
		"the schema from --schema (default %q). Both flags may also follow COMMAND.\n", pgstore.DefaultSchema)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("es", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	e.commonFlags(fs, "", pgstore.DefaultSchema)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		usage(stderr)
		return exitUsage
	}
	name := fs.Arg(0)
	if name == "help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, fs.Args()[1:])
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "es %s: %v\n", name, err)
			return exitUsage
		case errors.Is(err, errFindings):
			return exitFailure
		default:
			fmt.Fprintf(stderr, "es %s: %v\n", name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "es: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

// commonFlags defines --url and --schema on fs, with defaults.
func (e *env) commonFlags(fs *flag.FlagSet, url, schema string) {
	// The default stays empty, read from DATABASE_URL only when connecting,
	// so that -help does not print a password.
	fs.StringVar(&e.url, "url", url, "PostgreSQL connection string (default $DATABASE_URL)")
	fs.StringVar(&e.schema, "schema", schema, "the es schema")
}

// flags returns a flag set for a subcommand, with the common flags, whose
// defaults are what the command line gave before the subcommand.
func (e *env) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("es "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: es %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	e.commonFlags(fs, e.url, e.schema)
	return fs
}

// parse parses args with fs, allowing flags after positional arguments
// ("es stream show ID --json"), and returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, n int, what string) error {
	if len(args) != n {
		return fmt.Errorf("%w: want %s, got %q", errUsage, what, strings.Join(args, " "))
	}
	return nil
}

// pool connects to the database.
func (e *env) pool(ctx context.Context) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(cmp.Or(e.url, os.Getenv("DATABASE_URL")))
	if err != nil {
		return nil, fmt.Errorf("parsing the connection string: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "es"
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return pool, nil
}

// store connects and returns a store on the schema.
func (e *env) store(ctx context.Context) (*pgstore.Store, *pgxpool.Pool, error) {
	pool, err := e.pool(ctx)
	if err != nil {
		return nil, nil, err
	}
	st, err := pgstore.New(pool, &pgstore.Config{Schema: e.schema})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return st, pool, nil
}

// ident is the schema-qualified SQL name of an object of the schema.
func (e *env) ident(name string) string {
	return pgxIdent(e.schema) + "." + pgxIdent(name)
}
