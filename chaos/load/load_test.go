package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type hline struct {
	Seq      int64     `json:"seq"`
	Op       string    `json:"op"`
	Target   string    `json:"target"`
	Intended time.Time `json:"intended"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Status   int       `json:"status"`
	OK       bool      `json:"ok"`
	Code     string    `json:"code"`
	URL      string    `json:"url"`
	Err      string    `json:"err"`
}

func parseHistory(t *testing.T, b []byte) []hline {
	t.Helper()
	var out []hline
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var l hline
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad history line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b hline) int { return int(a.Seq - b.Seq) })
	return out
}

func run(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func checkSeconds(t *testing.T, rep *Report) {
	t.Helper()
	for name, tr := range rep.Targets {
		var sent, ok, failed, missed int64
		for i, s := range tr.Seconds {
			if s.T != i {
				t.Errorf("%s: Seconds[%d].T = %d", name, i, s.T)
			}
			if s.Sent != s.OK+s.Failed {
				t.Errorf("%s: second %d: sent %d != ok %d + failed %d", name, i, s.Sent, s.OK, s.Failed)
			}
			sent += s.Sent
			ok += s.OK
			failed += s.Failed
			missed += s.Missed
		}
		if sent != tr.Sent || ok != tr.OK || failed != tr.Failed || missed != tr.Missed {
			t.Errorf("%s: seconds sum to sent/ok/failed/missed %d/%d/%d/%d, summary %d/%d/%d/%d",
				name, sent, ok, failed, missed, tr.Sent, tr.OK, tr.Failed, tr.Missed)
		}
	}
}

func TestClosedLoopBaseline(t *testing.T) {
	srv := httptest.NewServer(BaselineHandler())
	defer srv.Close()
	var hist bytes.Buffer
	rep := run(t, Config{
		Targets:  []Target{{Name: "base", BaseURL: srv.URL}},
		Duration: 500 * time.Millisecond,
		Workers:  8,
		Codes:    []string{"abc", "def"},
		History:  &hist,
	})
	tot := rep.Total
	if tot.Sent < 100 || tot.OK != tot.Sent || tot.Failed != 0 || tot.Missed != 0 {
		t.Fatalf("sent=%d ok=%d failed=%d missed=%d", tot.Sent, tot.OK, tot.Failed, tot.Missed)
	}
	if tot.ByStatus[301] != tot.Sent || len(tot.ByStatus) != 1 {
		t.Errorf("ByStatus = %v", tot.ByStatus)
	}
	if tot.Throughput <= 0 || rep.SuccessRate() != 1 {
		t.Errorf("throughput %v, success rate %v", tot.Throughput, rep.SuccessRate())
	}
	if tot.P50 <= 0 || tot.P50 > tot.P99 || tot.P99 > tot.Max {
		t.Errorf("quantiles out of order: p50 %v p99 %v max %v", tot.P50, tot.P99, tot.Max)
	}
	if rep.Duration < 500*time.Millisecond || rep.Duration > 2*time.Second {
		t.Errorf("Duration = %v", rep.Duration)
	}
	if rep.Targets["base"].Sent != tot.Sent {
		t.Errorf("target sent %d, total %d", rep.Targets["base"].Sent, tot.Sent)
	}
	checkSeconds(t, rep)
	lines := parseHistory(t, hist.Bytes())
	if int64(len(lines)) != tot.Sent {
		t.Fatalf("history has %d lines, sent %d", len(lines), tot.Sent)
	}
	for _, l := range lines {
		if l.Op != "redirect" || l.Status != 301 || !l.OK || l.URL != "https://example.com/" ||
			(l.Code != "abc" && l.Code != "def") || l.Target != "base" || !l.Intended.Equal(l.Start) || l.End.Before(l.Start) {
			t.Fatalf("bad history line %+v", l)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "base") || !strings.Contains(s, "total") || !strings.Contains(s, "301=") {
		t.Errorf("WriteText:\n%s", s)
	}
	t.Logf("\n%s", out.String())
}

func TestOpenLoopRate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(BaselineHandler())
	defer srv.Close()
	var hist, progress bytes.Buffer
	const rate = 400
	rep := run(t, Config{
		Targets:  []Target{{Name: "a", BaseURL: srv.URL}, {Name: "b", BaseURL: srv.URL + "/"}},
		Rate:     rate,
		Duration: time.Second,
		Workers:  8,
		Codes:    []string{"x"},
		History:  &hist,
		Progress: &progress,
	})
	tot := rep.Total
	if tot.Sent+tot.Missed != rate {
		t.Fatalf("sent %d + missed %d != %d scheduled", tot.Sent, tot.Missed, rate)
	}
	if tot.Sent < rate*9/10 || tot.Sent > rate*11/10 || tot.Missed != 0 {
		t.Fatalf("sent %d missed %d, want about %d", tot.Sent, tot.Missed, rate)
	}
	if a, b := rep.Targets["a"].Sent, rep.Targets["b"].Sent; a != rate/2 || b != rate/2 {
		t.Errorf("round robin split %d/%d", a, b)
	}
	if tot.Throughput < 300 || tot.Throughput > 440 {
		t.Errorf("throughput %v", tot.Throughput)
	}
	checkSeconds(t, rep)
	lines := parseHistory(t, hist.Bytes())
	if len(lines) != rate {
		t.Fatalf("%d history lines", len(lines))
	}
	// Intended times are exactly start + i/rate.
	for i, l := range lines {
		if l.Seq != int64(i) {
			t.Fatalf("seq %d at %d", l.Seq, i)
		}
		want := rep.Start.Add(time.Duration(float64(i) * 1e9 / rate))
		if d := l.Intended.Sub(want); d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("op %d intended %v, want %v", i, l.Intended, want)
		}
		if l.Start.Before(l.Intended) {
			t.Fatalf("op %d started before it was due", i)
		}
		if want := []string{"a", "b"}[i%2]; l.Target != want {
			t.Fatalf("op %d target %s, want %s", i, l.Target, want)
		}
	}
	if !strings.Contains(progress.String(), "ops=") {
		t.Errorf("progress: %q", progress.String())
	}
}

func TestLatencyIsMeasured(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		w.Header().Set("Location", "https://example.com/")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	rep := run(t, Config{
		Targets:  []Target{{Name: "t", BaseURL: srv.URL}},
		Rate:     200,
		Duration: time.Second,
		Workers:  16,
		Codes:    []string{"c"},
	})
	tot := rep.Total
	if tot.Sent != 200 || tot.OK != 200 {
		t.Fatalf("sent %d ok %d", tot.Sent, tot.OK)
	}
	if tot.P99 < 50*time.Millisecond || tot.Max < 50*time.Millisecond {
		t.Errorf("p99 %v max %v, want >= 50ms", tot.P99, tot.Max)
	}
	if tot.P50 > 20*time.Millisecond {
		t.Errorf("p50 %v, want small", tot.P50)
	}
}

func TestStallCountsFromIntendedTime(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	var stallUntil atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 50 {
			stallUntil.Store(time.Now().Add(300 * time.Millisecond).UnixNano())
		}
		if d := time.Until(time.Unix(0, stallUntil.Load())); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("Location", "https://example.com/")
		w.WriteHeader(http.StatusMovedPermanently)
	}))
	defer srv.Close()
	var hist bytes.Buffer
	rep := run(t, Config{
		Targets:  []Target{{Name: "t", BaseURL: srv.URL}},
		Rate:     200,
		Duration: 1200 * time.Millisecond,
		Workers:  4,
		Codes:    []string{"c"},
		History:  &hist,
	})
	tot := rep.Total
	if tot.Sent != 240 || tot.OK != 240 {
		t.Fatalf("sent %d ok %d", tot.Sent, tot.OK)
	}
	if tot.Max < 250*time.Millisecond {
		t.Errorf("max %v, want >= 250ms", tot.Max)
	}
	// About 40 of 240 ops were due in the first 200ms of the stall.
	if tot.P90 < 100*time.Millisecond {
		t.Errorf("p90 %v, want >= 100ms", tot.P90)
	}
	// Most of them were fast once sent: they waited for a worker.
	queued := 0
	for _, l := range parseHistory(t, hist.Bytes()) {
		if l.End.Sub(l.Start) < 20*time.Millisecond && l.End.Sub(l.Intended) >= 100*time.Millisecond {
			queued++
		}
	}
	if queued < 20 {
		t.Errorf("%d fast-but-late ops, want >= 20", queued)
	}
}

func TestCreates(t *testing.T) {
	var mu sync.Mutex
	var gets, badCreates int
	var posted []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/links", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			URL string `json:"url"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		defer mu.Unlock()
		if err != nil || r.Header.Get("X-Api-Key") != "key" || r.Header.Get("Content-Type") != "application/json" ||
			!strings.HasPrefix(body.URL, "https://t.example/x/") || len(body.URL) <= len("https://t.example/x/") {
			badCreates++
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"title":"bad request"}`))
			return
		}
		posted = append(posted, body.URL)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]string{"code": "x1", "short_url": "http://s/x1", "url": body.URL, "region": "r"})
	})
	mux.HandleFunc("GET /{code}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("code") != "x1" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		gets++
		mu.Unlock()
		w.Header().Set("Location", "https://t.example/target")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var hist bytes.Buffer
	rep := run(t, Config{
		Targets:     []Target{{Name: "r", BaseURL: srv.URL}},
		Duration:    300 * time.Millisecond,
		Workers:     4,
		CreateRatio: 0.5,
		APIKey:      "key",
		URLPrefix:   "https://t.example/x/",
		History:     &hist,
		Seed:        1,
	})
	tot := rep.Total
	if tot.Failed != 0 || badCreates != 0 || tot.Sent < 20 {
		t.Fatalf("sent %d failed %d bad creates %d, by status %v", tot.Sent, tot.Failed, badCreates, tot.ByStatus)
	}
	var creates, redirects int
	seen := map[string]bool{}
	for _, l := range parseHistory(t, hist.Bytes()) {
		switch l.Op {
		case "create":
			creates++
			if l.Status != 201 || !l.OK || l.Code != "x1" || !strings.HasPrefix(l.URL, "https://t.example/x/") {
				t.Fatalf("bad create line %+v", l)
			}
			if seen[l.URL] {
				t.Errorf("long URL %s created twice", l.URL)
			}
			seen[l.URL] = true
		case "redirect":
			redirects++
			if l.Status != 307 || !l.OK || l.Code != "x1" || l.URL != "https://t.example/target" {
				t.Fatalf("bad redirect line %+v", l)
			}
		default:
			t.Fatalf("bad op %q", l.Op)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(creates) != tot.ByStatus[201] || creates != len(posted) {
		t.Errorf("creates: history %d, ByStatus %d, server %d", creates, tot.ByStatus[201], len(posted))
	}
	if redirects == 0 || redirects != gets || int64(redirects) != tot.ByStatus[307] {
		t.Errorf("redirects: history %d, server %d, ByStatus %d", redirects, gets, tot.ByStatus[307])
	}
}

func TestFailures(t *testing.T) {
	t.Parallel()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"title":"Internal Server Error","detail":"boom"}`))
	}))
	defer bad.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	defer slow.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String()
	ln.Close()

	var hist bytes.Buffer
	rep := run(t, Config{
		Targets: []Target{
			{Name: "bad", BaseURL: bad.URL},
			{Name: "down", BaseURL: downURL, LocalAddr: "127.0.0.1"},
			{Name: "slow", BaseURL: slow.URL},
		},
		Rate:     300,
		Duration: 500 * time.Millisecond,
		Workers:  64,
		Codes:    []string{"c"},
		Timeout:  100 * time.Millisecond,
		History:  &hist,
	})
	for name, status := range map[string]int{"bad": 500, "down": 0, "slow": 0} {
		tr := rep.Targets[name]
		if tr.Sent != 50 || tr.Failed != 50 || tr.OK != 0 || tr.Missed != 0 || tr.ByStatus[status] != 50 {
			t.Errorf("%s: sent %d failed %d ok %d missed %d by status %v", name, tr.Sent, tr.Failed, tr.OK, tr.Missed, tr.ByStatus)
		}
	}
	if rep.SuccessRate() != 0 || rep.Total.Failed != 150 {
		t.Errorf("success rate %v, failed %d", rep.SuccessRate(), rep.Total.Failed)
	}
	if p := rep.Targets["slow"].P50; p < 100*time.Millisecond || p > time.Second {
		t.Errorf("slow p50 %v, want about the 100ms timeout", p)
	}
	wantErr := map[string]string{"bad": "Internal Server Error: boom", "down": "connection refused", "slow": "timeout"}
	for _, l := range parseHistory(t, hist.Bytes()) {
		if l.OK || l.Err != wantErr[l.Target] {
			t.Fatalf("bad line %+v", l)
		}
	}
}

