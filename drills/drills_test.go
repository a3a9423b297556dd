package drills

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"shortener/chaos/load"
)

func TestParseCacheCounters(t *testing.T) {
	text := `# HELP shortener_cache_lookups_total Redirect lookups
# TYPE shortener_cache_lookups_total counter
shortener_cache_lookups_total{otel_scope_name="x",region="us-east",result="hit"} 90
shortener_cache_lookups_total{otel_scope_name="x",region="us-east",result="miss"} 10
shortener_cache_entries{region="us-east"} 5
`
	h, m, err := parseCacheCounters(strings.NewReader(text))
	if err != nil || h != 90 || m != 10 {
		t.Fatalf("got %v %v %v; want 90 10 nil", h, m, err)
	}
	if _, _, err := parseCacheCounters(strings.NewReader("up 1\n")); err == nil {
		t.Fatal("no counters: want an error")
	}
}

func TestLiveCounterSplitsLines(t *testing.T) {
	var sink strings.Builder
	l := newLiveCounter(&sink)
	data := `{"kind":"op","op":"redirect","target":"a","ok":true}
{"kind":"op","op":"redirect","target":"b","ok":false}
{"kind":"regions","region":"a"}
{"kind":"op","op":"create","target":"a","ok":false}
`
	for i := 0; i < len(data); i += 7 { // lines split across writes
		_, _ = l.Write([]byte(data[i:min(i+7, len(data))]))
	}
	if ops, failed := l.healthy(""); ops != 3 || failed != 2 {
		t.Fatalf("all: %d ops %d failed; want 3, 2", ops, failed)
	}
	if ops, failed := l.healthy("b"); ops != 2 || failed != 1 {
		t.Fatalf("without b: %d ops %d failed; want 2, 1", ops, failed)
	}
	if sink.String() != data {
		t.Fatal("the history was not passed through whole")
	}
}

// A service whose redirects fail burns the budget: the drill aborts, its
// method is cancelled, and the rollback still runs.
func TestAbortRunsRollback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"code":"abc123"}`))
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := &Cluster{Regions: []Region{{Name: "r1", URL: srv.URL}}}
	var rolledBack, methodCancelled atomic.Bool
	d := &Drill{
		Name: "t", Title: "test", Hypothesis: "always",
		Steady: func(context.Context, *Run) error { return nil },
		Load: func(o Options) load.Config {
			return load.Config{Rate: 200, CreateRatio: 0.1, Duration: time.Minute, Workers: 4, RegionsInterval: -1}
		},
		Method: func(ctx context.Context, r *Run) error {
			select {
			case <-ctx.Done():
				methodCancelled.Store(true)
				return ctx.Err()
			case <-time.After(30 * time.Second):
				return nil
			}
		},
		Rollback: func(context.Context, *Run) error { rolledBack.Store(true); return nil },
		Judge:    func(_ context.Context, r *Run) error { r.Check("x", "y", "z", true); return nil },
	}
	o := Options{ReportDir: t.TempDir()}
	o.defaults(c)
	start := time.Now()
	res := runOne(context.Background(), c, d, o)
	if res.Status != "aborted" || !strings.Contains(res.Aborted, "error budget") {
		t.Fatalf("status %q, aborted %q; want aborted for the error budget", res.Status, res.Aborted)
	}
	if !methodCancelled.Load() || !rolledBack.Load() {
		t.Fatalf("method cancelled %t, rolled back %t; want both", methodCancelled.Load(), rolledBack.Load())
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("the abort took %s", time.Since(start))
	}
	rep := &Report{Drills: []*DrillResult{res}, SLO: o.SLO}
	rep.summarize()
	if rep.Passed {
		t.Fatal("a report with an aborted drill passed")
	}
	if _, _, err := rep.Write(o.ReportDir); err != nil {
		t.Fatal(err)
	}
}
