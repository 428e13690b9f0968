package storekit

import (
	"context"
	"errors"
	"fmt"

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

// parking is the engine's state for a subscription that parks.
type parking struct {
	// blocked counts the unresolved parked events of each stream: a later
	// event of such a stream is parked behind them.
	blocked map[string]int
	// due is the event to park when it comes again (its handler's retries
	// are used up), with the handler's error and attempts.
	due      es.Position
	dueErr   error
	attempts int
}

// loadParked reads the subscription's unresolved parked events: the
// blocked streams, and the retries operators asked for.
func (r *runner) loadParked(ctx context.Context) ([]es.ParkedEvent, error) {
	parked, err := r.s.Parked(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading parked events: %w", err)
	}
	r.park.blocked = make(map[string]int)
	for _, p := range parked {
		r.park.blocked[p.Event.StreamID]++
	}
	return parked, nil
}

// parkIfDue parks e with p, when e is the event whose retries were used
// up or its stream is blocked, and reports whether it did.
func (r *runner) parkIfDue(ctx context.Context, p Parker, e es.Event) (bool, error) {
	if r.o.OnFailure != es.ParkOnFailure {
		return false, nil
	}
	pe := es.ParkedEvent{Subscription: r.cfg.Name, Event: e}
	switch {
	case !r.park.due.IsZero() && e.Position == r.park.due:
		pe.Error, pe.Attempts = r.park.dueErr.Error(), r.park.attempts
		r.park.due, r.park.dueErr, r.park.attempts = es.Position{}, nil, 0
	case r.park.blocked[e.StreamID] > 0:
		pe.Behind = true
	default:
		return false, nil
	}
	if err := p.Park(ctx, pe); err != nil {
		return false, fmt.Errorf("parking %s: %w", e.Position, err)
	}
	if pe.Behind {
		r.log.Info("event parked behind an earlier parked event of its stream", "event", e.Position, "stream_id", e.StreamID)
	} else {
		r.log.Warn("event parked: its handler kept failing", "event", e.Position, "stream_id", e.StreamID,
			"event_type", e.Type, "attempts", pe.Attempts, "error", pe.Error)
	}
	r.park.blocked[e.StreamID]++
	return true, nil
}

// parkNext arranges for e, whose handler's retries are used up, to be
// parked when it is read again (at once: the engine re-reads).
func (r *runner) parkNext(e es.Event, err error) {
	r.park.due, r.park.dueErr, r.park.attempts = e.Position, err, r.failures
	r.failures, r.retry = 0, true
}

// retryParked hands the parked events of the streams an operator asked to
// retry to the handler again, each stream's in order, stopping a stream at
// its first failure. It runs when the subscription has caught up.
func (r *runner) retryParked(ctx context.Context) error {
	parked, err := r.loadParked(ctx)
	if err != nil {
		return err
	}
	requested := map[string]bool{}
	for _, p := range parked {
		if p.RetryRequested {
			requested[p.Event.StreamID] = true
		}
	}
	failed := map[string]bool{}
	for _, p := range parked {
		id := p.Event.StreamID
		if !requested[id] || failed[id] {
			continue
		}
		ok, err := r.retryOne(ctx, p.Event)
		if err != nil {
			return err
		}
		r.log.Info("parked event retried", "event", p.Event.Position, "stream_id", id, "handled", ok)
		if !ok {
			failed[id] = true
			continue
		}
		r.park.blocked[id]--
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
