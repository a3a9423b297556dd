package auditor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"shortener/backup"
	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// Check is one check of a restored backup: what it checks, the target, the
// measured value, and whether it passed.
type Check struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Pass     bool   `json:"pass"`
}

// Checks are the consistency checks of a restored backup.
type Checks []Check

// Passed reports whether every check passed; no check at all is no pass.
func (r Checks) Passed() bool { return r.Failed() == 0 && len(r) > 0 }

// Failed is the number of checks that did not pass.
func (r Checks) Failed() int {
	n := 0
	for _, c := range r {
		if !c.Pass {
			n++
		}
	}
	return n
}

// RestoreOptions say which backup CheckRestore restores, where, and what
// it checks it against.
type RestoreOptions struct {
	Backup  string // the backup's directory
	Staging string // the staging region's directory (new)
	Host    string // the loopback address the staging NATS server listens on
	// Live opens the running cluster to check the backup against, once
	// the staging region is up (nil: the backup is checked against itself
	// only). CheckRestore closes it.
	Live func(context.Context) (*Auditor, error)
	// Spot is how many random codes per region are compared with what the
	// live region serves.
	Spot int
	// Keys are the regions' keys the replays check signatures with (nil:
	// none checked).
	Keys     *events.KeyRing
	Out      io.Writer // a PASS or FAIL line per check
	Progress io.Writer
}

