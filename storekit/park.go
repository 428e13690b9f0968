package storekit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgevent/es"
)

// Parker records parked events ([es.ParkOnFailure]); a [Session] does it
// at once, a [Tx] as part of its transaction.
type Parker interface {
	// Park records p as parked for the subscription.
	Park(ctx context.Context, p es.ParkedEvent) error
	// Retried records the outcome of a retry of the parked event at pos:
	// handled (resolved), or failed again with err.
	Retried(ctx context.Context, pos es.Position, handled bool, err error) error
}

// parking is the engine's state of a subscription's parked events. It is
// active when the subscription parks (ParkOnFailure), or has unresolved
// parked events whatever its policy now: the later events of their
// streams are then parked behind them, so that no stream is handled out of
// order.
type parking struct {
	active bool
	// parked holds the unresolved parked positions; first each blocked
	// stream's earliest one. An event of a stream is parked behind when it
	// comes after its stream's first; an event already parked stays so
	// (it is not handled again when a rewind meets it).
	parked map[es.Position]bool
	first  map[string]es.Position
	// due holds the events to park when they come again (their handler's
	// retries are used up), with the handler's error and the attempts;
	// taken lists those parked in the open transaction, given back if it
	// rolls back.
	due   map[es.Position]dueEvent
	taken map[es.Position]dueEvent
	// stale: the parking of a transaction that rolled back is in parked:
	// read the parked events again before the next read.
	stale bool
	// checked is when the parked events were last read for retries.
	checked time.Time
}

// parkCheckInterval is how often a subscription with parked events reads
// them to find retries an operator asked for from another process (SQL
// retry_parked); a retry asked for in this process is seen at once.
const parkCheckInterval = time.Second

// dueEvent is why an event is due to be parked.
type dueEvent struct {
	err      error
	attempts int
}

// begin starts a transaction's parking; rollback gives back what it took.
func (p *parking) begin() { clear(p.taken) }
func (p *parking) rollback() {
	for pos, d := range p.taken {
		p.due[pos] = d
	}
	clear(p.taken)
}

// loadParked reads the subscription's unresolved parked events.
func (r *runner) loadParked(ctx context.Context) ([]es.ParkedEvent, error) {
	parked, err := r.s.Parked(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading parked events: %w", err)
	}
	p := &r.park
	p.parked, p.first, p.stale = make(map[es.Position]bool, len(parked)), make(map[string]es.Position), false
	for _, pe := range parked {
		p.add(pe.Event)
	}
	p.active = r.o.OnFailure == es.ParkOnFailure || len(parked) > 0
	return parked, nil
}

// add records e as parked.
func (p *parking) add(e es.Event) {
	p.parked[e.Position] = true
	if first, ok := p.first[e.StreamID]; !ok || e.Position.Before(first) {
		p.first[e.StreamID] = e.Position
	}
}

// parkIfDue parks e with p when its handler's retries were used up, or when
// it comes after a parked event of its stream, and reports whether e is
// parked (it was already parked: it stays so). The caller handles e
// otherwise.
func (r *runner) parkIfDue(ctx context.Context, p Parker, e es.Event) (bool, error) {
	pk := &r.park
	if !pk.active {
		return false, nil
	}
	if pk.parked[e.Position] {
		return true, nil
	}
	pe := es.ParkedEvent{Subscription: r.cfg.Name, Event: e}
	first, blocked := pk.first[e.StreamID]
	due, isDue := pk.due[e.Position]
	switch {
	case isDue:
		pe.Error, pe.Attempts = due.err.Error(), due.attempts
		delete(pk.due, e.Position)
		if pk.taken == nil {
			pk.taken = make(map[es.Position]dueEvent)
		}
		pk.taken[e.Position] = due
	case blocked && first.Before(e.Position):
		pe.Behind = true
	default:
		return false, nil
	}
	if err := p.Park(ctx, pe); err != nil {
		return false, fmt.Errorf("parking %s: %w", e.Position, err)
	}
	pk.add(e)
	if pe.Behind {
		r.log.Info("event parked behind an earlier parked event of its stream", "event", e.Position, "stream_id", e.StreamID)
	} else {
		r.log.Warn("event parked: its handler kept failing", "event", e.Position, "stream_id", e.StreamID,
			"event_type", e.Type, "attempts", pe.Attempts, "error", pe.Error)
	}
	return true, nil
}

