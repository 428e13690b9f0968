// Package es is a Postgres-native event store for Go.
//
// The write path (append with an expected-version check and idempotent
// retries), the read paths and wake-up notifications live in PL/pgSQL
// functions in one PostgreSQL schema (see the sql and migrations
// directories). Package pgstore calls them; package memstore mirrors the
// same semantics in memory for tests; package estest holds the conformance
// suite both pass.
//
// This package holds the value types every other package shares: [Event],
// [NewEvent], [ExpectedVersion], [Position], [AppendResult], [StreamInfo],
// the [Store] interface and the errors.
//
// # Appending
//
// [Store.Append] appends a batch of events to one stream atomically. The
// expected version states what the caller believes about the stream:
//
//   - [Any]: no condition;
//   - [NoStream]: the stream must have no events;
//   - [StreamExists]: the stream must have at least one event;
//   - [Exactly](n): the stream must be at version n.
//
// A mismatch fails with a *[VersionConflictError] (errors.Is(err,
// [ErrWrongVersion])) carrying the expected and actual versions. Event ids
// make appends idempotent: retrying an append whose ids are all stored
// returns the original [AppendResult] and writes nothing.
//
// # Reading
//
// [Store.ReadStream] reads one stream forwards or backwards.
// [Store.ReadAll] reads the global log in its order, gaplessly: an event
// that commits late never sorts before one already returned, so a reader
// that remembers the last [Position] it saw never skips an event. Both
// return iterators that stream rows.
//
// # Errors
//
//   - [ErrWrongVersion] / *[VersionConflictError]: expected version mismatch;
//   - [ErrDuplicateEvent]: event ids already stored, not as an exact retry;
//   - [ErrInvalidArgument]: input that can never succeed; nothing is written;
//   - [ErrNotFound]: the stream does not exist ([Store.StreamInfo]).
package es