// CheckRestore restores the backup into a fresh staging region
// (backup.Stage) and checks it, per region: the number of links, unique
// and valid codes, no empty URL, the restored projection's digest against
// a replay of the restored log up to the sequences the backup recorded
// and, with a live cluster, against a replay of the live log up to the
// same sequences, and o.Spot random codes against what the live region
// serves. The staging region is returned when it was started, also on
// error: the caller closes it. A failed check is not an error: see
// Checks.Passed.
func CheckRestore(ctx context.Context, o RestoreOptions) (Checks, *backup.Staging, error) {
	var res Checks
	out, progress := o.Out, o.Progress
	check := func(name, target, measured string, pass bool) {
		res = append(res, Check{Name: name, Target: target, Measured: measured, Pass: pass})
		v := "PASS"
		if !pass {
			v = "FAIL"
		}
		fmt.Fprintf(out, "%-4s %s: %s (target %s)\n", v, name, measured, target)
	}
	st, err := backup.Stage(ctx, o.Backup, o.Staging, o.Host, progress)
	if err != nil {
		return nil, nil, err
	}
	m := st.Manifest
	check("backup files intact", "every file's size and SHA-256 as in the manifest", fmt.Sprintf("%d files, %s", len(m.Streams)+len(m.Projections), backup.Human(m.Size)), true)
	var msgs uint64
	for _, s := range m.Streams {
		msgs += st.Restored[s.Name].Msgs
	}
	check("streams restored", "each stream's messages and sequences as snapshotted", fmt.Sprintf("%d streams, %d messages into %s", len(m.Streams), msgs, st.URL), true)

	var live *Auditor
	if o.Live != nil {
		if live, err = o.Live(ctx); err != nil {
			return nil, st, err
		}
		defer live.Close()
	}
	sjs, err := replicator.Connect(st.Conn)
	if err != nil {
		return nil, st, err
	}
	// The backup records no digits: both logs are replayed with the
	// default table.
	rules := Rules(nil, o.Keys)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for _, p := range m.Projections {
		store, err := projections.OpenReadOnly(st.Projections[p.Region])
		if err != nil {
			return nil, st, err
		}
		n, dup, invalid, empty, codes, err := scanLinks(store)
		digest, derr := store.Digest()
		store.Close()
		if err = errors.Join(err, derr); err != nil {
			return nil, st, err
		}
		r := p.Region
		check(r+": unique, valid codes", "no code twice, every code valid", fmt.Sprintf("%d links, %d duplicate, %d invalid", n, dup, invalid), dup == 0 && invalid == 0 && n == p.Links)
		check(r+": no empty URL", "0 live links without a URL", fmt.Sprintf("%d", empty), empty == 0)

		// The restored log, up to the backup's sequences.
		var srcs []Source
		for stream, to := range p.Checkpoints {
			origin, _, _ := strings.Cut(stream, "_AT_")
			if _, ok := st.Restored[origin]; !ok {
				return nil, st, fmt.Errorf("%s's projection applied %s, whose origin %s is not in the backup", r, stream, origin)
			}
			if st.Restored[origin].LastSeq < to {
				check(r+": restored log holds what the projection applied", fmt.Sprintf("%s up to #%d", origin, to), fmt.Sprintf("#%d", st.Restored[origin].LastSeq), false)
				continue
			}
			srcs = append(srcs, Source{Stream: stream, Read: origin, To: to})
		}
		sort.Slice(srcs, func(i, j int) bool { return srcs[i].Stream < srcs[j].Stream })
		rs, rr, err := Replay(ctx, sjs, srcs, filepath.Join(o.Staging, "replay", r), ReplayOptions{Rules: rules, Label: "replay of the restored log for " + r, Progress: progress})
		if err != nil {
			return nil, st, err
		}
		rs.Close()
		check(r+": links", "the restored projection's count equals a replay of the restored log", fmt.Sprintf("%d and %d", n, rr.Links), n == rr.Links)
		check(r+": digest against the restored log", "equal", fmt.Sprintf("projection %.12s, replay %.12s (%d events, %.0f/s)", digest, rr.Digest, rr.Stats.Records, rr.Rate), digest == rr.Digest)

		if live == nil {
			continue
		}
		// The live log up to the same sequences: what the region had then.
		lsrcs, err := live.sourcesFor(p.Checkpoints, 0)
		if err != nil {
			return nil, st, fmt.Errorf("live log: %w", err)
		}
		ls, lr, err := Replay(ctx, live.js, lsrcs, filepath.Join(o.Staging, "replay-live", r), ReplayOptions{Rules: rules, Label: "replay of the live log for " + r, Progress: progress})
		if err != nil {
			return nil, st, err
		}
		ls.Close()
		check(r+": digest against the live state at the backup's sequences", "equal", fmt.Sprintf("projection %.12s, live log %.12s (%d links)", digest, lr.Digest, lr.Links), digest == lr.Digest)

		// Random codes against what the live region serves now.
		base, ok := live.endpoints[r]
		if !ok || len(codes) == 0 {
			continue
		}
		picked := min(o.Spot, len(codes))
		bad := []string{}
		for _, i := range rng.Perm(len(codes))[:picked] {
			l := codes[i]
			var got struct {
				URL string `json:"url"`
			}
			status, err := live.api.Get(ctx, base, "/api/v1/links/"+url.PathEscape(l.Code), &got)
			if err != nil || status != 200 || got.URL != l.URL {
				bad = append(bad, fmt.Sprintf("%s: backup %s, live %d %s %v", l.Code, l.URL, status, got.URL, err))
			}
		}
		measured := fmt.Sprintf("%d of %d agree", picked-len(bad), picked)
		if len(bad) > 0 {
			measured += ": " + strings.Join(bad[:min(3, len(bad))], "; ")
		}
		check(r+": random codes against the live region", "every one serves the backed-up URL (links are not changed under this load)", measured, len(bad) == 0)
	}
	return res, st, nil
}

// scanLinks reads every row of a restored projection: how many, codes
// seen twice, invalid codes, live links with an empty URL, and the live
// links (for spot checks).
func scanLinks(s *projections.Store) (n, dup, invalid, empty int, live []events.Link, err error) {
	seen := map[string]bool{}
	err = s.Links(func(l events.Link) error {
		n++
		if seen[l.Code] {
			dup++
		}
		seen[l.Code] = true
		if events.ValidateCode(l.Code) != nil {
			invalid++
		}
		if !l.Deleted {
			if l.URL == "" {
				empty++
			} else {
				live = append(live, l)
			}
		}
		return nil
	})
	slices.SortFunc(live, func(a, b events.Link) int { return strings.Compare(a.Code, b.Code) })
	return
}
