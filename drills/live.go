package drills

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

// liveCounter passes the load history through to its file and counts the
// operations and failures of every client as they are written, for the
// abort condition and the error budget.
type liveCounter struct {
	w       io.Writer
	mu      sync.Mutex
	partial []byte
	ops     map[string]int64
	failed  map[string]int64
}

func newLiveCounter(w io.Writer) *liveCounter {
	return &liveCounter{w: w, ops: map[string]int64{}, failed: map[string]int64{}}
}

func (l *liveCounter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p[:n]...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var line struct {
			Kind   string `json:"kind"`
			Op     string `json:"op"`
			Target string `json:"target"`
			OK     bool   `json:"ok"`
			Cut    bool   `json:"cut"` // cut off when the load stopped: not the service's
		}
		if json.Unmarshal(l.partial[:i], &line) == nil && (line.Kind == "" || line.Kind == "op") && line.Op != "" && !line.Cut {
			l.ops[line.Target]++
			if !line.OK {
				l.failed[line.Target]++
			}
		}
		l.partial = l.partial[i+1:]
	}
	return n, err
}

// healthy returns the operations and failures of every client but
// victim's.
func (l *liveCounter) healthy(victim string) (ops, failed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, n := range l.ops {
		if t != victim {
			ops += n
			failed += l.failed[t]
		}
	}
	return ops, failed
}

func (l *liveCounter) budget(o Options, victimAny any) ErrorBudget {
	victim, _ := victimAny.(string)
	ops, failed := l.healthy(victim)
	b := ErrorBudget{SLO: o.SLO, Ops: ops, Failures: failed, Allowed: float64(ops) * (1 - o.SLO)}
	if b.Allowed > 0 {
		b.SpentPct = 100 * float64(failed) / b.Allowed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b.Victim = victim
	b.VictimOps, b.VictimFailures = l.ops[victim], l.failed[victim]
	return b
}
