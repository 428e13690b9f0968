package es

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pgevent/es/internal/streamhash"
)

// Handler handles one event delivered by a subscription. Returning an error
// stops the subscription (after [SubscribeOpts.HandlerRetries] retries); the
// event is never skipped: the checkpoint stays before it, so the next run
// of the subscription delivers it again.
type Handler func(ctx context.Context, e Event) error

// StartPosition says where a subscription without a checkpoint starts.
type StartPosition int

const (
	// StartFromBeginning delivers the whole log, from its first event.
	StartFromBeginning StartPosition = iota
	// StartFromEnd skips the events visible when the subscription first
	// runs and delivers only those that come after them. The end is saved
	// as the subscription's checkpoint at once, so a restart does not skip
	// events appended in between.
	StartFromEnd
)

// String returns "beginning" or "end".
func (p StartPosition) String() string {
	switch p {
	case StartFromBeginning:
		return "beginning"
	case StartFromEnd:
		return "end"
	}
	return fmt.Sprintf("StartPosition(%d)", int(p))
}

// SubscribeOpts shapes a subscription ([Subscriber.Subscribe]). A nil
// *SubscribeOpts uses every default. How a store follows the log (polling,
// reconnecting, leases) is the store's own configuration (pgstore.Config).
type SubscribeOpts struct {
	// Categories, when not empty, delivers only events whose stream
	// category is one of them. Defaults to all categories.
	Categories []string
	// EventTypes, when not empty, delivers only events of these types.
	// Defaults to all types.
	EventTypes []string
	// Start is where a subscription without a checkpoint starts. A
	// subscription with a checkpoint always resumes after it. Defaults to
	// StartFromBeginning.
	Start StartPosition

	// BatchSize is how many events are read at a time. In the
	// transactional form it is also the most events handled in one
	// transaction. Defaults to 1000.
	BatchSize int
	// CheckpointEvery is how many handled events the plain (at-least-once)
	// form lets pass before it saves the checkpoint; after a crash up to
	// that many events (or those of CheckpointInterval) are delivered
	// again. The transactional form saves it with every transaction.
	// Defaults to 100.
	CheckpointEvery int
	// CheckpointInterval is how long the plain form keeps handled events
	// unsaved at most. Defaults to 1 second.
	CheckpointInterval time.Duration

	// HandlerRetries is how many times an event whose handler failed is
	// handed to the handler again before OnFailure applies. Defaults to 0.
	HandlerRetries int
	// OnFailure is what the subscription does with an event its handler
	// still fails on after HandlerRetries retries: stop with a
	// *[HandlerError] (StopOnFailure, the default), or park it and go on
	// (ParkOnFailure).
	OnFailure FailurePolicy
	// RetryBackoff is the wait before the first retry of a failed handler;
	// it doubles with each further retry, up to a minute. Defaults to 100
	// milliseconds.
	RetryBackoff time.Duration

	// Partitions, when not 0, runs the subscription as a consumer group of
	// that many partitions (at most [MaxPartitions]): each stream belongs
	// to one partition ([StreamPartition]), and each partition is a
	// subscription of its own, named [PartitionName](name, p, Partitions),
	// with its own checkpoint, lease, health and parked events, that
	// delivers its streams' events in the global order. Every call of
	// Subscribe (or SubscribeTx) with the name is a member of the group,
	// in this process or another: the members share the partitions, each
	// taking at most its fair share (Partitions divided by the number of
	// members, rounded up) and handing back what exceeds it when another
	// member joins; the partitions of a member that stops are taken over
	// at once, those of one that dies (its process killed, its connection
	// cut) once its lease has lapsed or its backend has gone. A member
	// calls the handler concurrently for the partitions it holds (one
	// goroutine each): a stream's events are never handled concurrently
	// nor out of order, but different streams' are.
	//
	// Changing Partitions is a resize: members started with the new count
	// wait until no member of the old count runs (stop the old members,
	// start the new ones; during a rolling deployment the new members wait
	// for the last old one). Each new partition then starts from the old
	// partitions' checkpoints and passes over, without handling them, the
	// events that the old partition of their stream had handled: no event
	// is skipped, and in the transactional form none is applied twice. The
	// old partitions' checkpoints stay (DeleteCheckpoint removes them once
	// the new partitions are past them). Defaults to 0: one subscription,
	// one active instance.
	Partitions int

	// Logger, when set, receives the subscription's log records instead
	// of the store's logger (pgstore.Config.Logger, memstore.Config.Logger).
	Logger *slog.Logger
	// OnError, when set, is called with each error the subscription
	// recovers from by itself (a lost or failed connection, before
	// reconnecting; a checkpoint conflict, before taking over again), for
	// logging. It must not block. Defaults to nil.
	OnError func(err error)
	// OnStatus, when set, is called with the subscription's status each
	// time its state changes (for example live to catching up: it fell
	// behind). It must not block. Defaults to nil.
	OnStatus func(SubscriptionStatus)
	// OnProgress, when set, is called every ProgressInterval while the
	// subscription catches up, and once when it has caught up, with how
	// far it is (a rebuild's progress bar). It must not block. Defaults
	// to nil.
	OnProgress func(SubscriptionProgress)
	// ProgressInterval is how often a subscription that catches up
	// measures its progress: it calls OnProgress and, with pgstore, reports
	// its rate to es.subscription_status (es.subscriptions_view shows it,
	// with the time left). Defaults to 1 second.
	ProgressInterval time.Duration
}

