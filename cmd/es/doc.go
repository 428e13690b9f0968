// Command es operates an es event store in PostgreSQL: it installs and
// upgrades the schema, shows the log, streams and subscriptions, follows
// the log live and audits it.
//
// Install it with
//
//	go install github.com/pgevent/es/cmd/es@latest
//
// # Usage
//
//	es [--url URL] [--schema NAME] COMMAND [ARGS]
//
// The connection string comes from --url or, when it is not given, from
// DATABASE_URL (and otherwise from the PG* environment variables, as libpq
// reads them). --schema names the es schema (default "es"). Both flags may
// also follow the command, and every command's flags may follow its
// arguments ("es stream show order-1 --json").
//
// # Commands
//
//   - es migrate up [--to N]: applies the embedded migrations up to version
//     N (default: the latest) and installs the functions, views and
//     privileges, as pgstore.Migrate does, printing each step applied
//     ("up 3 003_subscription_status.sql") and the final version.
//   - es migrate down --to N: reverts the migrations above version N; --to 0
//     removes everything es installed, the events included, so N is
//     required.
//   - es migrate status: the schema's version, and each migration applied
//     or pending.
//   - es status [--json]: the schema version, the number of events and
//     streams, the log's head (the last event a reader sees), every
//     subscription with its health, checkpoint and lag, and the running
//     transactions that hold the log's horizon back.
//   - es stream show ID [--json]: a stream's events with data and metadata
//     decoded to JSON, one line each (JSON lines with --json).
//   - es sub list [--json], es sub show NAME [--json]: subscriptions'
//     health.
//   - es sub reset NAME, es sub rewind NAME --to POS: set a subscription's
//     checkpoint to the start of the log, or to a position as es prints it
//     ("771/42"). Both are refused while an instance of the subscription
//     runs.
//   - es tail [--category C] [--type T] [--from start|end|POS] [--json]:
//     follows the log live (woken by the store's notifications, and
//     reading at least every 200 ms), decoded, until interrupted;
//     --category and --type repeat or take comma-separated lists; --from
//     defaults to end.
//   - es rebuild NAME [--reset]: with --reset, sets the subscription's
//     checkpoint to the start of the log (refused while an instance runs);
//     then follows the rebuild the application's instance does, with a
//     progress bar on a terminal (plain lines otherwise: done, total, rate,
//     time left), until it has caught up. Ctrl-C stops following.
//   - es verify [--chunk N]: an online audit (the checks by stream run N
//     streams at a time, default 10,000, with their progress on stderr): every stream's versions are 1..n without
//     gaps (from where retention removed them; archived events count), in
//     the log's order, and its streams row says n; every checkpoint is at or
//     before the log's last event (or the last one removed); the
//     immutability triggers are on
//     the events table and enabled. It prints one line per check and exits
//     with status 1 on a finding.
//
// # Exit status
//
// 0 on success, 1 on an error or a finding of es verify, 2 on a usage
// error.
package main
