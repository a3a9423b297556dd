package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// pollStop is an error of a poll condition that makes waiting longer
// pointless: the process it waits for exited.
type pollStop struct{ error }

// poll calls cond every interval until it reports true, the timeout
// passes (an error naming what and cond's last error), ctx ends, or cond
// fails with a pollStop.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, max(interval, time.Second))
		ok, err := cond(cctx)
		ccancel()
		if ok {
			return nil
		}
		var stop pollStop
		if errors.As(err, &stop) {
			return stop.error
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not after %s (last error: %v)", what, timeout, last)
			}
			return fmt.Errorf("%s: not after %s", what, timeout)
		case <-t.C:
		}
	}
}

// quantiles returns the q-quantiles of ds (sorted in place), nearest
// rank; zero when ds is empty.
func quantiles(ds []time.Duration, qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	if len(ds) == 0 {
		return out
	}
	slices.Sort(ds)
	for i, q := range qs {
		k := int(q*float64(len(ds)) + 0.999999)
		out[i] = ds[min(len(ds), max(1, k))-1]
	}
	return out
}

// machine describes the machine for the report: CPUs, Go, and the load
// average when the run started (other work on the machine skews results).
func machine(loadavg string) string {
	s := fmt.Sprintf("%d CPUs, %s", runtime.NumCPU(), runtime.Version())
	if loadavg != "" {
		s += ", load average at start " + loadavg
	}
	return s
}

func readLoadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// withTimeout bounds a whole run; its expiry is reported as such rather
// than as whatever wait it happened to interrupt.
func withTimeout(ctx context.Context, d time.Duration, run func(context.Context) error) error {
	ctx, cancel := context.WithTimeoutCause(ctx, d, fmt.Errorf("the run took longer than --timeout %s", d))
	defer cancel()
	err := run(ctx)
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
			return fmt.Errorf("%w: %v", cause, err)
		}
		return fmt.Errorf("interrupted: %w", err)
	}
	return err
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func roundAll(xs []float64, digits int) []string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.*f", digits, x))
	}
	return out
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// check is one target's verdict. A check without samples fails (Pass
// false, Detail saying so): a benchmark never passes on nothing measured.
type check struct {
	Name   string  `json:"name"`
	Pass   bool    `json:"pass"`
	Ratio  float64 `json:"ratio,omitempty"`
	Detail string  `json:"detail"`
}

// allPass reports whether there are checks and all of them passed.
func allPass(cs []check) bool { return len(cs) > 0 && countMissed(cs) == 0 }

func countMissed(cs []check) int {
	n := 0
	for _, c := range cs {
		if !c.Pass {
			n++
		}
	}
	return n
}

// machineInfo is the machine of a results line.
type machineInfo struct {
	NProc   int    `json:"nproc"`
	Model   string `json:"model,omitempty"`
	Go      string `json:"go"`
	LoadAvg string `json:"loadavg,omitempty"` // at the start of the run
}

// gitCommit is the short commit of the working directory's checkout, with
// "-dirty" when tracked files other than results (the results file, which
// every run changes; "" for none) have uncommitted changes; "" outside a
// checkout or without git.
func gitCommit(results string) string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	args := []string{"status", "--porcelain", "--untracked-files=no", "--", ":/"}
	if results != "" {
		if abs, err := filepath.Abs(results); err == nil {
			args = append(args, ":(exclude)"+abs)
		}
	}
	if st, err := exec.Command("git", args...).Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}

// appendJSONLine appends v as one line of JSON to path, making its
// directory if needed: a results file that keeps every run.
func appendJSONLine(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}
