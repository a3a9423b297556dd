//go:build regions

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shortener/chaos/load"
	"shortener/procs"
	"shortener/region"
	"shortener/region/regiontest"
)

// devCluster is `shortener dev` (what make run starts) as a child process
// of this test binary, on its own network prefix.
type devCluster struct {
	t    *testing.T
	dir  string
	key  string
	topo procs.Topology
	proc *procs.Proc
	out  *syncBuffer
}

// syncBuffer collects a child's output for the test log.
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

func startDev(t *testing.T, extra ...string) *devCluster {
	t.Helper()
	prefix := fmt.Sprintf("127.%d", 64+rand.IntN(180))
	d := &devCluster{t: t, dir: t.TempDir(), key: "sk_test_failover", topo: topologyOn(prefix, 3), out: &syncBuffer{}}
	pr, pw := io.Pipe()
	p, err := procs.Start(procs.Spec{Name: "dev", Bin: os.Args[0], Args: append([]string{"dev", "--dir", d.dir, "--net", prefix}, extra...),
		Env: []string{"SHORTENER_CHILD=1", "SHORTENER_API_KEY=" + d.key}, Output: pw, Group: true})
	if err != nil {
		t.Fatal(err)
	}
	d.proc = p
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(d.out, sc.Text())
			if strings.Contains(sc.Text(), "Ctrl-C stops the cluster") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	t.Cleanup(func() {
		// SIGINT: the supervisor stops its regions; after 30 s its whole
		// process group is SIGKILLed.
		_, _ = d.proc.Terminate(syscall.SIGINT, 30*time.Second)
		pw.Close()
		t.Logf("dev supervisor's output:\n%s", d.out.String())
	})
	select {
	case <-ready:
	case <-time.After(150 * time.Second):
		t.Fatalf("the dev cluster did not start in 150 s:\n%s", d.out.String())
	}
	// Ready regions; now wait until every mirror flows (RPO known) and the
	// alias register is elected, as the cluster tests do.
	for _, r := range d.topo.Regions {
		hc := &http.Client{Timeout: 2 * time.Second}
		regiontest.WaitFor(t, 90*time.Second, func() error {
			var rr region.RegionsResponse
			if err := getJSON(context.Background(), hc, "http://"+r.Host+":8080/api/v1/regions", &rr); err != nil {
				return err
			}
			for _, o := range rr.Origins {
				if !o.RPOKnown {
					return fmt.Errorf("%s: mirror of %s not live yet", r.Name, o.Origin)
				}
			}
			return nil
		})
	}
	return d
}

// ctl runs `shortener dev <verb> <region>` (make region-down / region-up)
// and returns its output.
func (d *devCluster) ctl(verb, region string) string {
	d.t.Helper()
	cmd := exec.Command(os.Args[0], "dev", verb, region, "--dir", d.dir)
	cmd.Env = append(os.Environ(), "SHORTENER_CHILD=1", "SHORTENER_API_KEY="+d.key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("dev %s %s: %v\n%s", verb, region, err, out)
	}
	return string(out)
}

func (d *devCluster) url(i int) string { return "http://" + d.topo.Regions[i].Host + ":8080" }