// SubscriptionProgress is how far a subscription that catches up is
// ([SubscribeOpts.OnProgress]).
type SubscriptionProgress struct {
	// Name is the subscription's name.
	Name string
	// Handled counts the events this instance has handled since it
	// started; Position is the last one's.
	Handled  int64
	Position Position
	// Behind estimates the events still to handle: counted every ten
	// intervals, less those handled since.
	Behind int64
	// Rate is the events handled per second over the last interval.
	Rate float64
	// Remaining estimates the time left at Rate (zero when caught up, or
	// when Rate is zero).
	Remaining time.Duration
	// CaughtUp is set on the call made when the subscription has read the
	// whole visible log.
	CaughtUp bool
}

// FailurePolicy is what a subscription does with an event its handler keeps
// failing on ([SubscribeOpts.OnFailure]). No policy skips an event
// silently.
type FailurePolicy int

const (
	// StopOnFailure stops the subscription with a *[HandlerError]; its
	// checkpoint stays before the event, so the next run starts with it.
	StopOnFailure FailurePolicy = iota
	// ParkOnFailure parks the event (see [ParkedEvent]) and goes on: the
	// later events of its stream are parked behind it, without calling the
	// handler, so that each stream's events are still handled in order,
	// until an operator retries or skips them ([Subscriber.RetryParked],
	// [Subscriber.SkipParked]).
	ParkOnFailure
)

// String returns "stop" or "park".
func (p FailurePolicy) String() string {
	switch p {
	case StopOnFailure:
		return "stop"
	case ParkOnFailure:
		return "park"
	}
	return fmt.Sprintf("FailurePolicy(%d)", int(p))
}

// ParkedEvent is an event a subscription parked ([ParkOnFailure]).
type ParkedEvent struct {
	// Subscription is the subscription's name; Event the parked event.
	Subscription string
	Event        Event
	// Behind is set for an event parked, without calling the handler,
	// because an earlier event of its stream is parked.
	Behind bool
	// Error is the handler's last error (empty when Behind); Attempts
	// how many times the handler was called with the event.
	Error    string
	Attempts int
	// ParkedAt is when it was parked; RetryRequested whether an operator
	// asked for a retry that has not happened yet.
	ParkedAt       time.Time
	RetryRequested bool
}

// MaxSubscriptionNameLength is the longest subscription name accepted, in
// bytes.
const MaxSubscriptionNameLength = 1000

// MaxPartitions is the largest partition count of a consumer group
// ([SubscribeOpts.Partitions]).
const MaxPartitions = 1024

// PartitionName returns the subscription name of partition p (0 to
// partitions-1) of the consumer group name ([SubscribeOpts.Partitions]),
// "name/p-of-partitions", e.g. "order_details/3-of-8": the name to ask
// for its checkpoint, health or parked events.
func PartitionName(name string, p, partitions int) string {
	return name + "/" + strconv.Itoa(p) + "-of-" + strconv.Itoa(partitions)
}

