package memstore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/pgevent/es"
	"github.com/pgevent/es/storekit"
)

// Config configures a [Store]. A nil *Config is the same as the zero Config.
type Config struct {
	// Now returns the current time. The store records it as events'
	// RecordedAt and streams' CreatedAt and UpdatedAt, truncated to
	// microseconds as PostgreSQL stores times. Set it to get predictable
	// times in tests. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the log records of the store's subscriptions (as
	// pgstore.Config.Logger). Defaults to none.
	Logger *slog.Logger
}

// Store is an in-memory [es.Store]. Create one with [New]. It is safe for
// concurrent use.
type Store struct {
	now    func() time.Time
	logger *slog.Logger

	mu sync.RWMutex
	// log holds every event in global order. It is append-only and its
	// elements never change once written, so a reader may keep a copy of
	// the slice header and read it without the lock.
	log []es.Event
	// streams maps a stream id to its state.
	streams map[string]*stream
	// ids maps an event id to the event's index in log.
	ids map[uuid.UUID]int
	// lastTxKey and lastGlobal are the last transaction key and global
	// position handed out.
	lastTxKey  uint64
	lastGlobal int64
	// appended is closed, and replaced by a fresh channel, by every append
	// that stores events: whoever waits for new events (subscriptions)
	// waits on it. Guarded by mu.
	appended chan struct{}

	// Subscriptions (subscribe.go), guarded by subMu, created on first use:
	// the saved checkpoints, and per subscription name a one-slot channel
	// that the active instance fills.
	subMu       sync.Mutex
	checkpoints map[string]checkpoint
	subActive   map[string]chan struct{}
	// activeSince is when the active instance of each subscription took
	// its slot (health.go).
	activeSince map[string]time.Time
	// reports holds what the active instance of each subscription last
	// reported (health.go), as pgstore's subscription_status does.
	reports map[string]report
	// parked holds each subscription's parked events (parked.go), in the
	// global order.
	parked map[string][]*parkedEvent
	// groups are the consumer groups; partitionsOf says which subscription
	// names are partitions of which group, partitionHolder which member
	// holds each partition's slot (group.go).
	groups          map[string]*group
	partitionsOf    map[string]partitionOf
	partitionHolder map[string]string
	// progress tracks the running subscriptions (WaitFor, status).
	progress *storekit.Progress

	// snapshots maps a stream id to its newest snapshot (snapshot.go).
	// Guarded by mu.
	snapshots map[string]es.Snapshot

	// retention holds the retention policies by scope (lifecycle.go: the
	// policy with only StreamID or Category set); removedEnd is the
	// largest position of an event removed. Guarded by mu.
	retention  map[es.RetentionPolicy]es.RetentionPolicy
	removedEnd es.Position
	// archivedEnd is the position of the last event ArchiveEvents moved.
	// Guarded by mu.
	archivedEnd es.Position

	// The data subjects' keys and the forgotten subjects (keys.go),
	// guarded by keyMu, created on first use.
	keyMu     sync.Mutex
	keys      map[string][]byte
	forgotten map[string]struct{}
}

// stream is the state of one stream.
type stream struct {
	// events holds the log index of each event of the stream: events[v-1]
	// is version v, -1 once removed (lifecycle.go). Never changed in
	// place once a reader may hold it: a removal replaces it.
	events []int
	// txKey is the transaction key of the stream's last append.
	txKey     uint64
	createdAt time.Time
	updatedAt time.Time
	// The stream's lifecycle (lifecycle.go), as the SQL streams row's:
	// deleted while soft-deleted or once tombstoned; truncateBefore the
	// first version reads by stream return (0: 1); removedBefore the
	// first version not removed yet (0: 1).
	deleted, tombstoned           bool
	truncateBefore, removedBefore int64
}

var _ es.Store = (*Store)(nil)

// New returns an empty Store. config may be nil.
func New(config *Config) *Store {
	if config == nil {
		config = &Config{}
	}
	now := config.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:      now,
		logger:   config.Logger,
		streams:  make(map[string]*stream),
		ids:      make(map[uuid.UUID]int),
		appended: make(chan struct{}),
		progress: storekit.NewProgress(),

		snapshots: make(map[string]es.Snapshot),
	}
}

// appendedSignal returns a channel that is closed at the next append that
// stores events.
func (s *Store) appendedSignal() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.appended
}

// signalAppendedLocked wakes everyone waiting on appendedSignal. s.mu must
// be held for writing.
func (s *Store) signalAppendedLocked() {
	close(s.appended)
	s.appended = make(chan struct{})
}

// StreamInfo implements [es.Store.StreamInfo].
func (s *Store) StreamInfo(ctx context.Context, streamID string) (es.StreamInfo, error) {
	if err := storekit.ValidateStreamID(streamID); err != nil {
		return es.StreamInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return es.StreamInfo{}, fmt.Errorf("memstore: reading stream info of %q: %w", streamID, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[streamID]
	if !ok || st.deleted {
		return es.StreamInfo{}, fmt.Errorf("memstore: stream %q: %w", streamID, es.ErrNotFound)
	}
	return es.StreamInfo{
		StreamID:  streamID,
		Version:   int64(len(st.events)),
		CreatedAt: st.createdAt,
		UpdatedAt: st.updatedAt,
	}, nil
}

// clone returns a copy of e whose Data and Metadata do not alias e's.
func clone(e es.Event) es.Event {
	e.Data = bytes.Clone(e.Data)
	e.Metadata = bytes.Clone(e.Metadata)
	return e
}