func TestLocalAddr(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	hosts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		hosts[host]++
		mu.Unlock()
		w.Header().Set("Location", "https://example.com/")
		w.WriteHeader(http.StatusPermanentRedirect)
	}))
	defer srv.Close()
	rep := run(t, Config{
		Targets:  []Target{{Name: "t", BaseURL: srv.URL, LocalAddr: "127.0.0.2"}},
		Rate:     100,
		Duration: 200 * time.Millisecond,
		Workers:  2,
		Codes:    []string{"c"},
	})
	mu.Lock()
	defer mu.Unlock()
	if rep.Total.OK != 20 || hosts["127.0.0.2"] != 20 || len(hosts) != 1 {
		t.Fatalf("ok %d, requests by source %v", rep.Total.OK, hosts)
	}
}

func opSequence(t *testing.T, url string, seed int64) []string {
	t.Helper()
	var hist bytes.Buffer
	rep := run(t, Config{
		Targets:     []Target{{Name: "a", BaseURL: url}, {Name: "b", BaseURL: url}},
		Rate:        500,
		Duration:    300 * time.Millisecond,
		Workers:     8,
		Codes:       []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"},
		CreateRatio: 0.3,
		APIKey:      "k",
		Seed:        seed,
		History:     &hist,
	})
	if rep.Total.Sent != 150 {
		t.Fatalf("sent %d", rep.Total.Sent)
	}
	var seq []string
	for i, l := range parseHistory(t, hist.Bytes()) {
		if l.Seq != int64(i) {
			t.Fatalf("missing seq %d", i)
		}
		s := l.Op + "/" + l.Target + "/" + l.Code
		if l.Op == "create" {
			s = l.Op + "/" + l.Target + "/" + l.URL
		}
		seq = append(seq, s)
	}
	return seq
}