// StreamPartition returns the partition (0 to partitions-1) that the
// stream streamID belongs to in a consumer group of partitions partitions:
// PostgreSQL's hashtext of the stream id without its sign bit, modulo
// partitions, as the SQL function stream_partition computes it. It panics
// when partitions is below 1.
func StreamPartition(streamID string, partitions int) int {
	return streamhash.Partition(streamID, partitions)
}

// Subscriber is a [Store] that runs named subscriptions. pgstore and
// memstore implement it with the same semantics, checked by the
// conformance suite in package storetest.
//
// A subscription delivers the events of the global log after its
// checkpoint to its handler, one at a time, in the global order (so every
// stream's events in version order), skipping none, and saves its
// checkpoint as it goes. At most one instance of a subscription name is
// active at a time; others wait and take over when it stops.
type Subscriber interface {
	Store

	// Subscribe runs the subscription name with handler until ctx is
	// cancelled (it then saves the checkpoint of the events handled and
	// returns nil) or the handler fails (it returns a *[HandlerError]).
	// It catches up from the checkpoint, then waits for new events.
	//
	// Delivery is at least once: events handled after the last saved
	// checkpoint (see [SubscribeOpts.CheckpointEvery]) are delivered again
	// after a crash. pgstore's SubscribeTx gives exactly-once effects.
	//
	// While another instance of name is active, Subscribe waits for it to
	// stop. Errors: [ErrInvalidArgument] for a bad name, a nil handler or
	// bad options.
	Subscribe(ctx context.Context, name string, handler Handler, opts *SubscribeOpts) error

	// Checkpoint returns the saved position of the subscription name and
	// whether it has one (the zero Position and false when not).
	Checkpoint(ctx context.Context, name string) (Position, bool, error)

	// DeleteCheckpoint removes the subscription's checkpoint, so that its
	// next run starts as its options say, and reports whether it had one.
	// It fails with [ErrSubscriptionRunning] while an instance of the
	// subscription runs.
	DeleteCheckpoint(ctx context.Context, name string) (bool, error)

	// ResetCheckpoint sets the subscription's checkpoint to pos, before or
	// after where it is (the zero Position: the start of the log), to
	// rebuild or rewind a read model: the next run resumes after pos. With
	// pgstore, call it on a store bound to the transaction that truncates
	// or rewinds the read model (Store.WithTx), so both commit together. It
	// fails with [ErrSubscriptionRunning] while an instance of the
	// subscription runs, and with [ErrInvalidArgument] for a position
	// beyond the last event of the log.
	ResetCheckpoint(ctx context.Context, name string, pos Position) error

	// SubscriptionHealth describes the subscription name as an operator
	// sees it, whichever process runs it: see [SubscriptionHealth].
	SubscriptionHealth(ctx context.Context, name string) (SubscriptionHealth, error)

	// ParkedEvents returns the events the subscription name has parked and
	// not yet resolved, in the global order ([ParkOnFailure]).
	ParkedEvents(ctx context.Context, name string) ([]ParkedEvent, error)
	// RetryParked asks the running subscription to hand the parked events
	// of the stream of the parked event at pos to its handler again, in
	// order from the stream's earliest, stopping at the first that fails
	// again (it stays parked, with one more attempt). It reports whether an
	// unresolved parked event is at pos. The subscription retries when it
	// has caught up with the log (within a second when the request comes
	// from another process).
	RetryParked(ctx context.Context, name string, pos Position) (bool, error)
	// SkipParked resolves the parked event at pos without handling it; the
	// events of its stream parked behind it stay parked. It reports
	// whether an unresolved parked event is at pos.
	SkipParked(ctx context.Context, name string, pos Position) (bool, error)

	// WaitFor waits until the subscription name has handled the event at
	// pos and every event before it (a handler returned for each one the
	// subscription's filters keep, or the event was parked; in the
	// transactional form, committed): read-your-writes for a read model. Pass it the position a write
	// returned ([AppendResult.LastPosition]).
	//
	// An instance of name running in this process answers it exactly,
	// also for positions its filters skip. Otherwise WaitFor polls the
	// saved checkpoint (every 100 ms), which an instance in another
	// process moves after the events it keeps, in the plain form only
	// every [SubscribeOpts.CheckpointEvery] events or
	// [SubscribeOpts.CheckpointInterval]. It returns nil at once for the
	// zero Position, and ctx's error when ctx ends first: give it a
	// deadline.
	WaitFor(ctx context.Context, name string, pos Position) error

	// SubscriptionStatus returns the state of the subscription name in
	// this process: stopped when no instance of it runs here.
	SubscriptionStatus(name string) SubscriptionStatus
}

