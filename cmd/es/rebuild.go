package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pgevent/es"
)

// rebuildPoll is how often es rebuild reads the subscription's health.
const rebuildPoll = 500 * time.Millisecond

// runRebuild follows a subscription's rebuild: with --reset it first sets
// its checkpoint to the start of the log (refused while an instance runs),
// then shows its progress until it has caught up. The rebuilding itself is
// the application's: an instance of the subscription (the projection's
// handler) must run, here or elsewhere.
func runRebuild(ctx context.Context, e *env, args []string) error {
	f := e.flags("rebuild", "rebuild NAME [--reset]")
	reset := f.Bool("reset", false, "set the checkpoint to the start of the log first (no instance may run)")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 1, "a subscription name"); err != nil {
		return err
	}
	name := args[0]
	st, pool, err := e.store(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *reset {
		if err := st.ResetCheckpoint(ctx, name, es.Position{}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: checkpoint reset to the start of the log\n", name)
	}

	p := newProgress(e.stdout, name)
	var total int64 = -1
	waiting := false
	for {
		h, err := st.SubscriptionHealth(ctx, name)
		if err != nil {
			return err
		}
		switch {
		case h.Health == es.HealthFailing:
			return fmt.Errorf("%s is failing: %s", name, h.LastError)
		case h.Health == es.HealthIdle && h.EventsBehind > 0:
			total = max(total, h.EventsBehind)
			if !waiting {
				fmt.Fprintf(e.stdout, "%s: %d events to handle; waiting for an instance of the subscription to run\n", name, h.EventsBehind)
				waiting = true
			}
		case h.EventsBehind == 0 || h.EventsBehind == h.HiddenEvents && h.Health == es.HealthLive:
			if total > 0 {
				p.show(total, total, h.Rate)
			}
			p.done(fmt.Sprintf("%s: caught up at %s", name, h.Checkpoint))
			return nil
		default:
			if total < h.EventsBehind {
				total = h.EventsBehind
			}
			p.show(total-h.EventsBehind, total, h.Rate)
		}
		select {
		case <-ctx.Done(): // Ctrl-C: the rebuild goes on without us
			p.done(fmt.Sprintf("%s: stopped following the rebuild", name))
			return nil
		case <-time.After(rebuildPoll):
		}
	}
}
