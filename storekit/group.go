package storekit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pgevent/es"
)

// Consumer groups: a subscription run as N partitions
// ([es.SubscribeOpts.Partitions]), each an ordinary subscription run by
// [Run] on a [Source] that reads only its partition's streams, shared by
// the members of the group. A store supplies a [Group] per member; the
// member loop below joins the group, takes its fair share of the free
// partitions, hands back what exceeds it, and runs each partition it holds.

// ErrPartitionTaken is returned by the Open of a partition's [Source] when
// another member of its group holds the partition: [Run] then returns (the
// member takes another partition, or none).
var ErrPartitionTaken = errors.New("storekit: the partition is held by another member of its group")

// Group is one member of a consumer group on a store.
type Group interface {
	// Join registers the member (or renews its membership) and returns
	// how many live members share the group's partitions and which
	// partitions no member holds; 0 members (and no partitions) while the
	// group runs with another partition count: the member waits for its
	// members to stop (a resize).
	Join(ctx context.Context) (members int, free []int, err error)
	// Leave ends the membership, so that the others take over at once.
	Leave(ctx context.Context) error
	// Take takes partition p for the member, without waiting, and
	// reports whether it got it.
	Take(ctx context.Context, p int) (bool, error)
	// Partition returns the Source of partition p: it reads only the
	// partition's streams, and its Open takes the partition's lease
	// without waiting, failing with [ErrPartitionTaken] when another
	// member holds it.
	Partition(p int) Source
	// Checkpoints returns the saved checkpoints of the group's partitions
	// by partition count, then partition (a resize starts from them).
	Checkpoints(ctx context.Context) (map[int]map[int]es.Position, error)
}

// GroupConfig is a consumer group member run by [RunGroup].
type GroupConfig struct {
	// Config is the partitions' configuration: its Name is the group's,
	// Opts.Partitions the number of partitions.
	Config
	// Rebalance is how often the member renews its membership and takes
	// or hands back partitions. Defaults to a second.
	Rebalance time.Duration
}

// partitionEnd is a partition's Run returning.
type partitionEnd struct {
	p   int
	err error
}

// RunGroup runs one member of a consumer group until ctx is cancelled (it
// stops its partitions, which save their checkpoints, leaves the group and
// returns nil) or a partition fails for good (a *[es.HandlerError], or an
// error [Run] returns): it then stops the others, leaves, and returns that
// error.
func RunGroup(ctx context.Context, g Group, cfg GroupConfig) error {
	n := cfg.Opts.Partitions
	if n < 1 || n > es.MaxPartitions {
		return fmt.Errorf("%w: consumer group %q: %d partitions", es.ErrInvalidArgument, cfg.Name, n)
	}
	if (cfg.Handler == nil) == (cfg.TxHandler == nil) {
		return fmt.Errorf("%w: subscription %q: nil handler", es.ErrInvalidArgument, cfg.Name)
	}
	rebalance := orDefault(cfg.Rebalance, time.Second)
	log := logger(&cfg.Config).With("partitions", n)
	if cfg.Progress != nil {
		defer cfg.Progress.runGroup(cfg.Name, n)()
	}

	m := &member{g: g, cfg: &cfg, n: n, ended: make(chan partitionEnd, n), running: make(map[int]*heldPartition)}
	offset := rand.IntN(n) // members start their picks at different partitions
	timer := time.NewTimer(0)
	defer timer.Stop()
	// recovered reports an error the member recovers from by itself (it
	// tries again at the next rebalance).
	recovered := func(what string, err error) {
		log.Warn(what+" failed", "error", err)
		if cfg.Opts.OnError != nil {
			cfg.Opts.OnError(fmt.Errorf("consumer group %q: %w", cfg.Name, err))
		}
	}
	var failure error
	for failure == nil {
		select {
		case <-ctx.Done():
		case e := <-m.ended:
			failure = m.ended1(e)
			continue
		case <-timer.C:
			members, free, err := g.Join(ctx)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				recovered("renewing the consumer group membership", err)
			default:
				if err := m.balance(ctx, members, free, offset); err != nil {
					recovered("taking a partition", err)
				}
			}
			timer.Reset(rebalance)
			continue
		}
		break
	}
	m.stopAll()
	lctx, cancel := context.WithTimeout(context.Background(), flushOnExitTimeout)
	defer cancel()
	if err := g.Leave(lctx); err != nil {
		log.Warn("leaving the consumer group failed", "error", err)
	}
	return failure
}

// member is the state of RunGroup: the partitions it runs.
type member struct {
	g       Group
	cfg     *GroupConfig
	n       int
	ended   chan partitionEnd
	running map[int]*heldPartition
}

// heldPartition is a partition the member runs.
type heldPartition struct {
	cancel   context.CancelFunc
	stopping bool // cancelled (handed back), not yet returned
}

// held counts the partitions the member runs and is not handing back.
func (m *member) held() int {
	k := 0
	for _, h := range m.running {
		if !h.stopping {
			k++
		}
	}
	return k
}

