package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgevent/es"
)

func runSub(ctx context.Context, e *env, args []string) error {
	f := e.flags("sub", "sub list|show NAME|reset NAME|rewind NAME --to POS [--json]")
	asJSON := f.Bool("json", false, "list, show: print JSON lines")
	to := f.String("to", "", "rewind: the position to set the checkpoint to (as printed: <transaction key>/<global position>)")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return fmt.Errorf("%w: want list, show, reset or rewind", errUsage)
	}
	verb, args := args[0], args[1:]
	switch verb {
	case "list":
		err = wantArgs(args, 0, "no arguments")
	case "show", "reset", "rewind":
		err = wantArgs(args, 1, "a subscription name")
	default:
		err = fmt.Errorf("%w: want list, show, reset or rewind, got %q", errUsage, verb)
	}
	if err != nil {
		return err
	}
	var pos es.Position
	switch {
	case verb == "rewind" && *to == "":
		return fmt.Errorf("%w: rewind needs --to POS", errUsage)
	case verb == "rewind":
		if pos, err = es.ParsePosition(*to); err != nil {
			return fmt.Errorf("%w: --to: %v", errUsage, err)
		}
	case *to != "":
		return fmt.Errorf("%w: --to is for rewind", errUsage)
	}

	st, pool, err := e.store(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	now := time.Now()
	switch verb {
	case "list":
		subs, err := st.Subscriptions(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			for _, h := range subs {
				if err := writeJSON(e.stdout, subJSON(h, now)); err != nil {
					return err
				}
			}
			return nil
		}
		if len(subs) == 0 {
			fmt.Fprintln(e.stdout, "no subscriptions")
			return nil
		}
		printSubscriptions(e.stdout, subs, now)
		return nil
	case "show":
		h, err := st.SubscriptionHealth(ctx, args[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, subJSON(h, now))
		}
		j := subJSON(h, now)
		cp := "none"
		if j.Checkpoint != nil {
			cp = *j.Checkpoint
		}
		w := e.stdout
		fmt.Fprintf(w, "name           %s\n", h.Name)
		fmt.Fprintf(w, "health         %s\n", h.Health)
		fmt.Fprintf(w, "checkpoint     %s\n", cp)
		if !h.LastProgressAt.IsZero() {
			fmt.Fprintf(w, "last progress  %s\n", h.LastProgressAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "behind         %s (%d hidden)", plural(h.EventsBehind, "event"), h.HiddenEvents)
		if d := h.Behind(now); d > 0 {
			fmt.Fprintf(w, ", oldest waiting %s", d.Round(time.Millisecond))
		}
		fmt.Fprintln(w)
		if h.Rate > 0 {
			fmt.Fprintf(w, "rate           %.0f events/s, about %s to go\n", h.Rate, h.Remaining().Round(time.Second))
		}
		fmt.Fprintf(w, "parked         %s\n", plural(h.ParkedEvents, "event"))
		if h.LastError != "" {
			fmt.Fprintf(w, "last error     %s\n", h.LastError)
		}
		return nil
	}
	// reset, rewind
	name := args[0]
	if err := st.ResetCheckpoint(ctx, name, pos); err != nil {
		if errors.Is(err, es.ErrSubscriptionRunning) {
			return fmt.Errorf("subscription %q is running: stop its instances, then %s it", name, verb)
		}
		return err
	}
	if pos.IsZero() {
		fmt.Fprintf(e.stdout, "subscription %s: checkpoint reset to the start of the log\n", name)
	} else {
		fmt.Fprintf(e.stdout, "subscription %s: checkpoint set to %s\n", name, pos)
	}
	return nil
}