func TestSeedReproducible(t *testing.T) {
	t.Parallel()
	// Creates fail, so no created code joins the pools and the sequence is
	// fully determined by the seed.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Location", "https://example.com/")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	a := opSequence(t, srv.URL, 42)
	b := opSequence(t, srv.URL, 42)
	c := opSequence(t, srv.URL, 43)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different sequences:\n%v\n%v", a, b)
	}
	diff := 0
	for i := range a {
		if a[i] != c[i] {
			diff++
		}
	}
	if diff < len(a)/2 {
		t.Errorf("seeds 42 and 43 differ in only %d of %d ops", diff, len(a))
	}
	creates := 0
	for _, s := range a {
		if strings.HasPrefix(s, "create/") {
			creates++
		}
	}
	if creates < 20 || creates > 70 {
		t.Errorf("%d creates of 150 at ratio 0.3", creates)
	}
}

func TestGenerator(t *testing.T) {
	g := newGenerator(7, 0.25, 3, []string{"a", "b", "c", "d"}, nil)
	counts := map[string]int{}
	creates := 0
	const n = 40000
	for i := range n {
		o := g.next()
		if o.seq != int64(i) || o.target != int32(i%3) {
			t.Fatalf("op %d: seq %d target %d", i, o.seq, o.target)
		}
		if o.kind == opCreate {
			creates++
		} else {
			counts[o.code]++
		}
	}
	if f := float64(creates) / n; f < 0.24 || f > 0.26 {
		t.Errorf("create share %v", f)
	}
	for _, c := range []string{"a", "b", "c", "d"} {
		if f := float64(counts[c]) / float64(n-creates); f < 0.23 || f > 0.27 {
			t.Errorf("code %s share %v", c, f)
		}
	}
	// An empty pool turns redirects into creates until a code arrives.
	ch := make(chan createdCode, 1)
	g = newGenerator(1, 0, 1, nil, ch)
	if o := g.next(); o.kind != opCreate {
		t.Fatalf("empty pool gave %v", o.kind)
	}
	ch <- createdCode{code: "new"}
	if o := g.next(); o.kind != opRedirect || o.code != "new" {
		t.Fatalf("got %v %q", o.kind, o.code)
	}
}