// parkNext arranges for e, whose handler's retries are used up, to be
// parked when it is read again (at once: the engine re-reads).
func (r *runner) parkNext(e es.Event, err error) {
	r.park.active = true
	if r.park.due == nil {
		r.park.due = make(map[es.Position]dueEvent)
	}
	r.park.due[e.Position] = dueEvent{err: err, attempts: r.failures}
	r.failures, r.retry = 0, true
}

// retryParked, when the subscription has caught up, hands to the handler
// again the parked events of the streams an operator asked to retry (the
// request sits on the stream's earliest parked event), each stream's in
// order, stopping a stream at its first failure. It reads the parked
// events when a retry was asked for in this process, and otherwise at most
// every parkCheckInterval.
func (r *runner) retryParked(ctx context.Context) error {
	if !r.park.active {
		return nil
	}
	if !r.progress.takeRetryRequest() && time.Since(r.park.checked) < parkCheckInterval {
		return nil
	}
	r.park.checked = time.Now()
	parked, err := r.loadParked(ctx)
	if err != nil {
		return err
	}
	requested := map[string]bool{}
	seen := map[string]bool{}
	for _, p := range parked {
		if id := p.Event.StreamID; !seen[id] {
			seen[id], requested[id] = true, p.RetryRequested
		}
	}
	changed := false
	for _, p := range parked {
		id := p.Event.StreamID
		if !requested[id] {
			continue
		}
		changed = true
		ok, err := r.retryOne(ctx, p.Event)
		if err != nil {
			return err
		}
		r.log.Info("parked event retried", "event", p.Event.Position, "stream_id", id, "handled", ok)
		if !ok {
			requested[id] = false // it stays parked, and so do those behind it
		}
	}
	if changed {
		if _, err := r.loadParked(ctx); err != nil {
			return err
		}
	}
	return nil
}

// retryOne hands a parked event to the handler again and records the
// outcome (with the transactional form, in the handler's transaction). It
// reports whether the handler succeeded.
func (r *runner) retryOne(ctx context.Context, e es.Event) (bool, error) {
	if r.cfg.Handler != nil {
		herr := r.cfg.Handler(ctx, e)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if err := r.s.Retried(ctx, e.Position, herr == nil, herr); err != nil {
			return false, fmt.Errorf("recording the retry of %s: %w", e.Position, err)
		}
		return herr == nil, nil
	}
	stx, err := r.s.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("beginning: %w", err)
	}
	tx := &handlerTx{tx: stx}
	herr := r.cfg.TxHandler(ctx, tx, e)
	if herr != nil {
		stx.Rollback()
		tx.end(false)
		if errors.Is(herr, ErrSessionLost) || ctx.Err() != nil {
			return false, cmpErr(ctx.Err(), herr)
		}
		if err := r.s.Retried(ctx, e.Position, false, herr); err != nil {
			return false, fmt.Errorf("recording the retry of %s: %w", e.Position, err)
		}
		return false, nil
	}
	if err := stx.Retried(ctx, e.Position, true, nil); err != nil {
		stx.Rollback()
		tx.end(false)
		return false, fmt.Errorf("recording the retry of %s: %w", e.Position, err)
	}
	// The checkpoint stays where it is; committing through it checks that
	// this instance still owns it.
	if err := stx.Commit(ctx, r.saved, r.saved); err != nil {
		tx.end(false)
		return false, err
	}
	tx.end(true)
	return true, nil
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