// TxSubscriber is a [Subscriber] with the transactional handler form:
// the handler's writes and the checkpoint commit together, or not at all.
// pgstore and memstore implement it.
type TxSubscriber interface {
	Subscriber

	// SubscribeTx runs the subscription name with a transactional handler:
	// for each batch of events it opens a transaction, hands it to handler
	// with every event, advances the checkpoint in it (a compare-and-set)
	// and commits. An event's effect is applied exactly once, whatever
	// crashes; a handler error rolls the batch back (then retries or
	// stops, see [SubscribeOpts.HandlerRetries]). Otherwise as
	// [Subscriber.Subscribe].
	SubscribeTx(ctx context.Context, name string, handler TxHandler, opts *SubscribeOpts) error
}

// TxHandler handles one event in the transaction tx in which the
// subscription's checkpoint advances past it. It must not commit or roll
// back tx.
type TxHandler func(ctx context.Context, tx Tx, e Event) error

// Tx is the transaction of a transactional subscription handler. A store
// gives access to its own transaction through it: pgstore.PgxTx(tx)
// returns the pgx.Tx to write a read model with. In memory (memstore),
// where there is nothing to write to but the application's own
// structures, a handler makes its writes transactional with OnRollback
// (undo) or OnCommit (apply later).
type Tx interface {
	// OnCommit registers fn to run after the transaction, with the
	// checkpoint, has committed.
	OnCommit(fn func())
	// OnRollback registers fn to run after the transaction has rolled
	// back or failed to commit (then the events are delivered again). Run
	// in the reverse order of registration, these functions can undo the
	// handler's writes to memory. (With PostgreSQL, a commit whose
	// acknowledgement was lost with the connection may still have
	// committed.)
	OnRollback(fn func())
	// BeforeCommit registers fn to run in the transaction once the handler
	// has handled the transaction's last event, before the checkpoint
	// advances and it commits: to write in one go what the handler
	// gathered (one COPY instead of a statement per event). An error rolls
	// the transaction back; its events are then handed over again one per
	// transaction, so that the error is the failure of one event (retried,
	// then stopping or parking as [SubscribeOpts] say).
	BeforeCommit(fn func(ctx context.Context) error)
}

// SubscriptionState is the state of a subscription in this process.
type SubscriptionState int

const (
	// SubscriptionStopped: no instance of the subscription runs in this
	// process.
	SubscriptionStopped SubscriptionState = iota
	// SubscriptionStarting: an instance runs but is not following the log
	// yet: it waits for another instance (maybe in another process) to
	// stop, or for a connection after one failed.
	SubscriptionStarting
	// SubscriptionCatchingUp: the instance is reading a backlog (its last
	// read filled a batch).
	SubscriptionCatchingUp
	// SubscriptionLive: the instance has handled the whole visible log and
	// waits for new events.
	SubscriptionLive
	// SubscriptionRetrying: the handler failed on an event and the
	// instance waits to retry it ([SubscribeOpts.HandlerRetries]).
	SubscriptionRetrying
)

// String returns the state's name: "stopped", "starting", "catching up",
// "live" or "retrying".
func (s SubscriptionState) String() string {
	switch s {
	case SubscriptionStopped:
		return "stopped"
	case SubscriptionStarting:
		return "starting"
	case SubscriptionCatchingUp:
		return "catching up"
	case SubscriptionLive:
		return "live"
	case SubscriptionRetrying:
		return "retrying"
	}
	return fmt.Sprintf("SubscriptionState(%d)", int(s))
}

