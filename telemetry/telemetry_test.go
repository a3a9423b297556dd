package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The /metrics handler of a region's telemetry serves the Go runtime's and
// the process's metrics, with tracing off unless an endpoint is given.
func TestMetricsHandler(t *testing.T) {
	tel, err := New(context.Background(), "us-east", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if tel.Tracer != nil {
		t.Error("tracing on without an OTLP endpoint")
	}
	rec := httptest.NewRecorder()
	tel.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"process_cpu_seconds_total", "go_goroutine"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Bad settings are ErrOption (a usage error), and change nothing.
func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, "us-east", "http://127.0.0.1:4318", 1.5); !errors.Is(err, ErrOption) {
		t.Errorf("sample 1.5: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, limit := range []string{"lots", "-1GiB", "0MiB", "1.5GiB"} {
		if err := TuneGC(limit, log); !errors.Is(err, ErrOption) {
			t.Errorf("--memory-limit %q: %v", limit, err)
		}
	}
	if _, err := StartExecTrace(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("a trace into a missing directory started")
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512MiB": 512 << 20, "1GiB": 1 << 30, "4KiB": 4096, "100B": 100, "1073741824": 1 << 30} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// A trace started is written, whole, at stop.
func TestExecTraceIsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.trace")
	stop, err := StartExecTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("trace file: %v, %v", fi, err)
	}
}

// An allocation profile started is written at stop, and holds the
// allocations made meanwhile.
func TestAllocProfileIsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.allocs")
	stop, err := StartAllocProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep [][]byte
	for range 1000 {
		keep = append(keep, make([]byte, 4096))
	}
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || len(keep) == 0 {
		t.Fatalf("allocation profile: %v, %v", fi, err)
	}
	if _, err := StartAllocProfile(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Error("a profile into a missing directory started")
	}
}
