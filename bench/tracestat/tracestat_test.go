package tracestat

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime/trace"
	"strings"
	"testing"
	"time"
)

// spin runs on the CPU for about d without a break: a stall of d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// A real trace of a real HTTP server and one goroutine that runs 20 ms
// without a break (the scheduler may cut it, at 10 ms or for a GC pause,
// into slices that still add up): the summary names both.
func TestSummarizeFindsTheStall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMovedPermanently)
	}))
	defer srv.Close()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); spin(20 * time.Millisecond) }()
	for range 20 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	<-done
	trace.Stop()

	s, err := Summarize(bytes.NewReader(buf.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var spun time.Duration
	for _, l := range s.Long {
		if strings.Contains(l.Root, "TestSummarizeFindsTheStall") {
			spun += l.Sum
		}
	}
	if spun < 15*time.Millisecond {
		t.Errorf("the 20 ms spin is not among the long slices (%v found): %+v", spun, s.Long)
	}
	if s.Wait.N == 0 {
		t.Errorf("no request goroutine was seen waiting to run")
	}
	var sec time.Duration
	for _, d := range s.Seconds {
		sec += d
	}
	if sec <= 0 || s.Ran <= 0 {
		t.Errorf("request goroutines ran %v, all goroutines %v", sec, s.Ran)
	}
	var out bytes.Buffer
	s.WriteText(&out, 5)
	if !strings.Contains(out.String(), "net/http.(*conn).serve") {
		t.Errorf("the report does not name the request goroutines:\n%s", out.String())
	}
}

// Nothing, garbage, and a window outside the trace are errors, never an
// empty summary.
func TestSummarizeRefuses(t *testing.T) {
	if _, err := Summarize(strings.NewReader(""), Options{}); err == nil {
		t.Error("an empty input was summarised")
	}
	if _, err := Summarize(strings.NewReader("go 1.26 trace\x00\x00\x00garbage"), Options{}); err == nil {
		t.Error("garbage was summarised")
	}
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	spin(time.Millisecond)
	trace.Stop()
	if _, err := Summarize(bytes.NewReader(buf.Bytes()), Options{From: time.Hour}); err == nil {
		t.Error("a window past the trace's end was summarised")
	}
}
