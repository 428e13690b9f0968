// Package storetest is the conformance suite that every [es.Store] must
// pass: it is for store implementers (applications want package estest).
//
// [Run] runs the same tests against any store, so that pgstore and memstore
// are checked to have the same semantics:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) es.Store { return memstore.New(nil) })
//	}
//
// The factory is called once per subtest and must return a fresh, empty
// store (for PostgreSQL: its own schema); subtests run in parallel.
//
// # What the suite checks
//
//   - Append: the expected-version matrix and the [es.VersionConflictError]
//     it reports, gapless versions, positions, batch atomicity, filling of
//     zero event ids with UUIDv7, copies of payloads.
//   - SchemaVersions: each event's schema version stored as appended (1
//     when not given) and returned by every read (streams, the global log,
//     Load, subscriptions, consumer groups); versions out of range refused;
//     old versions upcast on load through a registry and a repository.
//   - Idempotency: exact retries return the original result and write
//     nothing; partial, reordered, misplaced or inconsistent retries fail
//     with [es.ErrDuplicateEvent].
//   - Validation: bad input fails with [es.ErrInvalidArgument] and writes
//     nothing.
//   - ReadStream, StreamInfo and ReadAll: windows, directions, filters,
//     resuming after a position, global order, early exit.
//   - Concurrency: one winner among appenders expecting the same version, no
//     lost events among concurrent appenders, a concurrent reader of the
//     global log that skips nothing.
//   - Context: a cancelled context fails calls and writes nothing.
//   - Snapshots ([es.SnapshotStore]): keeping the newest snapshot, refusing
//     one beyond its stream, load of a snapshot and the events after it,
//     schema versions, appends with a snapshot, and the repository's use of
//     them (snapshot + tail equals full replay, damaged snapshots replayed
//     around, concurrent saves never leaving a snapshot ahead).
//   - Subscriptions ([es.Subscriber]): catch-up and live delivery in order,
//     filters, checkpoints and resuming, start from the end, handler errors
//     that stop without skipping, one active instance per name.
//   - Forgetting ([es.Keyring]): the keys of data subjects (created once,
//     never again after the subject is forgotten), and a forgotten
//     subject's streams: the global log unchanged, loads with the personal
//     fields erased, subscriptions and their rebuilds going on.
//
// A store must implement [es.SnapshotStore], [es.Subscriber] and
// [es.Keyring] too: the snapshot, subscription and forgetting tests fail
// for one that does not. How quickly
// a store notices appends and hands a subscription over between instances
// is its own configuration: give the suite a store configured to notice
// quickly (pgstore's tests poll every 20 ms).
//
// Reads of the global log wait (by polling, with a deadline) until the
// events a test appended are visible: a PostgreSQL store shows an event only
// once every transaction that could precede it has ended, and other tests
// may be writing to the same cluster at the same time.
//
// # Adding a test
//
// Add a function func(t *testing.T, s es.Store) to one of the lists in the
// suite's source (appendTests, readAllTests, ...), or a new list to groups.
// Use fresh stream ids (streamID) and assert only what every store must do.
package storetest
