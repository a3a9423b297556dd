// Package check judges the history of a chaos run (chaos/load) against the
// invariants of ../shared/DESIGN.md, once the cluster has healed and its
// regions have converged:
//
//   - Acked: every acknowledged write (a create or alias answered 201)
//     redirects to its URL in every region. None may be lost.
//   - Phantoms: every redirect answered during the run, and every code read
//     at the end, leads to a URL some write of that code sent. Nothing may
//     redirect to something never created.
//   - Aliases: no alias has two 201s, and the claims of each alias with the
//     final owner read at the end are linearizable against a set-once
//     register (porcupine), claims of unknown outcome included.
//   - Availability: the operations of clients whose region was up succeed
//     at least at the target rate.
//
// The checkers are pure functions of the history and of what the regions
// answered at the end (Final); the chaos command gathers both.
package check

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"shortener/chaos"
	"shortener/chaos/load"
)

// maxDetails bounds the examples a failed check lists.
const maxDetails = 10

// Final is what the regions answered at the end of the run, once healed and
// converged: region name → code → the Location of the redirect ("" when
// the code did not redirect: not found, deleted).
type Final map[string]map[string]string

// Codes returns every code the checkers want read at the end: the codes of
// every write and every redirect of h, sorted.
func Codes(h *load.History) []string {
	seen := map[string]bool{}
	for _, o := range h.Ops {
		if o.Code != "" {
			seen[o.Code] = true
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// writes indexes the writes of a history: for every code, the URLs its
// writes sent, and whether one of them was acknowledged.
type writes struct {
	urls  map[string][]string // code → URLs written (acknowledged or of unknown outcome)
	acked map[string]string   // code → URL of the acknowledged write
}

func indexWrites(h *load.History) writes {
	w := writes{urls: map[string][]string{}, acked: map[string]string{}}
	for _, o := range h.Ops {
		if o.Op == load.OpRedirect || o.Code == "" {
			continue
		}
		if o.Op == load.OpAlias && o.Status == 409 {
			continue // lost: wrote nothing
		}
		if !slices.Contains(w.urls[o.Code], o.URL) {
			w.urls[o.Code] = append(w.urls[o.Code], o.URL)
		}
		if o.Ack {
			w.acked[o.Code] = o.URL
		}
	}
	return w
}

// Acked checks that every acknowledged write redirects to its URL in every
// region of final. It fails when no create was acknowledged or no region
// was read: nothing was tested.
func Acked(h *load.History, final Final) chaos.Check {
	c := chaos.Check{Name: "acknowledged writes lost", Want: "0 lost in every region"}
	var acked, creates, lost int
	regions := sortedKeys(final)
	for _, o := range h.Ops {
		if !o.Ack || o.Op == load.OpRedirect {
			continue
		}
		acked++
		if o.Op == load.OpCreate {
			creates++
		}
		if o.Code == "" {
			lost++
			c.Details = appendDetail(c.Details, fmt.Sprintf("%s #%d acknowledged at %s without a code in its answer", o.Op, o.Seq, o.End.Format(time.TimeOnly)))
			continue
		}
		for _, r := range regions {
			got, ok := final[r][o.Code]
			if !ok || got != o.URL {
				lost++
				c.Details = appendDetail(c.Details, fmt.Sprintf("%s %s (acknowledged by %s at %s) in %s: %q, want %q",
					o.Op, o.Code, orUnknown(o.Region), o.End.Format(time.TimeOnly), r, got, o.URL))
				break
			}
		}
	}
	c.OK = lost == 0 && acked > 0 && creates > 0 && len(regions) > 0
	c.Measured = fmt.Sprintf("%d of %d lost (%d regions read)", lost, acked, len(regions))
	switch {
	case acked == 0:
		c.Details = append(c.Details, "no write was acknowledged: nothing was tested")
	case creates == 0:
		c.Details = append(c.Details, "no create was acknowledged: creates were not tested")
	}
	if len(regions) == 0 {
		c.Details = append(c.Details, "no region was read at the end: nothing was compared")
	}
	return c
}

// Phantoms checks that no redirect, during the run or at the end, led to a
// URL that no write of its code sent. It fails when nothing was checked or
// some region (or none) was read at the end.
func Phantoms(h *load.History, final Final) chaos.Check {
	c := chaos.Check{Name: "redirects to something never created", Want: "0"}
	w := indexWrites(h)
	var checked, bad int
	unread := len(final) == 0
	for _, r := range sortedKeys(final) {
		if len(final[r]) == 0 {
			unread = true
			c.Details = append(c.Details, fmt.Sprintf("%s: no code read at the end", r))
		}
	}
	if len(final) == 0 {
		c.Details = append(c.Details, "no region was read at the end")
	}
	for _, o := range h.Ops {
		if o.Op != load.OpRedirect || !o.OK {
			continue
		}
		checked++
		if !slices.Contains(w.urls[o.Code], o.URL) {
			bad++
			c.Details = appendDetail(c.Details, fmt.Sprintf("redirect #%d of %s by %s at %s: Location %q, written %q",
				o.Seq, o.Code, orUnknown(o.Region), o.End.Format(time.TimeOnly), o.URL, w.urls[o.Code]))
		}
	}
	for _, r := range sortedKeys(final) {
		for _, code := range sortedKeys(final[r]) {
			loc := final[r][code]
			if loc == "" {
				continue
			}
			checked++
			if !slices.Contains(w.urls[code], loc) {
				bad++
				c.Details = appendDetail(c.Details, fmt.Sprintf("%s at the end: %s redirects to %q, written %q", r, code, loc, w.urls[code]))
			}
		}
	}
	c.OK = bad == 0 && checked > 0 && !unread
	c.Measured = fmt.Sprintf("%d of %d redirects", bad, checked)
	if checked == 0 {
		c.Details = append(c.Details, "no redirect answered, during the run or at the end: nothing was tested")
	}
	return c
}

// Availability checks the success rate of the operations of clients whose
// region was up: operations sent inside an excluded window of their
// client's region do not count, nor do alias claims answered 503 (the
// register refusing without a quorum is the designed answer; they are
// counted and reported).
func Availability(h *load.History, excluded []chaos.Window, target float64) chaos.Check {
	c := chaos.Check{Name: "success rate of clients whose region was up", Want: fmt.Sprintf("≥ %.2f%%", 100*target)}
	var n, ok, skipped, no503 int
	byErr := map[string]int{}
	for _, o := range h.Ops {
		if o.Cut {
			continue // cut off by the run's end, not answered by the service
		}
		if inWindow(excluded, o.Target, o.Start) {
			skipped++
			continue
		}
		if o.Op == load.OpAlias && o.Status == 503 {
			no503++
			continue
		}
		n++
		if o.OK {
			ok++
			continue
		}
		why := o.Err
		if o.Status != 0 {
			why = fmt.Sprintf("%d %s", o.Status, o.Err)
		}
		byErr[fmt.Sprintf("%s from %s clients at %s: %s", o.Op, o.Target, orUnknown(o.Region), why)]++
	}
	var rate float64 // no operation counted is no evidence of availability
	if n > 0 {
		rate = float64(ok) / float64(n)
	}
	c.OK = n > 0 && rate >= target
	c.Measured = fmt.Sprintf("%.4f%% of %d (%d failed; %d in excluded windows, %d alias claims refused without quorum)",
		100*rate, n, n-ok, skipped, no503)
	if n == 0 {
		c.Details = append(c.Details, "no operation of a client whose region was up: nothing was tested")
	}
	keys := sortedKeys(byErr)
	slices.SortStableFunc(keys, func(a, b string) int { return byErr[b] - byErr[a] })
	for _, k := range keys {
		c.Details = appendDetail(c.Details, fmt.Sprintf("%d × %s", byErr[k], k))
	}
	return c
}

func inWindow(ws []chaos.Window, region string, t time.Time) bool {
	for _, w := range ws {
		if w.Region == region && !t.Before(w.From) && !t.After(w.To) {
			return true
		}
	}
	return false
}

// Converged checks that every region's projection has the same digest:
// at least two regions, none without a digest.
func Converged(digests map[string]string) chaos.Check {
	c := chaos.Check{Name: "projection digests equal across regions", Want: "one digest"}
	distinct := map[string][]string{}
	for _, r := range sortedKeys(digests) {
		distinct[digests[r]] = append(distinct[digests[r]], r)
	}
	_, blank := distinct[""] // a region that answered no digest
	c.OK = len(distinct) == 1 && len(digests) > 1 && !blank
	if len(digests) < 2 {
		c.Details = append(c.Details, fmt.Sprintf("%d regions' digests: nothing to compare", len(digests)))
	}
	for _, d := range sortedKeys(distinct) {
		c.Details = append(c.Details, fmt.Sprintf("%s: %s", strings.Join(distinct[d], ", "), short(d)))
	}
	c.Measured = fmt.Sprintf("%d distinct over %d regions", len(distinct), len(digests))
	return c
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func appendDetail(d []string, s string) []string {
	if len(d) < maxDetails {
		return append(d, s)
	}
	if len(d) == maxDetails {
		return append(d, "…")
	}
	return d
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
