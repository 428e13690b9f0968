// Package pgstore is the PostgreSQL implementation of [es.Store], on pgx v5.
//
// Every operation is one call to a PL/pgSQL or SQL function of the es
// schema, so the same store can be used from SQL, psql or another language
// with identical semantics.
//
// # Setting up
//
// Install the schema from Go with [Migrate] (or with the tern CLI, see the
// README), then create a store on a pool:
//
//	pool, _ := pgxpool.New(ctx, url)
//	_, err := pgstore.Migrate(ctx, pool, nil) // schema "es"
//	store, err := pgstore.New(pool, nil)
//
// # Transactions
//
// [Store.Append] runs in its own (implicit) transaction in one round trip.
// [Store.WithTx] binds the store to the caller's pgx.Tx, so that events
// (and snapshots) commit together with the caller's other writes (an
// outbox, a read model); an append there uses a savepoint so that a failed
// append leaves the transaction usable. es.Repository.WithStore gives a
// repository on such a store.
//
// # Errors
//
// The SQL functions raise their own SQLSTATEs (class PE); the store
// translates them in one place into the es errors: PE001 into
// *es.VersionConflictError (es.ErrWrongVersion), PE002 into
// es.ErrDuplicateEvent, PE003 into es.ErrInvalidArgument, PE007 into
// es.ErrCheckpointConflict, PE008 into es.ErrSnapshotBeyondStream, PE010
// into es.ErrSubscriptionRunning, PE012 into es.ErrSubjectForgotten, PE013
// into es.ErrPartitionInUse. Callers
// never need *pgconn.PgError (errors.As still finds it for all but PE001).
//
// # Ordering
//
// [Store.ReadAll] returns the global log in the order (transaction key,
// global position) and only up to the oldest running transaction, so it
// never skips an event that commits late. The cost: a long-running writing
// transaction anywhere in the cluster holds readers of the global log back
// until it ends.
//
// # Notifications
//
// Each append notifies the channel "<schema>_events" ([Store.Channel]) with
// a small JSON hint, coalesced so that only one in-flight appending
// transaction at a time notifies. Listeners must always re-read from their
// own position. SET es.notify = off (per session, role or database)
// disables notifications.
//
// # Snapshots
//
// The store is an [es.SnapshotStore]: [Store.SaveSnapshot], [Store.Load]
// (the snapshot and the events after it, one statement), and
// [Store.AppendWithSnapshot], which stores a snapshot in the same call as
// the events. es.Repository uses them for
// aggregates that implement es.Snapshotter.
//
// # Subscriptions
//
// [Store.Subscribe] follows the global log with at-least-once delivery;
// [Store.SubscribeTx] hands the handler the transaction in which the
// checkpoint advances, so a read model and its checkpoint commit together.
// Each running subscription has a dedicated connection hijacked from the
// pool: it holds the subscription's lease (a row of subscription_leases:
// one active instance per name), LISTENs on [Store.Channel] before it
// catches up, wakes on notifications, re-polls shortly after reads that
// found events, polls on a fallback interval, and reconnects with backoff.
// [Store.WaitFor] waits until a subscription has handled a position (read
// your writes); [Store.SubscriptionHealth], [Store.Subscriptions] and
// [Store.HorizonHolders] tell operators how far behind subscriptions are
// and why; [Store.ResetCheckpoint] rewinds or rebuilds one, in the
// caller's transaction with [Store.WithTx].
//
// # Personal data
//
// The store is an [es.Keyring]: [Store.SubjectKey] reads (and creates) a
// data subject's key through the SQL function subject_key, which needs the
// role <schema>_keyholder (granted to <schema>_writer by default), and
// [Store.ForgetSubject] deletes it for good through forget_subject, which
// needs <schema>_forgetter (granted to nobody by default) and records the
// erasure in subject_erasures. Give the store to a registry with
// es.Registry.SetKeyring to encrypt the fields tagged es:"personal".
package pgstore