// SubscriptionStatus describes a subscription in this process
// ([Subscriber.SubscriptionStatus]).
type SubscriptionStatus struct {
	// Name is the subscription's name.
	Name string
	// State is what the subscription is doing.
	State SubscriptionState
	// Since is when it entered State (the zero time for a subscription
	// that never ran in this process).
	Since time.Time
	// Handled is the position up to which this process's instance has
	// handled the log (what [Subscriber.WaitFor] compares with): its
	// checkpoint when it started, then the last event it handled, or the
	// end of the log it has read when its filters skipped the rest.
	Handled Position
	// LastError is the last error the instance met: the handler's failure
	// while Retrying, or an error it recovers from by itself (a lost
	// connection) while Starting again. Nil otherwise.
	LastError error
}

// Health is a subscription's health as [Subscriber.SubscriptionHealth]
// reports it.
type Health string

const (
	// HealthIdle: no instance of the subscription runs.
	HealthIdle Health = "idle"
	// HealthLive: an instance runs and has handled every event it can
	// read (events committed behind an older running transaction may be
	// waiting: see SubscriptionHealth.HiddenEvents).
	HealthLive Health = "live"
	// HealthCatchingUp: an instance runs, events are waiting, and its
	// checkpoint moved within the last minute.
	HealthCatchingUp Health = "catching up"
	// HealthStalled: an instance runs, events are waiting, and its
	// checkpoint has not moved for a minute (a handler stuck on an event,
	// an instance that lost its connection).
	HealthStalled Health = "stalled"
	// HealthFailing: the handler is failing: the instance retries an
	// event, or stopped after its retries (SubscriptionHealth.LastError
	// says why).
	HealthFailing Health = "failing"
)

// SubscriptionHealth describes a subscription for operators
// ([Subscriber.SubscriptionHealth]); pgstore's es.subscriptions_view shows
// the same for every subscription.
type SubscriptionHealth struct {
	// Name is the subscription's name.
	Name string
	// Health is the subscription's health.
	Health Health
	// Checkpoint is the saved checkpoint (the zero Position when there is
	// none, as HasCheckpoint says); LastProgressAt when it last moved.
	Checkpoint     Position
	HasCheckpoint  bool
	LastProgressAt time.Time
	// EventsBehind counts the events after the checkpoint that the
	// subscription's filters keep (as its running or last instance
	// reported them); HiddenEvents how many of them cannot be read yet
	// (committed behind an older running transaction).
	EventsBehind int64
	HiddenEvents int64
	// OldestUnhandledAt is when the oldest of those events was recorded
	// (zero when none is waiting); its age is how far behind the
	// subscription is in time.
	OldestUnhandledAt time.Time
	// Rate is the events per second the running instance last reported
	// while catching up (zero otherwise).
	Rate float64
	// ParkedEvents counts its unresolved parked events ([ParkOnFailure]).
	ParkedEvents int64
	// LastError is the handler's error while Health is HealthFailing.
	LastError string
	// ReadsFrom is where the running instance reads the log: "primary",
	// or the host:port of the hot standby it reads (pgstore's
	// SubscriptionConfig.ReadReplicas); empty when no instance runs or the
	// store has no such notion (memstore). ReplicaLag is that standby's
	// lag as the instance last measured it: how long ago the oldest event
	// the primary shows and the standby does not was recorded (zero when
	// it shows every event, and on the primary). Events the standby does
	// not show yet count in EventsBehind.
	ReadsFrom  string
	ReplicaLag time.Duration
}

// Remaining estimates the time the events behind take at Rate (zero when
// Rate is zero).
func (h SubscriptionHealth) Remaining() time.Duration {
	if h.Rate <= 0 {
		return 0
	}
	return time.Duration(float64(h.EventsBehind) / h.Rate * float64(time.Second))
}

// Behind returns how long the oldest unhandled event has waited at now
// (zero when none waits).
func (h SubscriptionHealth) Behind(now time.Time) time.Duration {
	if h.OldestUnhandledAt.IsZero() {
		return 0
	}
	return now.Sub(h.OldestUnhandledAt)
}
