package auditor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// codeRecords reads every record about code from one copy of every
// origin's log: the origin's own stream, or (unreachable) a mirror of it.
func (a *Auditor) codeRecords(ctx context.Context, code string) ([]events.Record, error) {
	if err := events.ValidateCode(code); err != nil {
		return nil, events.Errorf(events.Invalid, "code %q: %v", code, err)
	}
	var out []events.Record
	for _, origin := range a.log.Origins() {
		var copies replicator.LogCopies
		if c, ok := a.log.OriginStream(origin); ok {
			copies = append(copies, c)
		}
		copies = append(copies, a.log.Alternatives(replicator.StreamName(origin), 0)...)
		if len(copies) == 0 {
			for _, c := range a.log {
				if c.Origin == origin {
					copies = append(copies, c)
				}
			}
		}
		var errs []error
		read := false
		for _, c := range copies {
			var recs []events.Record
			err := replicator.Read(ctx, a.js, c.Stream, replicator.ReadOptions{Subject: replicator.Subject(origin, code)}, func(rs []events.Record) error {
				recs = append(recs, rs...)
				return nil
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, recs...)
			read = true
			break
		}
		if !read {
			return nil, fmt.Errorf("no copy of %s's log could be read: %w", origin, errors.Join(errs...))
		}
	}
	return out, nil
}

// History returns every event of code from every origin's log, in fold
// order, each with the link's state after it. Errors: events.Invalid for
// a malformed code, events.NotFound when the log holds no event of it.
func (a *Auditor) History(ctx context.Context, code string) ([]projections.Step, error) {
	recs, err := a.codeRecords(ctx, code)
	if err != nil {
		return nil, err
	}
	steps, skipped := projections.History(code, recs, a.rules)
	for _, err := range skipped {
		fmt.Fprintf(a.progress, "skipped a record that is not a valid event: %v\n", err)
	}
	if len(steps) == 0 {
		return nil, &events.Error{Kind: events.NotFound, Message: fmt.Sprintf("no event for code %q in the log of %s", code, strings.Join(a.log.Origins(), ", "))}
	}
	return steps, nil
}

// WriteHistory writes steps to out: a table, or JSON lines.
func (a *Auditor) WriteHistory(out io.Writer, steps []projections.Step) error {
	if a.json {
		enc := json.NewEncoder(out)
		for _, s := range steps {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTIME\tORIGIN\tSTREAM\tSEQ\tTYPE\tACTOR\tPAYLOAD\tTHEN")
	for i, s := range steps {
		then := stateLine(s.State, s.Event.Time)
		switch {
		case s.Refused != "":
			then = "(refused, not folded: " + s.Refused + ")"
		case s.Duplicate:
			then = "(duplicate: folded once)"
		case !s.Changed:
			then = "(no change) " + then
		}
		payload := string(s.Event.Payload)
		if payload == "" || payload == "{}" {
			payload = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", i+1, s.Event.Time.Format(time.RFC3339Nano), s.Event.Origin,
			s.Stream, s.Seq, s.Event.Type, orDash(s.Event.Actor), payload, then)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stateLine(l events.Link, t time.Time) string {
	st := projections.StateAt(l, t)
	if st == projections.StateAbsent {
		return string(st)
	}
	return fmt.Sprintf("%s %d %s", st, l.RedirectStatus, l.URL)
}

// LinkAt is what one code pointed to at a moment.
type LinkAt struct {
	Code           string                `json:"code"`
	At             time.Time             `json:"at"`
	State          projections.LinkState `json:"state"`
	URL            string                `json:"url,omitempty"`
	RedirectStatus int                   `json:"redirect_status,omitempty"`
	ExpiresAt      *time.Time            `json:"expires_at,omitempty"`
	Origin         string                `json:"origin,omitempty"`
	Events         int                   `json:"events"` // events folded up to then
}

func linkAtOf(code string, l events.Link, t time.Time) LinkAt {
	return LinkAt{Code: code, At: t, State: projections.StateAt(l, t), URL: l.URL, RedirectStatus: l.RedirectStatus,
		ExpiresAt: l.ExpiresAt, Origin: l.Origin, Events: l.Events}
}

// At returns what code pointed to at t, folding its events with a producer
// time up to t; with code "", what every code pointed to, by a replay of
// every origin's log up to t. Errors as History's.
func (a *Auditor) At(ctx context.Context, t time.Time, code string) ([]LinkAt, error) {
	if code != "" {
		steps, err := a.History(ctx, code)
		if err != nil {
			return nil, err
		}
		return []LinkAt{linkAtOf(code, projections.At(steps, t), t)}, nil
	}
	srcs, err := a.sourcesFor(a.originCut(), 0)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "shortener-audit-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, _, err := Replay(ctx, a.js, srcs, dir, ReplayOptions{Until: t, Rules: a.rules, Label: "replay up to " + t.Format(time.RFC3339Nano), Progress: a.progress})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var rows []LinkAt
	err = store.Links(func(l events.Link) error {
		rows = append(rows, linkAtOf(l.Code, l, t))
		return nil
	})
	return rows, err
}

// WriteAt writes rows to out: a table, or JSON lines.
func (a *Auditor) WriteAt(out io.Writer, rows []LinkAt) error {
	if a.json {
		w := bufio.NewWriter(out)
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSTATE\tSTATUS\tURL\tEXPIRES\tORIGIN\tEVENTS")
	for _, r := range rows {
		status, exp := "-", "-"
		if r.RedirectStatus != 0 {
			status = strconv.Itoa(r.RedirectStatus)
		}
		if r.ExpiresAt != nil {
			exp = r.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Code, r.State, status, orDash(r.URL), exp, orDash(r.Origin), r.Events)
	}
	return tw.Flush()
}
