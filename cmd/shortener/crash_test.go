package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/procs"
	"shortener/projections"
	"shortener/region"
	"shortener/region/regiontest"
)

// startRegionProc starts region us-east as a child process on host with
// its state in dir, and waits until it is ready.
func startRegionProc(t *testing.T, host, dir string, extra ...string) *procs.Proc {
	t.Helper()
	cfg := procs.RegionConfig{Name: "us-east", Digit: '1', HTTP: host + ":8080", Data: dir,
		APIKeyHash: region.HashAPIKey(regiontest.APIKey), NoRateLimit: true, LimitExempt: []string{procs.DevClients}, LogLevel: "warn",
		Secrets: regiontest.SecretsDir(), Extra: extra}
	log := filepath.Join(dir, "..", "region.log")
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := startTestProc(t, "us-east", log, cfg.Args())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(context.Background(), "http://"+host+":8080/readyz", 60*time.Second); err != nil {
		log, _ := os.ReadFile(log)
		t.Fatalf("region child: %v\n%s", err, log)
	}
	return p
}

// stopRegionProc stops a region child with SIGTERM and fails the test if
// it does not exit within 20 s (it is SIGKILLed then).
func stopRegionProc(t *testing.T, p *procs.Proc) {
	t.Helper()
	if forced, err := p.Stop(20 * time.Second); forced || err != nil {
		t.Fatalf("region did not stop on SIGTERM within 20s (%v)", err)
	}
}

// TestCrashWhileCreating SIGKILLs a region while clients create links,
// restarts it on the same state, and requires that every link that got a
// 201 resolves, and that the projection holds exactly the links the log
// holds: nothing lost, nothing applied twice.
func TestCrashWhileCreating(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs child processes")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "us-east")
	host := regiontest.Host()
	url := "http://" + host + ":8080"
	p := startRegionProc(t, host, dir)

	var (
		mu      sync.Mutex
		acked   = map[string]string{} // code -> URL, for every 201
		created = make(chan struct{}, 1<<16)
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := regiontest.NewClient(url)
			c.HTTP.Timeout = 2 * time.Second
			for i := 0; ctx.Err() == nil; i++ {
				target := fmt.Sprintf("https://example.com/w%d/%d", w, i)
				r, err := c.Create(ctx, map[string]any{"url": target})
				if err != nil || r.Status != http.StatusCreated {
					continue // the region is down: keep trying until told to stop
				}
				mu.Lock()
				acked[r.Str("code")] = target
				mu.Unlock()
				created <- struct{}{}
			}
		}()
	}
	// Kill it in the middle of the stream of creates.
	for i := 0; i < 300; i++ {
		<-created
	}
	if err := p.Kill(time.Minute); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ackedAtKill := len(acked)
	mu.Unlock()
	p = startRegionProc(t, host, dir)
	for i := 0; i < 50; i++ { // creates succeed again after the restart
		<-created
	}
	cancel()
	wg.Wait()

	c := regiontest.NewClient(url)
	for code, target := range acked {
		r, err := c.Do(context.Background(), http.MethodGet, "/"+code, nil)
		if err != nil || r.Status != http.StatusFound || r.Header.Get("Location") != target {
			t.Errorf("acknowledged link %s: status %d, Location %q, err %v; want 302 to %s", code, r.Status, r.Header.Get("Location"), err, target)
		}
	}
	// The log's distinct LinkCreated events, read back from JetStream.
	inLog := logCreates(t, "nats://"+host+":4222")
	for code := range acked {
		if !inLog[code] {
			t.Errorf("acknowledged %s is not in the log", code)
		}
	}
	stopRegionProc(t, p)
	store, err := projections.Open(filepath.Join(dir, "projection"), projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Count()
	if err != nil {
		t.Fatal(err)
	}
	if rows != len(inLog) {
		t.Fatalf("projection has %d rows, the log has %d distinct created links", rows, len(inLog))
	}
	for code := range inLog {
		l, found, err := store.Get(code)
		if err != nil || !found || l.Events != 1 {
			t.Fatalf("link %s in the projection: found %v, %d events, err %v; want exactly one event", code, found, l.Events, err)
		}
	}
	t.Logf("%d links acknowledged (%d before the kill), %d in the log and the projection", len(acked), ackedAtKill, rows)
}

// logCreates reads the region's whole stream and returns the codes of its
// LinkCreated events.
func logCreates(t *testing.T, natsURL string) map[string]bool {
	t.Helper()
	nc, err := nats.Connect(natsURL, regiontest.NATSOptions("audit")...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "LINKS_US_EAST")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get #%d: %v", seq, err)
		}
		e, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("event #%d: %v", seq, err)
		}
		if e.Type == events.TypeLinkCreated {
			out[e.Code] = true
		}
	}
	return out
}

// TestProjectorCrash arms the projector-crash fault of a region child and
// makes it build a batch: the process SIGKILLs itself before committing
// it. Started again on its state, it has every acknowledged link and the
// one whose batch died with it (its event was in the stream).
func TestProjectorCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: runs child processes")
	}
	dir := filepath.Join(t.TempDir(), "us-east")
	host := regiontest.Host()
	url := "http://" + host + ":8080"
	p := startRegionProc(t, host, dir, "--fault-injection")
	c := regiontest.NewClient(url)
	c.HTTP.Timeout = 3 * time.Second
	ctx := context.Background()
	acked := map[string]string{}
	for i := range 20 {
		target := fmt.Sprintf("https://example.com/before-crash/%d", i)
		r, err := c.Create(ctx, map[string]any{"url": target})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create: %v %d %s", err, r.Status, r.Raw)
		}
		acked[r.Str("code")] = target
	}
	r, err := c.Do(ctx, http.MethodPost, "/api/v1/admin/faults/projector-crash", map[string]any{})
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("arm the crash: %v %d %s", err, r.Status, r.Raw)
	}
	// The next batch (this create's, or a heartbeat's) kills it.
	if r, err := c.Create(ctx, map[string]any{"url": "https://example.com/the-batch"}); err == nil && r.Status == http.StatusCreated {
		t.Fatalf("a create was acknowledged after the crash was armed: %s", r.Raw)
	}
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the region did not crash within 10 s of being armed")
	}
	if ws, ok := p.State().Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the region exited with %v, want killed by SIGKILL", p.State())
	}

	p = startRegionProc(t, host, dir)
	for code, target := range acked {
		r, err := c.Do(ctx, http.MethodGet, "/"+code, nil)
		if err != nil || r.Header.Get("Location") != target {
			t.Errorf("acknowledged %s after the crash: %v %d %q, want a redirect to %s", code, err, r.Status, r.Header.Get("Location"), target)
		}
	}
	inLog := logCreates(t, "nats://"+host+":4222")
	if len(inLog) != len(acked)+1 {
		t.Fatalf("%d creates in the log, want %d (the acknowledged and the one whose batch crashed)", len(inLog), len(acked)+1)
	}
	regiontest.WaitFor(t, 10*time.Second, func() error {
		r, err := c.Do(ctx, http.MethodGet, "/api/v1/projection", nil)
		if err != nil {
			return err
		}
		if n, _ := r.Body["links"].(float64); int(n) != len(inLog) {
			return fmt.Errorf("projection has %v links, the log %d", r.Body["links"], len(inLog))
		}
		return nil
	})
	stopRegionProc(t, p)
}