// balance hands back the partitions beyond the member's fair share of
// members, and takes free ones up to it.
func (m *member) balance(ctx context.Context, members int, free []int, offset int) error {
	share := 0
	if members > 0 {
		share = (m.n + members - 1) / members
	}
	for m.held() > share {
		// Hand back the highest-numbered partition (any would do).
		p := -1
		for q, h := range m.running {
			if !h.stopping && q > p {
				p = q
			}
		}
		m.running[p].stopping = true
		m.running[p].cancel()
	}
	// Free partitions in the order offset, offset+1, ...
	slices.SortFunc(free, func(a, b int) int { return (a-offset+m.n)%m.n - (b-offset+m.n)%m.n })
	for _, p := range free {
		if m.held() >= share {
			break
		}
		if _, ok := m.running[p]; ok {
			continue
		}
		ok, err := m.g.Take(ctx, p)
		if err != nil {
			return err
		}
		if ok {
			m.start(ctx, p)
		}
	}
	return nil
}

// start runs partition p until it is handed back, ctx ends or it fails.
func (m *member) start(ctx context.Context, p int) {
	pctx, cancel := context.WithCancel(ctx)
	m.running[p] = &heldPartition{cancel: cancel}
	cfg := m.cfg.Config
	cfg.Name = es.PartitionName(m.cfg.Name, p, m.n)
	src := &resizeSource{Source: m.g.Partition(p), g: m.g, n: m.n}
	go func() {
		err := Run(pctx, src, cfg)
		cancel()
		m.ended <- partitionEnd{p: p, err: err}
	}()
}

// ended1 takes note of a partition that returned, and returns the error
// that stops the member, if it is one.
func (m *member) ended1(e partitionEnd) error {
	delete(m.running, e.p)
	if e.err == nil || errors.Is(e.err, ErrPartitionTaken) {
		return nil
	}
	return e.err
}

// stopAll stops every partition and waits for them to return.
func (m *member) stopAll() {
	for _, h := range m.running {
		h.cancel()
	}
	for len(m.running) > 0 {
		m.ended1(<-m.ended)
	}
}

// resizeSource is a partition's Source that, after a resize, starts the
// partition from the checkpoints of the group's partitions of other counts
// and passes over the events they handled.
type resizeSource struct {
	Source
	g Group
	n int
}

func (rs *resizeSource) Open(ctx context.Context) (Session, error) {
	s, err := rs.Source.Open(ctx)
	if err != nil {
		return nil, err
	}
	cps, err := rs.g.Checkpoints(ctx)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("reading the checkpoints of the group's partitions: %w", err)
	}
	delete(cps, rs.n)
	if len(cps) == 0 {
		return s, nil
	}
	return newResizeSession(s, cps), nil
}

// resizeSession is a partition's session after a resize.
type resizeSession struct {
	Session
	layouts []layout
	start   es.Position // where the partition starts without a checkpoint
	last    es.Position // the last position any old partition has passed
	out     []es.Event
}

// layout is the checkpoints of a group's partitions of another count.
type layout struct {
	n   int
	cps map[int]es.Position
}

func newResizeSession(s Session, cps map[int]map[int]es.Position) *resizeSession {
	rs := &resizeSession{Session: s}
	for n, byPartition := range cps {
		rs.layouts = append(rs.layouts, layout{n: n, cps: byPartition})
		// Every event after the lowest checkpoint of a count is unhandled
		// by it, unless a partition of the count lacks a checkpoint.
		var lowest es.Position
		if len(byPartition) == n {
			first := true
			for _, cp := range byPartition {
				if first || cp.Before(lowest) {
					lowest, first = cp, false
				}
			}
		}
		if rs.start.Before(lowest) {
			rs.start = lowest
		}
		for _, cp := range byPartition {
			if rs.last.Before(cp) {
				rs.last = cp
			}
		}
	}
	return rs
}

// Checkpoint returns the partition's checkpoint; a partition without one
// starts where no old partition has an event left unhandled before (saved
// at once, so that the start does not move).
func (rs *resizeSession) Checkpoint(ctx context.Context) (es.Position, bool, error) {
	pos, ok, err := rs.Session.Checkpoint(ctx)
	if err != nil || ok || rs.start.IsZero() {
		return pos, ok, err
	}
	if err := rs.Session.Advance(ctx, es.Position{}, rs.start); err != nil {
		return es.Position{}, false, err
	}
	return rs.start, true, nil
}

// handled reports whether an old partition of e's stream has passed e.
func (rs *resizeSession) handled(e *es.Event) bool {
	if rs.last.Before(e.Position) {
		return false
	}
	for _, l := range rs.layouts {
		if cp, ok := l.cps[es.StreamPartition(e.StreamID, l.n)]; ok && !cp.Before(e.Position) {
			return true
		}
	}
	return false
}

// Read reads as the partition's Read does, without the events an old
// partition handled, reading on until it has max events or the end.
func (rs *resizeSession) Read(ctx context.Context, after es.Position, max int) ([]es.Event, error) {
	out := rs.out[:0]
	for {
		batch, err := rs.Session.Read(ctx, after, max-len(out))
		if err != nil {
			return nil, err
		}
		want := max - len(out)
		for i := range batch {
			if !rs.handled(&batch[i]) {
				out = append(out, batch[i])
			}
		}
		if len(batch) < want || len(out) >= max {
			rs.out = out
			return out, nil
		}
		after = batch[len(batch)-1].Position
	}
}
