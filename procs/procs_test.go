package procs

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run this binary as a child: with
// PROCS_TEST_CHILD set it is a stand-in for shortener that serves the
// address of its command line (a region's --http with /readyz, a switch's
// --admin with /v1/state) and writes its arguments to <dir>/args.json.
func TestMain(m *testing.M) {
	if mode := os.Getenv("PROCS_TEST_CHILD"); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func child(mode string, args []string) int {
	sigs := make(chan os.Signal, 1)
	if mode == "deaf" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}
	fmt.Println("child", strings.Join(args, " "))
	addr, path, dir := flagValue(args, "--http"), "/readyz", flagValue(args, "--data")
	if len(args) > 0 && args[0] == "switch" {
		addr, path, dir = flagValue(args, "--admin"), "/v1/state", filepath.Dir(flagValue(args, "--state"))
	}
	if mode == "exit" {
		return 3
	}
	if dir != "" {
		data, _ := json.Marshal(args)
		_ = os.WriteFile(filepath.Join(dir, "args.json"), data, 0o644)
	}
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })
		go func() { _ = http.Serve(ln, mux) }()
	}
	<-sigs
	return 0
}

func testSpec(t *testing.T, mode string, args ...string) Spec {
	dir := t.TempDir()
	return Spec{Name: "r", Bin: os.Args[0], Args: args, Env: []string{"PROCS_TEST_CHILD=" + mode},
		Dir: dir, Log: filepath.Join(dir, "log"), PIDFile: filepath.Join(dir, "pid")}
}

// host returns a loopback address of its own for a test: 127.A.B.1.
func host() string { return fmt.Sprintf("127.%d.%d.1", 64+rand.IntN(180), rand.IntN(250)) }

func TestStartWaitReadyStop(t *testing.T) {
	h := host()
	spec := testSpec(t, "serve", "region", "--http", h+":8080")
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(context.Background(), "http://"+h+":8080/readyz", time.Minute); err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("a ready process is not running")
	}
	pid, err := os.ReadFile(spec.PIDFile)
	if err != nil || strings.TrimSpace(string(pid)) != fmt.Sprint(p.PID()) {
		t.Fatalf("pid file: %q %v, want %d", pid, err, p.PID())
	}
	forced, err := p.Stop(time.Minute)
	if forced || err != nil {
		t.Fatalf("stop: forced %v, %v; want a clean exit on SIGTERM", forced, err)
	}
	if p.Running() || p.Err() != nil || p.State().ExitCode() != 0 {
		t.Fatalf("after stop: running %v, err %v, state %v", p.Running(), p.Err(), p.State())
	}
	if _, err := os.Stat(spec.PIDFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left after the stop: %v", err)
	}
	log, _ := os.ReadFile(spec.Log)
	if !strings.Contains(string(log), "child region --http "+h+":8080") {
		t.Fatalf("log: %q, want the child's output", log)
	}
}

func TestStopForcesADeafProcess(t *testing.T) {
	p, err := Start(testSpec(t, "deaf"))
	if err != nil {
		t.Fatal(err)
	}
	// It ignores SIGTERM once it has said hello; wait for that.
	waitLog(t, p, "child")
	forced, err := p.Stop(200 * time.Millisecond)
	if !forced || err != nil {
		t.Fatalf("stop of a process that ignores SIGTERM: forced %v, %v; want forced", forced, err)
	}
	if ws := p.State().Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("state %v, want killed by SIGKILL", p.State())
	}
}

func waitLog(t *testing.T, p *Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join(filepath.Dir(p.pidFile), "log")); strings.Contains(string(b), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never logged %q", p.Name(), want)
}

func TestKill(t *testing.T) {
	spec := testSpec(t, "serve")
	p, err := Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(time.Minute); err != nil {
		t.Fatal(err)
	}
	if ws := p.State().Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("state %v, want killed by SIGKILL", p.State())
	}
	if _, err := os.Stat(spec.PIDFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left after the kill: %v", err)
	}
}

func TestWaitReadyFailsWhenTheProcessExits(t *testing.T) {
	p, err := Start(testSpec(t, "exit"))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(context.Background(), "http://"+host()+":8080/readyz", time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("wait on a process that exits: %v, want exited", err)
	}
	if p.State().ExitCode() != 3 {
		t.Fatalf("exit code %d, want 3", p.State().ExitCode())
	}
}