func TestHistogramAccuracy(t *testing.T) {
	// 3M samples with known exact quantiles: i*997ns for i in 1..n.
	const n = 3_000_000
	h := newHistogram()
	for i := int64(1); i <= n; i++ {
		h.record(i * 997)
	}
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := int64(math.Ceil(q*n)) * 997
		if rel := math.Abs(float64(h.quantile(q)-exact)) / float64(exact); rel > 0.01 {
			t.Errorf("q%v: got %d, exact %d (rel err %.4f)", q, h.quantile(q), exact, rel)
		}
	}
	if h.quantile(1) != n*997 || h.max != n*997 {
		t.Errorf("max %d", h.max)
	}
	// Log-normal samples around 1ms, spanning ns to seconds.
	rng := rand.New(rand.NewPCG(1, 2))
	ln := newHistogram()
	vals := make([]int64, 200_000)
	for i := range vals {
		vals[i] = int64(math.Exp(rng.NormFloat64()*2.5 + math.Log(1e6)))
		ln.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := ln.quantile(q)
		if d := math.Abs(float64(got - exact)); d > 1 && d/float64(exact) > 0.01 {
			t.Errorf("log-normal q%v: got %d, exact %d", q, got, exact)
		}
	}
	// merge and reset keep counts consistent.
	h2 := newHistogram()
	h2.merge(h)
	h2.merge(h)
	if h2.n != 2*n || h2.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merge: n %d p50 %d vs %d", h2.n, h2.quantile(0.5), h.quantile(0.5))
	}
	h2.reset()
	if h2.n != 0 || h2.quantile(0.5) != 0 || slices.ContainsFunc(h2.counts, func(c uint64) bool { return c != 0 }) {
		t.Error("reset left counts")
	}
	// Every value maps to a bucket whose midpoint is within 0.4%.
	for v := int64(0); v < 1<<22; v += 1 + v/1000 {
		m := bucketValue(bucketOf(v))
		if math.Abs(float64(m-v)) > float64(v)/256+1 {
			t.Fatalf("value %d -> %d", v, m)
		}
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(BaselineHandler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var progress syncBuffer
	progress.onWrite = cancel // cancel after the first progress line
	rep, err := Run(ctx, Config{
		Targets:  []Target{{BaseURL: srv.URL}},
		Rate:     100,
		Duration: time.Minute,
		Codes:    []string{"c"},
		Progress: &progress,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if rep == nil || rep.Total.Sent < 90 || rep.Total.Sent > 150 || rep.Targets[srv.URL] == nil {
		t.Fatalf("report %+v", rep)
	}
	if rep.Duration > 10*time.Second {
		t.Errorf("cancelled run lasted %v", rep.Duration)
	}
}

type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onWrite func()
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onWrite != nil {
		b.onWrite()
	}
	return b.buf.Write(p)
}

func TestConfigErrors(t *testing.T) {
	good := Config{Targets: []Target{{BaseURL: "http://127.0.0.1:1"}}, Duration: time.Second, Codes: []string{"c"}}
	for name, mod := range map[string]func(*Config){
		"no targets":  func(c *Config) { c.Targets = nil },
		"no duration": func(c *Config) { c.Duration = 0 },
		"neg rate":    func(c *Config) { c.Rate = -1 },
		"ratio":       func(c *Config) { c.CreateRatio = 1.5 },
		"nothing":     func(c *Config) { c.Codes = nil },
		"scheme":      func(c *Config) { c.Targets = []Target{{BaseURL: "ftp://x"}} },
		"local addr":  func(c *Config) { c.Targets = []Target{{BaseURL: "http://x", LocalAddr: "nope"}} },
		"dup names": func(c *Config) {
			c.Targets = []Target{{Name: "a", BaseURL: "http://x"}, {Name: "a", BaseURL: "http://y"}}
		},
	} {
		c := good
		mod(&c)
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestPeakBaseline measures closed-loop peak throughput against
// BaselineHandler; set LOAD_PEAK=1 to run it. LOAD_PEAK_URL points it at an
// out-of-process server instead.
func TestPeakBaseline(t *testing.T) {
	if os.Getenv("LOAD_PEAK") == "" {
		t.Skip("set LOAD_PEAK=1 to measure peak throughput")
	}
	url := os.Getenv("LOAD_PEAK_URL")
	if url == "" {
		srv := httptest.NewServer(BaselineHandler())
		defer srv.Close()
		url = srv.URL
	}
	rep := run(t, Config{
		Targets:  []Target{{Name: "baseline", BaseURL: url}},
		Duration: 3 * time.Second,
		Workers:  64,
		Codes:    []string{"abc"},
	})
	var out bytes.Buffer
	rep.WriteText(&out)
	t.Logf("\n%s", out.String())
	if rep.Total.Failed != 0 {
		t.Errorf("%d failures", rep.Total.Failed)
	}
}
