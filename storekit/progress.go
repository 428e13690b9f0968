package storekit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgevent/es"
)

// Progress tracks the subscriptions of one store that run in this process:
// the status each reports and how far each has handled the log, which is
// what [es.Subscriber.WaitFor] and [es.Subscriber.SubscriptionStatus]
// read. A store makes one with [NewProgress], hands it to [Run]
// ([Config.Progress]) and answers WaitFor and SubscriptionStatus with it.
type Progress struct {
	mu   sync.Mutex
	subs map[string]*tracker
	// groups are the consumer groups with members running in this
	// process: their partition counts.
	groups map[string]*groupRun
}

// groupRun is a consumer group with members running in this process.
type groupRun struct {
	partitions, members int
}

// NewProgress returns an empty Progress.
func NewProgress() *Progress {
	return &Progress{subs: make(map[string]*tracker), groups: make(map[string]*groupRun)}
}

// runGroup records a member of the consumer group name, of n partitions,
// running in this process, until the returned function is called.
func (p *Progress) runGroup(name string, n int) (done func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[name]
	if g == nil {
		g = &groupRun{}
		p.groups[name] = g
	}
	g.partitions = n
	g.members++
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if g.members--; g.members == 0 {
			delete(p.groups, name)
		}
	}
}

// WaitStore is what [Progress.WaitForSubscription] reads from a store.
type WaitStore struct {
	// Checkpoint returns the saved checkpoint of a subscription.
	Checkpoint func(ctx context.Context, name string) (es.Position, bool, error)
	// GroupPartitions returns the partition count of the consumer group
	// name, 0 when there is no such group.
	GroupPartitions func(ctx context.Context, name string) (int, error)
	// StreamOf returns the stream of the event at pos, or an error
	// wrapping [es.ErrNotFound] when there is none.
	StreamOf func(ctx context.Context, pos es.Position) (string, error)
}

// WaitForSubscription waits until the subscription name has handled pos,
// as [Progress.WaitFor]; when name is a consumer group
// ([es.SubscribeOpts.Partitions]), until the partition of the stream of
// the event at pos has.
func (p *Progress) WaitForSubscription(ctx context.Context, ws WaitStore, name string, pos es.Position) error {
	if err := ValidateSubscriptionName(name); err != nil {
		return err
	}
	if pos.IsZero() {
		return nil
	}
	n, err := p.groupPartitions(ctx, ws, name)
	if err != nil {
		return err
	}
	if n == 0 {
		// An ordinary subscription, or a group whose first member has not
		// started yet: while polling the checkpoint, look again.
		err := p.WaitFor(ctx, name, pos, func(ctx context.Context) (es.Position, bool, error) {
			if n, err = p.groupPartitions(ctx, ws, name); err != nil || n > 0 {
				return es.Position{}, false, cmp.Or(err, errIsGroup)
			}
			return ws.Checkpoint(ctx, name)
		})
		if !errors.Is(err, errIsGroup) {
			return err
		}
	}
	stream, err := ws.StreamOf(ctx, pos)
	if err != nil {
		return fmt.Errorf("consumer group %q: %w", name, err)
	}
	name = es.PartitionName(name, es.StreamPartition(stream, n), n)
	return p.WaitFor(ctx, name, pos, func(ctx context.Context) (es.Position, bool, error) {
		return ws.Checkpoint(ctx, name)
	})
}

// errIsGroup: the name waited for turned out to be a consumer group's.
var errIsGroup = errors.New("the subscription is a consumer group")

// groupPartitions returns the partition count of the consumer group name
// (0: no group). It asks the store only when nothing runs under name in
// this process: a member says the group's count, an ordinary instance that
// name is no group (so that read-your-writes next to the subscription
// costs no query more).
func (p *Progress) groupPartitions(ctx context.Context, ws WaitStore, name string) (int, error) {
	p.mu.Lock()
	n, ordinary := 0, false
	if g := p.groups[name]; g != nil {
		n = g.partitions
	} else if t := p.subs[name]; t != nil && t.running > 0 {
		ordinary = true
	}
	p.mu.Unlock()
	if n > 0 || ordinary {
		return n, nil
	}
	return ws.GroupPartitions(ctx, name)
}