// TestStopAll stops an obedient process and two that ignore SIGTERM: each
// of the deaf ones is SIGKILLed once the one deadline has passed.
func TestStopAll(t *testing.T) {
	a, err := Start(testSpec(t, "serve"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Start(testSpec(t, "deaf"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(testSpec(t, "deaf"))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, c, "child")
	waitLog(t, a, "child") // both have their signal handling in place
	waitLog(t, b, "child")
	var out strings.Builder
	StopAll(&out, []*Proc{a, b, c}, 200*time.Millisecond)
	if a.Running() || b.Running() || c.Running() {
		t.Fatal("a process outlived StopAll")
	}
	for _, p := range []*Proc{b, c} {
		if ws := p.State().Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("a deaf process: %v, want killed by SIGKILL", p.State())
		}
	}
	// Both deaf ones are named (and the obedient one too if it was slower
	// than the deadline on a loaded machine).
	if strings.Count(out.String(), "r did not stop in 200ms: killing it") < 2 {
		t.Fatalf("StopAll said %q, want the deaf process named", out.String())
	}
}

func TestRegionConfigArgs(t *testing.T) {
	all := []Region{{Name: "us-east", Host: "127.0.1.1"}, {Name: "eu-west", Host: "127.0.2.1"}}
	for _, tc := range []struct {
		name string
		cfg  RegionConfig
		want string
	}{
		{"bare", RegionConfig{Name: "us-east", HTTP: "h:8080", Data: "d"},
			"region --name us-east --http h:8080 --data d"},
		{"dev", RegionConfig{Name: "us-east", Digit: '1', HTTP: "127.0.1.1:8080", Data: "var/dev/us-east", Fsync: "always",
			Durability: "local", SwitchAdmin: "127.0.0.1:8054", Secrets: "var/dev/secrets", Peers: all},
			"region --name us-east --digit 1 --http 127.0.1.1:8080 --data var/dev/us-east --fsync always --durability local --switch-admin 127.0.0.1:8054 --secrets var/dev/secrets --peer eu-west=127.0.2.1"},
		{"test", RegionConfig{Name: "eu-west", Digit: '2', HTTP: "x:8080", Data: "d", APIKeyHash: "h", LogLevel: "warn",
			NoRateLimit: true, LimitExempt: []string{DevClients}, Secrets: "s", Peers: all, Extra: []string{"--durability", "replicated"}},
			"region --name eu-west --digit 2 --http x:8080 --data d --api-key-hash h --log-level warn --rate-limit -1 --limit-exempt 127.0.0.0/8 --secrets s --peer us-east=127.0.1.1 --durability replicated"},
		{"plaintext", RegionConfig{Name: "us-east", HTTP: "h:8080", Data: "d", Secrets: "s", InsecureNATS: true},
			"region --name us-east --http h:8080 --data d --insecure-nats"},
	} {
		if got := strings.Join(tc.cfg.Args(), " "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestTopologyOn(t *testing.T) {
	topo := TopologyOn("127.9", "short.test", 2)
	want := Topology{Regions: []Region{{"us-east", '1', "127.9.1.1"}, {"eu-west", '2', "127.9.2.1"}},
		SwitchDNS: "127.9.0.1:8053", SwitchAdmin: "127.9.0.1:8054", Zone: "short.test"}
	if !reflect.DeepEqual(topo, want) {
		t.Fatalf("got %+v, want %+v", topo, want)
	}
	if g := GlobalHost("127.9.1.1"); g != "127.9.1.2" {
		t.Fatalf("global host %s", g)
	}
}

// TestInheritedEnvironment: a child started by procs keeps the environment
// but the SHORTENER_<FLAG> settings an operator may have exported for a
// region of their own (a stray SHORTENER_GLOBAL_HOST would put every dev
// region's global member on one host); the API key and the secrets folder
// stay.
func TestInheritedEnvironment(t *testing.T) {
	saved := RegionFlagEnv
	defer func() { RegionFlagEnv = saved }()
	RegionFlagEnv = map[string]bool{"SHORTENER_GLOBAL_HOST": true, "SHORTENER_CONFIG": true, "SHORTENER_SECRETS": true}
	got := inherited([]string{"PATH=/bin", "SHORTENER_API_KEY=k", "SHORTENER_SECRETS=s", "SHORTENER_GLOBAL_HOST=10.0.0.1",
		"SHORTENER_CONFIG=x.toml", "HOME=/root", "SHORTENER_CHILD=1", "NOT_SHORTENER_X=1"})
	if want := "PATH=/bin SHORTENER_API_KEY=k SHORTENER_SECRETS=s HOME=/root SHORTENER_CHILD=1 NOT_SHORTENER_X=1"; strings.Join(got, " ") != want {
		t.Errorf("got %v\nwant %s", got, want)
	}
}
