// Package es is a Postgres-native event store for Go: this package is the
// API for applications.
//
// The write path (append with an expected-version check and idempotent
// retries), the read paths, snapshots, subscription checkpoints and wake-up
// notifications live in PL/pgSQL functions in one PostgreSQL schema (see
// package schema). The packages, by audience:
//
//   - applications: es (this package: value types, the Store,
//     SnapshotStore and Subscriber interfaces, the errors, the Registry,
//     aggregates, the Repository), a store — pgstore (PostgreSQL, pgx v5)
//     or memstore (in memory, for tests) — snapshot (snapshot policies and
//     state encoding), estest (given/when/then for aggregates),
//     pgstore/pgstoretest (a migrated PostgreSQL database per test) and
//     esotel (OpenTelemetry, a module of its own);
//   - store implementers: storekit (the argument rules and the one
//     subscription engine both stores run) and storetest (the conformance
//     suite every store passes);
//   - the database: schema (the tern migrations and code package, embedded).
//
// This package holds the value types: [Event],
// [NewEvent], [ExpectedVersion], [Position], [AppendResult], [StreamInfo],
// [Snapshot], the [Store], [SnapshotStore] and [Subscriber] interfaces, the
// registry and codec, aggregates, the [Repository], and the errors.
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
// # Events as Go structs
//
// A [Registry] maps stable type names to Go struct types, with no global
// state: [Register] adds a type, [Registry.NewEvent] encodes a struct (and
// its [Metadata]: correlation id, causation id, headers) into a [NewEvent],
// and [Registry.Decode] turns a stored [Event] back into the struct.
// Payloads are msgpack; uuid.UUID fields are written as canonical strings
// and times as msgpack timestamps (decoded in UTC), so the stored bytes stay
// readable from SQL.
//
// # Evolving events
//
// Every stored event carries the schema version of its type's shape
// ([Event.SchemaVersion]; 1 unless its writer registered another, and 1 for
// every event stored before es had versions). A type whose shape changes
// keeps its name and is registered at a higher version ([RegisterWith]
// with [RegisterOpts].SchemaVersion); [Registry.NewEvent] writes new events
// at that version. Events of older versions are read through upcasters
// keyed by type name and version ([Registry.RegisterUpcasterWith]), which
// chain v1 → v2 → v3 up to the registered version; an upcaster may also
// rename the type ([Registry.RegisterUpcaster] for the old name), and a
// rename and versions combine. Stored events are never rewritten: the
// upcasters run on every read, and an event at a version above the
// registered one (written by newer code) is a *[SchemaVersionError]
// matching [ErrSchemaVersionAhead].
//
// # Personal data and forgetting
//
// Fields tagged `es:"personal"` are encrypted with a key per data subject
// (the event's `es:"subject"` field, else the aggregate's stream id) that a
// [Keyring] keeps: pgstore in the table subject_keys, memstore in memory
// ([Registry.SetKeyring]). [Registry.ForgetSubject] (or the store's
// ForgetSubject, or SQL forget_subject) deletes the key for good: the
// subject's personal fields, in every event and snapshot, decode to their
// zero values from then on, flagged in the event's `es:"erased"` field,
// while everything else reads as before. Key rotation is not supported.
//
// # Aggregates
//
// An aggregate embeds [AggregateBase] and implements Apply(event any) error
// with a plain type switch. Commands call [Record], which applies an event
// and queues it as pending; [Rehydrate] and [RehydrateSeq] rebuild an
// aggregate from stored events, without any store, for tests.
//
// A [Repository] loads and saves aggregates of one type, each in its stream
// "<category>-<id>": Load replays the stream, Save appends the pending events
// expecting the version the aggregate was loaded at, and Update retries a
// command after a version conflict.
//
// # Snapshots
//
// An aggregate that implements [Snapshotter] is loaded from its stream's
// snapshot and the events after it, in one round trip, when the store is a
// [SnapshotStore] (pgstore and memstore are); a [SnapshotPolicy]
// ([RepositoryConfig.SnapshotPolicy]; package snapshot has Every, When and
// Never) decides when a save stores a new snapshot, in the same call as the
// events. A snapshot of another schema version ([Snapshotter]'s
// SnapshotSchemaVersion) or a damaged one is ignored and the events are
// replayed instead.
//
// # Subscriptions
//
// A [Subscriber] (pgstore and memstore) follows the global log with a named
// subscription: [Subscriber.Subscribe] hands every event, in the global
// order, to a [Handler] and advances the subscription's checkpoint, which
// never moves backwards ([ErrCheckpointConflict]). A handler error stops the
// subscription (a *[HandlerError]) without skipping the event, or, opt-in
// ([ParkOnFailure]), parks it for an operator; only one instance per name
// is active at a time. A [TxSubscriber] also has the transactional form
// (the handler's writes and the checkpoint commit together, [Tx]).
//
// # Read models
//
// [Repository.Save] returns the append's position; [Subscriber.WaitFor]
// waits until a subscription has handled it (read your writes).
// [Subscriber.SubscriptionStatus] says what this process's instance does,
// [Subscriber.SubscriptionHealth] how far behind a subscription is and
// why, [Subscriber.ResetCheckpoint] rewinds or rebuilds one, and
// [SubscribeOpts.OnProgress] reports a rebuild's progress.
//
// # Errors
//
//   - [ErrWrongVersion] / *[VersionConflictError]: expected version mismatch;
//   - [ErrDuplicateEvent]: event ids already stored, not as an exact retry;
//   - [ErrInvalidArgument]: input that can never succeed; nothing is written;
//   - [ErrNotFound]: the stream does not exist ([Store.StreamInfo]);
//   - [ErrUnknownEventType] / *[UnknownEventTypeError]: a stored event type
//     the [Registry] does not know ([Registry.Decode]);
//   - [ErrSnapshotBeyondStream]: a snapshot version beyond its stream's;
//   - [ErrCorruptSnapshot] / *[SnapshotError]: a snapshot the repository
//     could not use (it replayed the events instead);
//   - [ErrReadOnly]: the store cannot write (a hot standby);
//   - [ErrCheckpointConflict]: a checkpoint that is not where its writer
//     expected (another instance moved it);
//   - [ErrSubscriptionRunning]: a checkpoint reset or deleted while an
//     instance of its subscription runs;
//   - [ErrSubjectForgotten]: personal data encoded for (or a key asked of)
//     a forgotten data subject; [ErrNoKeyring]: personal fields without a
//     keyring; [ErrCorruptPersonalField]: an encrypted field that does not
//     decrypt with its subject's key (an erased one is no error);
//   - *[HandlerError]: a subscription's handler failed.
package es