// tracker is the state of one subscription name in this process. It lives
// while an instance of the name runs or a WaitFor waits on it.
type tracker struct {
	status  es.SubscriptionStatus
	running int  // instances of the name running in this process
	active  bool // one of them has a session (at most one: leases)
	// waiters counts the WaitFor calls on the name; wants the positions
	// they wait for (the engine reads the end of the log before a read
	// only while a filtered subscription has a waiter ahead of it).
	waiters int
	wants   map[es.Position]int
	// changed is closed, and replaced, when status.Handled or active
	// changes while WaitFor calls wait.
	changed chan struct{}
	// wake asks the active instance to read at once (a WaitFor arrived):
	// one buffered slot, so that a request made while the instance reads
	// is seen by its next wait.
	wake chan struct{}
	// retryRequested: an operator asked, in this process, for a parked
	// event to be retried.
	retryRequested bool
}

// PollCheckpoint is how often [Progress.WaitFor] reads the saved checkpoint
// while no instance of the subscription is active in this process.
const PollCheckpoint = 100 * time.Millisecond

// renudgeInterval is how often a WaitFor that an active instance has not
// satisfied yet asks it again to read.
const renudgeInterval = time.Second

func (p *Progress) tracker(name string) *tracker {
	t := p.subs[name]
	if t == nil {
		t = &tracker{
			status:  es.SubscriptionStatus{Name: name},
			wants:   make(map[es.Position]int),
			changed: make(chan struct{}),
			wake:    make(chan struct{}, 1),
		}
		p.subs[name] = t
	}
	return t
}

// release forgets t when nothing uses it any more.
func (p *Progress) release(name string, t *tracker) {
	if t.running == 0 && t.waiters == 0 {
		delete(p.subs, name)
	}
}

