package procs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSupervisor runs a dev cluster of stand-in processes (this test
// binary, serving each region's /readyz and the switch's /v1/state) and
// drives it over the control socket as region-down, region-up, region-stop
// and chaos do.
func TestSupervisor(t *testing.T) {
	t.Setenv("PROCS_TEST_CHILD", "serve")
	dir, err := os.MkdirTemp("", "procs") // short: a unix socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	topo := TopologyOn(fmt.Sprintf("127.%d", 64+rand.IntN(180)), "short.test", 3)
	ready := make(chan struct{})
	out := &syncBuffer{}
	sv := NewSupervisor(Options{Dir: dir, Bin: os.Args[0], Key: "sk_test", Topology: topo, Fsync: "always", Durability: "local",
		Prefer: map[string][]string{"us-east": {"eu-west", "nowhere"}}, Out: out, Ready: ready})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sv.Run(ctx) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, out)
	case <-time.After(2 * time.Minute):
		t.Fatalf("not ready in 2 minutes:\n%s", out)
	}
	if !strings.Contains(out.String(), "Ctrl-C stops the cluster.") {
		t.Fatalf("no table:\n%s", out)
	}

	// Each process got the command line of its config.
	var args []string
	readJSON(t, filepath.Join(dir, "us-east", "args.json"), &args)
	want := RegionConfig{Name: "us-east", Digit: '1', HTTP: topo.Regions[0].Host + ":8080", Data: filepath.Join(dir, "us-east"),
		Fsync: "always", Durability: "local", SwitchAdmin: topo.SwitchAdmin, Secrets: SecretsDir(dir), Peers: topo.Regions, LimitExempt: []string{DevClients}}.Args()
	if !slices.Equal(args, want) {
		t.Fatalf("us-east's command line:\n got %q\nwant %q", args, want)
	}
	readJSON(t, filepath.Join(dir, "switch", "args.json"), &args)
	if s := strings.Join(args, " "); !strings.Contains(s, "--prefer us-east=eu-west ") || !strings.Contains(s, "--region ap-south="+topo.Regions[2].Host) {
		t.Fatalf("switch's command line: %s", s)
	}
	if _, err := LoadTopology(dir); err != nil {
		t.Fatal(err)
	}

	running := func() map[string]bool {
		var ps []ProcInfo
		if err := Call(ctx, dir, http.MethodGet, "/procs", &ps); err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, p := range ps {
			m[p.Name] = p.Running
		}
		return m
	}
	down, err := Control(ctx, dir, "/down/us-east")
	if err != nil {
		t.Fatal(err)
	}
	if r := running(); r["us-east"] || !r["eu-west"] || !r["ap-south"] {
		t.Fatalf("after down us-east: %v", r)
	}
	if _, err := Control(ctx, dir, "/down/us-east"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("down of a killed region: %v, want not running", err)
	}
	for _, path := range []string{"/down/switch", "/down/nowhere", "/up/switch", "/up/eu-west"} {
		if _, err := Control(ctx, dir, path); err == nil {
			t.Errorf("%s: no error", path)
		}
	}
	up, err := Control(ctx, dir, "/up/us-east")
	if err != nil || !up.Running || up.PID == down.PID {
		t.Fatalf("up: %+v %v", up, err)
	}
	if err := WaitHTTP(ctx, "http://"+topo.Regions[0].Host+":8080/readyz", nil, time.Minute, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	st, err := Control(ctx, dir, "/stop/eu-west")
	if err != nil || st.Forced || st.Exited.Before(st.At) {
		t.Fatalf("stop: %+v %v", st, err)
	}
	if _, err := Control(ctx, dir, "/reset-projection/eu-west"); err == nil || !strings.Contains(err.Error(), "no projection") {
		t.Fatalf("reset of a region without a projection: %v", err)
	}
	for _, path := range []string{"/pause/ap-south", "/resume/ap-south"} {
		if _, err := Control(ctx, dir, path); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if r := running(); !r["us-east"] || r["eu-west"] || !r["ap-south"] {
		t.Fatalf("after up us-east, stop eu-west: %v", r)
	}
	d, u, err := LastOutage(dir, "us-east")
	if err != nil || !d.Equal(down.At.UTC()) || !u.Equal(up.At.UTC()) {
		t.Fatalf("last outage: %v %v %v, want %v %v", d, u, err, down.At, up.At)
	}
	journal, _ := os.ReadFile(JournalFile(dir))
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(string(journal)), "\n") {
		var e JournalEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, e.Action+" "+e.Region)
	}
	if got := strings.Join(actions, ", "); got != "down us-east, up us-east, stop eu-west, pause ap-south, resume ap-south" {
		t.Fatalf("journal: %s", got)
	}

	// A second supervisor on the same directory refuses to start.
	err = NewSupervisor(Options{Dir: dir, Bin: os.Args[0], Topology: topo}).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second supervisor: %v, want already running", err)
	}

	pids := map[string]int{}
	for _, n := range []string{"us-east", "ap-south", "switch"} {
		pids[n] = sv.proc(n).PID()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for n := range pids {
		if p := filepath.Join(dir, n, "pid"); fileExists(p) {
			t.Errorf("%s left after the stop", p)
		}
	}
	if fileExists(TopologyFile(dir)) || fileExists(ControlSocket(dir)) {
		t.Error("the topology or the control socket is left after the stop")
	}
	if _, err := Control(context.Background(), dir, "/up/us-east"); err == nil || !strings.Contains(err.Error(), "no dev cluster") {
		t.Fatalf("control of a stopped cluster: %v", err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