// TestClusterFailoverThroughTheSwitch: load from the clients of all three
// regions through the DNS switch; us-east SIGKILLed (make region-down); its
// clients succeed again elsewhere within 5 s, the others keep at least
// 99.99%; the RPO eu-west reported at the kill bounds what it lacks; after
// make region-up the clients return once us-east is ready and caught up,
// and no acknowledged create is lost.
func TestClusterFailoverThroughTheSwitch(t *testing.T) {
	d := startDev(t)
	hist := filepath.Join(d.dir, "load.jsonl")
	hf, err := os.Create(hist)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load.Config{Rate: 240, CreateRatio: 0.25, Duration: 4 * time.Minute, Workers: 48, Seed: 7,
		APIKey: d.key, History: hf, RegionsInterval: 250 * time.Millisecond}
	for i, r := range d.topo.Regions {
		cfg.Targets = append(cfg.Targets, load.Target{Name: r.Name, BaseURL: "http://" + d.topo.Zone + ":8080",
			DNS: d.topo.SwitchDNS, LocalAddr: strings.TrimSuffix(r.Host, ".1") + ".10"})
		cfg.Regions = append(cfg.Regions, load.Region{Name: r.Name, BaseURL: d.url(i)})
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	type result struct {
		rep *load.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := load.Run(ctx, cfg)
		done <- result{rep, err}
	}()

	time.Sleep(10 * time.Second) // steady load before the kill
	killedAt := time.Now()
	t.Logf("make region-down REGION=us-east:\n%s", d.ctl("down", "us-east"))

	// While us-east is down: what eu-west (where the switch sends its
	// clients) lacks of what us-east acknowledged is measured below from
	// the history; the probe must run before us-east returns.
	time.Sleep(8 * time.Second)
	hf.Sync()
	midHist := readHistory(t, hist)
	mid, err := load.Failover(midHist, "us-east", killedAt, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := load.Probe(context.Background(), d.url(1), mid.AckedCodes())
	if err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	t.Logf("make region-up REGION=us-east:\n%s", d.ctl("up", "us-east"))
	time.Sleep(8 * time.Second) // the clients back home for a while
	stop()
	res := <-done
	if res.err != nil && !(errors.Is(res.err, context.Canceled) && res.rep != nil) {
		t.Fatal(res.err) // the load ends when the test has seen enough: a cancelled run's report is whole
	}
	hf.Close()
	var text strings.Builder
	_ = res.rep.WriteText(&text)
	t.Logf("load report:\n%s", text.String())

	fr, err := load.Failover(readHistory(t, hist), "us-east", killedAt, upAt)
	if err != nil {
		t.Fatal(err)
	}
	fr.Probe = probe
	var ftext strings.Builder
	_ = fr.WriteText(&ftext)
	t.Logf("failover report:\n%s", ftext.String())

	if !fr.Recovered || fr.RTO > 5*time.Second {
		t.Errorf("us-east's clients: recovered %t, RTO %v; want within 5 s", fr.Recovered, fr.RTO)
	}
	for _, name := range []string{"eu-west", "ap-south"} {
		c, ok := fr.Client(name)
		if !ok {
			t.Errorf("%s's clients: no operation in the history", name)
		} else if c.SuccessRate < 0.9999 {
			t.Errorf("%s's clients: success %.4f%% (%d of %d); want at least 99.99%%", c.Client, 100*c.SuccessRate, c.OK, c.Ops)
		}
	}
	if !fr.Returned {
		t.Errorf("us-east's clients never returned to us-east after make region-up")
	}
	// The reported RPO bounds the measured one.
	rep, ok := fr.ReportedBy("eu-west")
	if !ok || !rep.Found || !rep.RPOKnown {
		t.Errorf("no RPO bound reported by eu-west for us-east before the kill: %+v", rep)
	} else if probe.Checked == 0 {
		t.Errorf("us-east acknowledged no create before the kill: the RPO bound was not tested")
	} else if uint64(probe.Missing) > rep.RPOEvents {
		t.Errorf("invariant 8: eu-west reported an RPO of %d events before the kill, but lacked %d of us-east's %d acknowledged links", rep.RPOEvents, probe.Missing, probe.Checked)
	}
	t.Logf("RTO %v; eu-west reported RPO ≤ %d events, measured %d missing of %d acknowledged", fr.RTO, rep.RPOEvents, probe.Missing, probe.Checked)

	// Invariant 1: every 201 of the run resolves in every region.
	var codes []string
	for _, op := range readHistory(t, hist).Ops {
		if op.Op == "create" && op.Ack {
			codes = append(codes, op.Code)
		}
	}
	if len(codes) == 0 {
		t.Fatal("no create acknowledged in the run: invariant 1 was not tested")
	}
	for i := range d.topo.Regions {
		regiontest.WaitFor(t, 60*time.Second, func() error {
			p, err := load.Probe(context.Background(), d.url(i), codes)
			if err != nil {
				return err
			}
			if p.Present != len(codes) {
				return fmt.Errorf("%s: %d of %d acknowledged links present (missing %d, errors %d, other %d)",
					d.topo.Regions[i].Name, p.Present, len(codes), p.Missing, p.Errors, p.Other)
			}
			return nil
		})
	}
	t.Logf("%d acknowledged links resolve in all three regions", len(codes))
}

func readHistory(t *testing.T, path string) *load.History {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := load.ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