func (t *tracker) signal() {
	if t.waiters > 0 {
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// setState sets the state and reports whether it changed.
func (t *tracker) setState(st es.SubscriptionState, err error) bool {
	changed := t.status.State != st
	if changed {
		t.status.State, t.status.Since = st, time.Now()
	}
	t.status.LastError = err
	return changed
}

// Status returns the status of the subscription name in this process.
func (p *Progress) Status(name string) es.SubscriptionStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.subs[name]; t != nil && t.running > 0 {
		return t.status
	}
	return es.SubscriptionStatus{Name: name, State: es.SubscriptionStopped}
}

// RetryRequested tells the instance of the subscription name running in
// this process, if any, that an operator asked it to retry a parked event:
// it looks at its parked events at once.
func (p *Progress) RetryRequested(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.subs[name]; t != nil && t.active {
		t.retryRequested = true
		t.nudge()
	}
}

// nudge asks the active instance to read at once. Called with p.mu held.
func (t *tracker) nudge() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// takeRetryRequest reports whether a retry was requested in this process
// since the last call.
func (in *instance) takeRetryRequest() bool {
	if in == nil {
		return false
	}
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	r := in.t.retryRequested
	in.t.retryRequested = false
	return r
}

// WaitFor waits until the subscription name has handled pos (see
// [es.Subscriber.WaitFor]): an instance active in this process says so
// exactly; otherwise checkpoint, which reads the saved checkpoint, is
// polled every [PollCheckpoint].
func (p *Progress) WaitFor(ctx context.Context, name string, pos es.Position, checkpoint func(context.Context) (es.Position, bool, error)) error {
	if err := ValidateSubscriptionName(name); err != nil {
		return err
	}
	if pos.IsZero() {
		return nil
	}
	p.mu.Lock()
	t := p.tracker(name)
	t.waiters++
	t.wants[pos]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		t.waiters--
		if t.wants[pos]--; t.wants[pos] == 0 {
			delete(t.wants, pos)
		}
		p.release(name, t)
		p.mu.Unlock()
	}()

	var nudged time.Time
	for {
		p.mu.Lock()
		// Handled is what the active instance has done; once none is
		// active (a checkpoint may have been reset meanwhile), only the
		// saved checkpoint counts.
		active, changed := t.active, t.changed
		done := active && !t.status.Handled.Before(pos)
		if active && !done && time.Since(nudged) >= renudgeInterval {
			// Ask the instance to read now rather than at its next
			// wake-up, which may be a poll away; and again now and then
			// while the position is not handled (the event may have been
			// hidden behind an older transaction when it read).
			t.nudge()
			nudged = time.Now()
		}
		p.mu.Unlock()
		if done {
			return nil
		}
		wait := renudgeInterval
		if !active {
			cp, ok, err := checkpoint(ctx)
			if err != nil {
				return err
			}
			if ok && !cp.Before(pos) {
				return nil
			}
			wait = PollCheckpoint
		}
		timer := time.NewTimer(wait)
		poll := timer.C
		select {
		case <-changed:
		case <-poll:
		case <-ctx.Done():
		}
		timer.Stop()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// instance is one running instance of a subscription, as the engine
// reports it to its Progress. A nil *instance (no Progress) ignores every
// call.
type instance struct {
	p       *Progress
	t       *tracker
	name    string
	observe func(es.SubscriptionStatus)
	active  bool
	// notes are the statuses to hand to observe once p.mu is released
	// (observe may call back into the Progress). Only the instance's own
	// goroutine calls its methods, so they are handed over in order.
	notes []es.SubscriptionStatus
}

// setLocked sets the state, noting a change for observe. Called with p.mu
// held.
func (in *instance) setLocked(st es.SubscriptionState, err error) {
	if in.t.setState(st, err) && in.observe != nil {
		in.notes = append(in.notes, in.t.status)
	}
}

// notify hands the noted statuses to observe. Called without p.mu.
func (in *instance) notify() {
	for len(in.notes) > 0 {
		st := in.notes[0]
		in.notes = in.notes[1:]
		in.observe(st)
	}
}

func (p *Progress) start(name string, observe func(es.SubscriptionStatus)) *instance {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	t := p.tracker(name)
	t.running++
	in := &instance{p: p, t: t, name: name, observe: observe}
	if !t.active {
		in.setLocked(es.SubscriptionStarting, nil)
	}
	p.mu.Unlock()
	in.notify()
	return in
}

// stop ends the instance.
func (in *instance) stop() {
	if in == nil {
		return
	}
	in.p.mu.Lock()
	in.deactivateLocked(nil)
	in.t.running--
	if in.t.running == 0 {
		in.setLocked(es.SubscriptionStopped, nil)
	}
	in.p.release(in.name, in.t)
	in.p.mu.Unlock()
	in.notify()
}

// opened marks the instance active, having loaded its checkpoint at pos.
func (in *instance) opened(pos es.Position) {
	if in == nil {
		return
	}
	in.p.mu.Lock()
	in.active, in.t.active = true, true
	in.t.status.Handled = pos
	in.setLocked(es.SubscriptionCatchingUp, nil)
	in.t.signal()
	in.p.mu.Unlock()
	in.notify()
}

// closed marks the instance inactive after its session ended with err (nil
// when it stops).
func (in *instance) closed(err error) {
	if in == nil {
		return
	}
	in.p.mu.Lock()
	in.deactivateLocked(err)
	in.p.mu.Unlock()
	in.notify()
}

func (in *instance) deactivateLocked(err error) {
	if !in.active {
		return
	}
	in.active, in.t.active = false, false
	in.setLocked(es.SubscriptionStarting, err)
	in.t.signal()
}

// handled records that everything up to pos is handled.
func (in *instance) handled(pos es.Position) {
	if in == nil {
		return
	}
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	if in.t.status.Handled.Before(pos) {
		in.t.status.Handled = pos
		in.t.signal()
	}
}

// state sets the instance's state.
func (in *instance) state(st es.SubscriptionState, err error) {
	if in == nil {
		return
	}
	in.p.mu.Lock()
	if in.active {
		in.setLocked(st, err)
	}
	in.p.mu.Unlock()
	in.notify()
}

// wantsBeyond reports whether a WaitFor waits for a position after pos.
func (in *instance) wantsBeyond(pos es.Position) bool {
	if in == nil {
		return false
	}
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	for w := range in.t.wants {
		if pos.Before(w) {
			return true
		}
	}
	return false
}

// wakeup returns the channel on which WaitFor asks the instance to read.
func (in *instance) wakeup() <-chan struct{} {
	if in == nil {
		return nil
	}
	return in.t.wake
}
