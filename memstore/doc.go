// Package memstore is an in-memory [es.Store] for tests.
//
// It has exactly the semantics of the PostgreSQL store (package pgstore):
// the same errors for the same inputs, gapless 1-based stream versions, the
// same idempotency rule for retried appends, and a global log ordered by
// [es.Position]. The conformance suite in package storetest runs against both
// stores, so that "the same semantics" is checked rather than hoped for. Use
// memstore in the tests of code built on [es.Store] where a database would
// only slow things down; use pgstore where the database itself matters.
//
// # Appends
//
// [Store.Append] validates the batch with [storekit.PrepareAppend], then, under
// one lock:
//
//  1. If every event id of the batch is already stored in this stream as one
//     contiguous run in the batch's order, consistent with the expected
//     version (any; no stream: the run starts at version 1; stream exists:
//     at version 2 or later; exactly n: at version n+1), the append is a
//     retry: it returns the result of the run and writes nothing. When only
//     some ids are stored, or they are stored elsewhere or differently, it
//     fails with [es.ErrDuplicateEvent].
//  2. Otherwise the stream's version is checked against the expected version
//     ([es.VersionConflictError] on a mismatch).
//  3. The events are stored with the next versions of the stream.
//
// # Positions
//
// Each successful append plays the part of a PostgreSQL transaction: it takes
// the next transaction key, and each of its events takes the next global
// position (both counters start at 1 and are never reused; failed appends take
// nothing). An event's [es.Position] is the pair. Every append is visible as
// soon as it returns, so [Store.ReadAll] has no horizon to wait for.
//
// # Copies
//
// The store copies event data and metadata when it stores them and again
// when it returns them: neither the caller's slices nor the returned ones
// alias the store's state.
//
// Reads never hold the store's lock while they hand an event to the caller, so
// a loop over [Store.ReadStream] or [Store.ReadAll] may append to the store.
//
// # Snapshots and subscriptions
//
// The store keeps snapshots ([es.SnapshotStore]) and checkpoints in memory,
// with the rules of the SQL functions. [Store.Subscribe] and
// [Store.SubscribeTx] follow the log like pgstore's subscriptions (order,
// filters, checkpoints, handler errors, parking, one active instance per
// name), woken in-process by every append; a transaction of the
// transactional form commits by advancing the checkpoint, and the handler
// makes its writes to memory part of it with [es.Tx.OnRollback] (undo) or
// [es.Tx.OnCommit]. WaitFor, SubscriptionStatus, SubscriptionHealth and
// ResetCheckpoint follow pgstore's rules too.
//
// # Personal data
//
// The store is an [es.Keyring] too: the keys of data subjects are random,
// held in memory, and deleted for good by [Store.ForgetSubject], with the
// rules of pgstore's subject_key and forget_subject.
package memstore
