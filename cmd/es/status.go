package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgevent/es"
)

// subscriptionJSON is a subscription as the --json outputs show it.
type subscriptionJSON struct {
	Name              string     `json:"name"`
	Health            es.Health  `json:"health"`
	Checkpoint        *string    `json:"checkpoint"`
	LastProgressAt    *time.Time `json:"last_progress_at,omitempty"`
	EventsBehind      int64      `json:"events_behind"`
	HiddenEvents      int64      `json:"hidden_events"`
	OldestUnhandledAt *time.Time `json:"oldest_unhandled_at,omitempty"`
	LagSeconds        float64    `json:"lag_seconds"`
	Rate              float64    `json:"rate"`
	ParkedEvents      int64      `json:"parked_events"`
	LastError         string     `json:"last_error,omitempty"`
	// ReadsFrom and ReplicaLagSeconds: where the running instance reads
	// the log ("primary" or a standby's host:port) and that standby's lag.
	ReadsFrom         string   `json:"reads_from,omitempty"`
	ReplicaLagSeconds *float64 `json:"replica_lag_seconds,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func subJSON(h es.SubscriptionHealth, now time.Time) subscriptionJSON {
	j := subscriptionJSON{
		Name: h.Name, Health: h.Health,
		LastProgressAt: timePtr(h.LastProgressAt), EventsBehind: h.EventsBehind, HiddenEvents: h.HiddenEvents,
		OldestUnhandledAt: timePtr(h.OldestUnhandledAt), LagSeconds: h.Behind(now).Seconds(),
		Rate: h.Rate, ParkedEvents: h.ParkedEvents, LastError: h.LastError,
	}
	if h.HasCheckpoint {
		c := h.Checkpoint.String()
		j.Checkpoint = &c
	}
	j.ReadsFrom = h.ReadsFrom
	if onStandby(h) {
		lag := h.ReplicaLag.Seconds()
		j.ReplicaLagSeconds = &lag
	}
	return j
}

// horizonJSON is a horizon holder as es status --json shows it.
type horizonJSON struct {
	PID             int        `json:"pid"`
	Database        string     `json:"database"`
	User            string     `json:"user"`
	ApplicationName string     `json:"application_name"`
	State           string     `json:"state"`
	XactStart       *time.Time `json:"xact_start,omitempty"`
	Query           string     `json:"query,omitempty"`
	XID             int64      `json:"xid"`
	PreparedGID     string     `json:"prepared_gid,omitempty"`
}

type statusJSON struct {
	Schema         string             `json:"schema"`
	Version        int32              `json:"version"`
	LatestVersion  int                `json:"latest_version"`
	Events         int64              `json:"events"`
	Streams        int64              `json:"streams"`
	LogHead        string             `json:"log_head"`
	Subscriptions  []subscriptionJSON `json:"subscriptions"`
	HorizonHolders []horizonJSON      `json:"horizon_holders"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	f := e.flags("status", "status [--json]")
	asJSON := f.Bool("json", false, "print one JSON object")
	args, err := parse(f, args)
	if err != nil {
		return err
	}
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	files, err := migrations()
	if err != nil {
		return err
	}
	st, pool, err := e.store(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	s := statusJSON{Schema: e.schema, LatestVersion: len(files), Subscriptions: []subscriptionJSON{}, HorizonHolders: []horizonJSON{}}
	if s.Version, err = schemaVersion(ctx, pool, e.schema); err != nil {
		return err
	}
	if s.Version == 0 {
		return fmt.Errorf("schema %s is not installed: run es migrate up", e.schema)
	}
	log := e.ident("events")
	if s.Version >= 6 { // the archive: the log is events and events_archive
		log = e.ident("all_events")
	}
	q := fmt.Sprintf(`SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s),
		(SELECT l.transaction_id::text || '/' || l.global_position::text FROM %s() AS l)`,
		log, e.ident("streams"), e.ident("log_end"))
	if err := pool.QueryRow(ctx, q).Scan(&s.Events, &s.Streams, &s.LogHead); err != nil {
		return fmt.Errorf("counting: %w", err)
	}
	subs, err := st.Subscriptions(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, h := range subs {
		s.Subscriptions = append(s.Subscriptions, subJSON(h, now))
	}
	holders, err := st.HorizonHolders(ctx)
	if err != nil {
		return err
	}
	for _, h := range holders {
		s.HorizonHolders = append(s.HorizonHolders, horizonJSON{
			PID: h.PID, Database: h.Database, User: h.User, ApplicationName: h.ApplicationName, State: h.State,
			XactStart: timePtr(h.XactStart), Query: h.Query, XID: h.XID, PreparedGID: h.PreparedGID,
		})
	}
	if *asJSON {
		return writeJSON(e.stdout, s)
	}
	w := e.stdout
	fmt.Fprintf(w, "schema    %s, version %d of %d\n", s.Schema, s.Version, s.LatestVersion)
	fmt.Fprintf(w, "events    %d in %s\n", s.Events, plural(s.Streams, "stream"))
	fmt.Fprintf(w, "log head  %s\n", s.LogHead)
	fmt.Fprintf(w, "\nsubscriptions (%d)\n", len(subs))
	if len(subs) > 0 {
		printSubscriptions(w, subs, now)
	}
	fmt.Fprintf(w, "\nhorizon\n")
	if len(holders) == 0 {
		fmt.Fprintf(w, "  not held back: no transaction that has written is running\n")
		return nil
	}
	tw := table(w)
	fmt.Fprintf(tw, "  PID\tUSER\tAPPLICATION\tSTATE\tAGE\tQUERY\n")
	for _, h := range holders {
		age := "-"
		if !h.XactStart.IsZero() {
			age = now.Sub(h.XactStart).Round(time.Second).String()
		}
		who := h.ApplicationName
		if h.PreparedGID != "" {
			who = "prepared " + h.PreparedGID
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", h.PID, h.User, who, h.State, age, oneLine(h.Query, 60))
	}
	return tw.Flush()
}

// printSubscriptions prints a table of subscriptions.
func printSubscriptions(w io.Writer, subs []es.SubscriptionHealth, now time.Time) {
	tw := table(w)
	fmt.Fprintf(tw, "  NAME\tHEALTH\tCHECKPOINT\tBEHIND\tHIDDEN\tLAG\tPARKED\tERROR\n")
	for _, h := range subs {
		cp := "-"
		if h.HasCheckpoint {
			cp = h.Checkpoint.String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", h.Name, h.Health, cp, h.EventsBehind, h.HiddenEvents,
			h.Behind(now).Round(time.Millisecond), h.ParkedEvents, oneLine(h.LastError, 60))
	}
	_ = tw.Flush()
	for _, h := range subs {
		if onStandby(h) {
			fmt.Fprintf(w, "  %s reads the standby %s (replay lag %s)\n", h.Name, h.ReadsFrom, h.ReplicaLag.Round(time.Millisecond))
		}
	}
}

// onStandby reports whether the running instance of a subscription reads
// the log from a standby.
func onStandby(h es.SubscriptionHealth) bool {
	return h.ReadsFrom != "" && h.ReadsFrom != "primary"
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// table returns a writer of a table's columns; its Flush writes the table
// to w without the spaces an empty last column leaves at the end of a line.
func table(w io.Writer) *tableWriter {
	t := &tableWriter{out: w}
	t.Writer = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

type tableWriter struct {
	*tabwriter.Writer
	buf bytes.Buffer
	out io.Writer
}

func (t *tableWriter) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for line := range strings.Lines(t.buf.String()) {
		b.WriteString(strings.TrimRight(line, " \n"))
		b.WriteByte('\n')
	}
	t.buf.Reset()
	_, err := io.WriteString(t.out, b.String())
	return err
}
