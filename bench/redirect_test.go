package bench

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBusyShareSynthetic: the busy share of a CPU from two /proc/stat
// texts, guest time left out (already in user), and what is refused.
func TestBusyShareSynthetic(t *testing.T) {
	before := "cpu  1000 0 500 9000 10 0 5 0 0 0\n" +
		"cpu0 100 0 50 800 50 0 0 0 10 0\n" +
		"cpu1 900 0 450 8200 0 0 5 0 0 0\n" +
		"intr 1 2 3\nctxt 42\n"
	// cpu0: 190 user + 50 system + 10 idle + 0 iowait = 250 ticks, 240 busy;
	// cpu1: 50 user + 200 idle = 250 ticks, 50 busy.
	after := "cpu  1240 0 550 9210 10 0 5 0 0 0\n" +
		"cpu0 290 0 100 810 50 0 0 0 500 0\n" +
		"cpu1 950 0 450 8400 0 0 5 0 0 0\n"
	b, err := parseProcStat(before)
	if err != nil {
		t.Fatal(err)
	}
	a, err := parseProcStat(after)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 {
		t.Fatalf("%d CPUs, want 2 (the aggregate line is not one): %v", len(a), a)
	}
	for cpu, want := range map[int]float64{0: 0.96, 1: 0.2} {
		got, irq, err := busyShare(b[cpu], a[cpu])
		if err != nil || got < want-1e-9 || got > want+1e-9 || irq != 0 {
			t.Errorf("cpu%d: busy %v, interrupts %v, %v; want %v, 0", cpu, got, irq, err, want)
		}
	}
	// Interrupts: 10 irq + 40 softirq ticks of 250.
	withIRQ, err := parseProcStat("cpu0 240 0 100 810 50 10 40 0 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if busy, irq, err := busyShare(b[0], withIRQ[0]); err != nil || busy != 0.96 || irq != 0.2 {
		t.Errorf("with interrupts: busy %v, interrupts %v, %v; want 0.96, 0.2", busy, irq, err)
	}
	for _, c := range []struct {
		r    busyRound
		want bool
	}{
		{busyRound{Core: 0.99, IRQ: 0.19, Server: 0.95, Demand: 1.03}, true},  // others 4%
		{busyRound{Core: 0.99, IRQ: 0.19, Server: 0.93, Demand: 1.03}, false}, // others 6%
		{busyRound{Core: 0.96, IRQ: 0.01, Server: 0.5, Demand: 0.99}, false},  // a neighbour took 45% of the core: contended
		{busyRound{Core: 0.94, IRQ: 0, Server: 0.94, Demand: 0.99}, false},    // client-limited
		{busyRound{Core: 1, IRQ: 0, Server: 0.4, Demand: 0.6}, false},         // the core busy with others, the server waiting for requests
		{busyRound{Core: 0.99, IRQ: 0.02, Server: 0.95, Demand: -1}, true},    // no schedstat: the core alone
		{busyRound{Core: -1, IRQ: -1, Server: 0.5, Demand: 0.97}, true},       // unpinned: nothing tells a neighbour
		{busyRound{Core: -1, IRQ: -1, Server: 0.97, Demand: -1}, true},
		{busyRound{Core: -1, IRQ: -1, Server: 0.9, Demand: -1}, false},
	} {
		if got := c.r.counts(); got != c.want {
			t.Errorf("%+v counts: %v, want %v", c.r, got, c.want)
		}
	}
	// Demand: a thread's run + wait ns over the wall time; a new thread
	// counts from 0.
	dBefore := map[string]uint64{"1": 1e9, "2": 5e8}
	dAfter := map[string]uint64{"1": 2.9e9, "2": 5e8, "3": 1e8}
	if d := demandShare(dBefore, dAfter, 2); d < 0.999999 || d > 1.000001 {
		t.Errorf("demand %v, want 1", d)
	}
	if d := demandShare(nil, dAfter, 2); d != -1 {
		t.Errorf("demand without a first sample %v, want -1", d)
	}
	if v, err := parseSchedstat("4252560 10148037 3\n"); err != nil || v != 4252560+10148037 {
		t.Errorf("parseSchedstat: %d, %v", v, err)
	}
	if _, err := parseSchedstat("12\n"); err == nil {
		t.Errorf("parseSchedstat of one field: no error")
	}
	if _, _, err := busyShare(b[0], b[0]); err == nil {
		t.Errorf("no time passed: no error")
	}
	if _, _, err := busyShare(a[0], b[0]); err == nil {
		t.Errorf("counters went back: no error")
	}
	for _, bad := range []string{"", "intr 1 2\n", "cpu0 1 2 x 4\n", "cpu0 1 2\n", "cpuX 1 2 3 4\n"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	// The server's CPU time: utime and stime, after a command name that
	// holds spaces and parentheses.
	stat := "4242 (shortener (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 1000 0 0"
	if got, err := parseProcessCPU(stat); err != nil || got != 1234+567 {
		t.Errorf("parseProcessCPU: %d, %v; want 1801", got, err)
	}
	if _, err := parseProcessCPU("4242 (x) S 1 2"); err == nil {
		t.Errorf("short /proc/<pid>/stat: no error")
	}
	p := busyProbe{cpu: 0}
	r, err := p.measure(busySample{cpu: b[0], process: 100}, busySample{cpu: a[0], process: 290}, 2)
	if err != nil || r.Core != 0.96 || r.IRQ != 0 || r.Server != 0.95 || r.Demand != -1 || !r.counts() {
		t.Errorf("measure: %+v, %v; want core 0.96, no interrupts, server 0.95, no demand: counted", r, err)
	}
	if c, l := (busyRound{Core: 1, Server: 0.5, Demand: 1}), (busyRound{Core: 0.5, Server: 0.5, Demand: 0.5}); notCounted(c) != "contended" || notCounted(l) != "client-limited" {
		t.Errorf("not counted: %+v %s, %+v %s", c, notCounted(c), l, notCounted(l))
	}
}

// TestBusyShareReal: this machine's own /proc/stat and /proc/self/stat
// parse, and two samples some work apart give a share in [0, 1].
func TestBusyShareReal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := parseProcStat(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < runtime.NumCPU() {
		t.Fatalf("%d CPUs in /proc/stat, fewer than the %d this process may use", len(cpus), runtime.NumCPU())
	}
	probe := busyProbe{cpu: 0, pid: os.Getpid()}
	before, err := probe.sample()
	if err != nil {
		t.Fatal(err)
	}
	// Work until both clocks moved (they count in 10 ms ticks).
	start := time.Now()
	var after busySample
	for x := 0; ; x++ {
		if x%100000 == 0 {
			if after, err = probe.sample(); err != nil {
				t.Fatal(err)
			}
			if after.cpu.total > before.cpu.total && after.process > before.process {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("/proc did not move in a minute of work: %+v then %+v", before, after)
			}
		}
	}
	r, err := probe.measure(before, after, time.Since(start).Seconds())
	if err != nil {
		t.Fatal(err)
	}
	if r.Core < 0 || r.Core > 1 || r.Server <= 0 {
		t.Fatalf("busy %+v: want a core share in [0, 1] and some server time", r)
	}
	// This test's own threads wanted a CPU while it worked (when the kernel
	// keeps schedstat): some demand.
	if _, err := os.Stat("/proc/self/schedstat"); err == nil && r.Demand <= 0 {
		t.Fatalf("busy %+v: no demand while working", r)
	}
}

// TestRedirectVerdictsWithoutSamples: no results, or results without a
// counted peak round or a round at a verdict rate, fail every target they
// touch; the same results with samples pass.
func TestRedirectVerdictsWithoutSamples(t *testing.T) {
	rates := []float64{10000, 20000}
	for _, c := range redirectVerdicts(nil, rates) {
		if c.Pass || !strings.Contains(c.Detail, "no samples") {
			t.Errorf("no results: %+v", c)
		}
	}
	if allPass(nil) {
		t.Errorf("no checks pass")
	}
	server := func(name string, peak, p99 float64, counted bool) *serverResult {
		s := &serverResult{Name: name, Peak: []peakRound{{RPS: peak, Success: 1, busyRound: busyRound{Core: 0.99, Server: 0.99}, Counted: counted}}}
		for _, r := range rates {
			s.Fixed = append(s.Fixed, fixedPoint{Rate: r, Rounds: []fixedRound{{P50: p99 / 10, P99: p99, P999: 2 * p99, Success: 1}}})
		}
		s.summarize()
		return s
	}
	good := []*serverResult{server("bare", 40000, 2, true), server("region", 38000, 2.5, true), server("clicks off", 39000, 2.4, true)}
	cs := redirectVerdicts(good, rates)
	if len(cs) != 6 || !allPass(cs) {
		t.Fatalf("results within every target: %+v", cs)
	}
	// Every peak round client-limited: the peak targets have no samples.
	limited := []*serverResult{server("bare", 40000, 2, false), good[1], good[2]}
	for _, c := range redirectVerdicts(limited, rates) {
		if strings.HasPrefix(c.Name, "peak: region") && (c.Pass || !strings.Contains(c.Detail, "no samples")) {
			t.Errorf("bare server client-limited: %+v", c)
		}
	}
	// No fixed-rate rounds: the p99 targets have no samples.
	noFixed := server("region", 38000, 2.5, true)
	noFixed.Fixed = nil
	for _, c := range redirectVerdicts([]*serverResult{good[0], noFixed, good[2]}, rates) {
		if strings.HasPrefix(c.Name, "p99") && (c.Pass || !strings.Contains(c.Detail, "no samples")) {
			t.Errorf("no fixed-rate rounds: %+v", c)
		}
	}
	// A region that answered 90% at a rate fails that rate's p99 targets.
	dropped := server("region", 38000, 2.5, true)
	dropped.Fixed[1].Rounds[0].Success = 0.9
	dropped.summarize()
	if c := redirectVerdicts([]*serverResult{good[0], dropped, good[2]}, rates)[2]; c.Pass || !strings.Contains(c.Detail, "answered only 90.00%") {
		t.Errorf("90%% answered at 20000/s: %+v", c)
	}
}

// TestResultsLine: a run appended twice to a results file (its directory
// made) reads back as two lines, each the run.
func TestResultsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench-results", "redirect.jsonl")
	run := redirectRun{Date: "2026-12-07T07:00:00Z", Commit: "abc1234", Machine: machineInfo{NProc: 2, Model: "AMD EPYC", Go: "go1.26.8"},
		Options: redirectOptionsJSON(redirectOK(func(*RedirectOptions) {})), Pinned: true,
		Servers: []*serverResult{{Name: "bare net/http 301", PeakRPS: 40000, PeakCounted: 1,
			Peak:  []peakRound{{RPS: 40000, Success: 1, busyRound: busyRound{Core: 0.99, Server: 0.98}, Counted: true}},
			Fixed: []fixedPoint{{Rate: 10000, P99: 1.5, Success: 1, Rounds: []fixedRound{{P99: 1.5, Success: 1}}}}}},
		Verdicts: []check{{Name: "peak", Detail: "no samples"}}}
	for i := 0; i < 2; i++ {
		if err := appendJSONLine(path, run); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var got redirectRun
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		s := got.Servers[0]
		if got.Commit != "abc1234" || got.Machine.NProc != 2 || !got.Pinned || got.Options["rounds"] != 2.0 ||
			s.Peak[0].Core != 0.99 || !s.Peak[0].Counted || s.Fixed[0].Rounds[0].P99 != 1.5 || got.Verdicts[0].Detail != "no samples" {
			t.Fatalf("line %d reads back as %+v", n, got)
		}
	}
	if n != 2 {
		t.Fatalf("%d lines, want 2", n)
	}
}
