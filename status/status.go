package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"shortener/events"
	"shortener/region"
)

// Target is a region to ask: its name and the base URL of its HTTP API.
type Target struct{ Name, URL string }

// Print asks every target for GET /api/v1/regions and prints one row per
// (region, origin): the events of the origin the region holds and lacks,
// how old the newest it holds is, the mirror's state (and the error
// nats-server reports for it: a warning while the mirror moves), the RPO
// bound of failing the origin's clients over to the region now, the alias
// register and the durability; a region that does not answer is a row
// saying so. Then the events a region refused and the streams it halted.
// It fails when no region answered.
func Print(ctx context.Context, out io.Writer, targets []Target) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tORIGIN\tHELD SEQ\tLAG EVENTS\tLAG\tMIRROR\tRPO EVENTS\tRPO\tALIASES\tDURABILITY")
	down := 0
	var refused []string
	for _, t := range targets {
		var rr region.RegionsResponse
		err := GetJSON(ctx, client, t.URL+"/api/v1/regions", &rr)
		if err != nil {
			fmt.Fprintf(tw, "%s\tUNREACHABLE\t\t\t\t\t\t\t\t%v\n", t.Name, ShortErr(err))
			down++
			continue
		}
		if len(rr.Rejected) > 0 {
			var parts []string
			for _, reason := range events.Reasons {
				if n := rr.Rejected[reason]; n > 0 {
					parts = append(parts, fmt.Sprintf("%s=%d", reason, n))
				}
			}
			refused = append(refused, fmt.Sprintf("%s: REFUSED EVENTS %s (docs/runbooks/events-rejected.md)", rr.Region, strings.Join(parts, " ")))
		}
		for _, stream := range slices.Sorted(maps.Keys(rr.Halted)) {
			h := rr.Halted[stream]
			refused = append(refused, fmt.Sprintf("%s: STREAM HALTED %s at #%d (%s): upgrade the binary (docs/runbooks/stream-halted.md)", rr.Region, stream, h.Seq, h.Reason))
		}
		for _, o := range rr.Origins {
			mirror := "live"
			switch {
			case o.Local:
				mirror = "(own)"
			case o.MirrorActive: // live
			case o.MirrorCopying:
				mirror = "CATCHING UP" // moving, its newest event not yet recent
			case o.MirrorActiveAgo < 0:
				mirror = "never"
			default:
				mirror = fmt.Sprintf("DOWN %.0fs", o.MirrorActiveAgo)
			}
			if o.OriginBehind {
				mirror += " ORIGIN BEHIND" // the origin lost events its mirror holds
			}
			if o.OriginDiverged {
				mirror += fmt.Sprintf(" DIVERGED #%d", o.DivergedAt) // and took others at their sequences
			}
			switch {
			case o.MirrorError == "":
			case o.MirrorActive || o.MirrorCopying:
				// Events arrive, so what nats-server reports is a warning:
				// "stalled on flow control" on a moving mirror means its
				// write backlog delays the flow-control reply.
				mirror += " (warn: " + o.MirrorError + ")"
			default:
				mirror += " ERR " + o.MirrorError
			}
			lag, rpo, rpoS, lagS := "-", "-", "-", "-"
			if !o.Local {
				lag = fmt.Sprint(o.LagEvents)
				if !o.OriginReachable {
					lag += "+?"
				}
				rpo, rpoS, lagS = fmt.Sprint(o.RPOEvents), fmt.Sprintf("%.1fs", o.RPOSeconds), fmt.Sprintf("%.1fs", o.LagSeconds)
				if !o.RPOKnown {
					rpo, rpoS = "UNKNOWN", "UNKNOWN" // never seen the origin and a live mirror together
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rr.Region, o.Origin, o.LastSeq, lag, lagS, mirror, rpo, rpoS, rr.AliasRegister, rr.Durability)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range refused {
		fmt.Fprintln(out, line)
	}
	if down == len(targets) {
		return fmt.Errorf("no region answered: is the cluster running (make run)?")
	}
	return nil
}

// GetJSON GETs url and decodes its 200 answer into v.
func GetJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// ShortErr is the last part of an error's text (a dial error's "connection
// refused"), for a table's cell.
func ShortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// RPO is the RPO bound a region reports for an origin, as text.
type RPO struct{ Region, Text string }

// ReportedRPOs asks every region of targets but origin for the RPO bound it
// reports for origin now: what they would lose if origin never came back.
func ReportedRPOs(ctx context.Context, targets []Target, origin string) []RPO {
	var out []RPO
	hc := &http.Client{Timeout: time.Second}
	for _, t := range targets {
		if t.Name == origin {
			continue
		}
		var rr region.RegionsResponse
		if err := GetJSON(ctx, hc, t.URL+"/api/v1/regions", &rr); err != nil {
			out = append(out, RPO{t.Name, "unreachable"})
			continue
		}
		for _, o := range rr.Origins {
			if o.Origin != origin {
				continue
			}
			text := fmt.Sprintf("at most %d events, %.1f s (lag %d events)", o.RPOEvents, o.RPOSeconds, o.LagEvents)
			if !o.RPOKnown {
				text = "UNKNOWN (mirror never seen live)"
			}
			out = append(out, RPO{t.Name, text})
		}
	}
	return out
}
