package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
)

// TuneGC optionally turns the collector off until the heap nears a limit.
// It is off by default: measured at 20k redirects/s on one core
// (docs/benchmarks.md), it removes the GC from short windows but the cycles
// at the limit stall for about 100 ms, so over 30 s windows the p99 was
// worse than with Go's defaults. $GOGC or $GOMEMLIMIT, when set, win.
func TuneGC(limit string, log *slog.Logger) error {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" || limit == "0" || limit == "" {
		log.Info("gc: Go settings kept", "GOGC", os.Getenv("GOGC"), "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
		return nil
	}
	n, err := ParseBytes(limit)
	if err != nil {
		return fmt.Errorf("%w: --memory-limit %q: %v", ErrOption, limit, err)
	}
	debug.SetMemoryLimit(n)
	debug.SetGCPercent(-1)
	log.Info("gc: GOGC=off with a memory limit", "limit", limit)
	return nil
}

// ParseBytes reads sizes like 512MiB, 1GiB or 1073741824.
func ParseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(num, 10, 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("want a positive size like 512MiB or 1GiB")
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("want a positive size like 512MiB or 1GiB")
}

// StartCPUProfile profiles the process into path until the returned stop.
func StartCPUProfile(path string) (stop func(), err error) {
	return startRecording(path, "--cpu-profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// StartExecTrace traces the process's execution into path until the
// returned stop.
func StartExecTrace(path string) (stop func(), err error) {
	return startRecording(path, "--exec-trace", trace.Start, trace.Stop)
}

// StartAllocProfile writes the allocations the process made (the heap
// profile's alloc_space and alloc_objects, sampled at Go's default rate)
// into path at the returned stop: what the garbage collector has to
// collect.
func StartAllocProfile(path string) (stop func(), err error) {
	var f *os.File
	write := func() {
		runtime.GC() // the profile counts allocations up to the last collection
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return startRecording(path, "--alloc-profile", func(w io.Writer) error { f = w.(*os.File); return nil }, write)
}

// startRecording starts a recording of the process (a profile, a trace)
// into path; the returned stop ends it and closes the file.
func startRecording(path, flag string, start func(io.Writer) error, end func()) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return func() {
		end()
		f.Close()
	}, nil
}
