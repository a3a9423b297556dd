package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/region"
	"shortener/secrets"
)

// benchKey is the API key of every benchmark region; only its hash is
// given to the children.
const benchKey = "bench-key"

// benchCluster is one or more regions run as child processes of a
// benchmark, each with its state and log under dir/<region>. Children are
// reused from the dev cluster (child, stopChildren); only the arguments
// differ: no rate limit, the bench key, warnings only in the log.
type benchCluster struct {
	self     string
	dir      string
	fsync    string
	regions  []devRegion
	children []*child // index-aligned with regions; nil while not started
	progress io.Writer
	// plaintext runs the regions on open, plaintext NATS (--insecure-nats):
	// the baseline that shows what TLS and authentication cost.
	plaintext bool
}

// newBenchCluster wipes dir and checks that no earlier run still holds the
// addresses: a stale region answering /readyz would be benchmarked instead
// of ours.
func newBenchCluster(dir, fsync string, regions []devRegion, progress io.Writer) (*benchCluster, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, r := range regions {
		for _, addr := range []string{r.Host + ":8080", r.Host + ":4222", globalHost(r.Host) + ":4222"} {
			if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
				c.Close()
				return nil, fmt.Errorf("%s is already in use: is an earlier benchmark still running?", addr)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range regions {
		names = append(names, r.Name)
	}
	if err := secrets.Generate(filepath.Join(dir, "secrets"), secrets.Options{Regions: names}); err != nil {
		return nil, err
	}
	return &benchCluster{self: self, dir: dir, fsync: fsync, regions: regions,
		children: make([]*child, len(regions)), progress: progress}, nil
}

// globalHost is where a region's member of "global" listens: the address
// after its regional server (region.Config's default).
func globalHost(host string) string {
	ip := net.ParseIP(host).To4()
	return net.IPv4(ip[0], ip[1], ip[2], ip[3]+1).String()
}

func (b *benchCluster) args(i int) []string {
	r := b.regions[i]
	args := []string{"region", "--name", r.Name, "--digit", string(r.Digit), "--http", r.Host + ":8080",
		"--data", filepath.Join(b.dir, r.Name), "--fsync", b.fsync, "--rate-limit", "-1",
		"--api-key-hash", region.HashAPIKey(benchKey), "--log-level", "warn"}
	if b.plaintext {
		args = append(args, "--insecure-nats")
	} else {
		args = append(args, "--secrets", b.secrets())
	}
	for _, p := range b.regions {
		if p.Name != r.Name {
			args = append(args, "--peer", p.Name+"="+p.Host)
		}
	}
	// Extra region flags for a look inside a benchmark, e.g.
	// SHORTENER_BENCH_REGION_ARGS="--cpu-profile=/tmp/{region}.prof".
	for _, a := range strings.Fields(os.Getenv("SHORTENER_BENCH_REGION_ARGS")) {
		args = append(args, strings.ReplaceAll(a, "{region}", r.Name))
	}
	return args
}

// start starts region i (again, after a kill: same arguments, same state).
func (b *benchCluster) start(i int) error {
	r := b.regions[i]
	rdir := filepath.Join(b.dir, r.Name)
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.logPath(i), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.self, b.args(i)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Ctrl-C reaches only the benchmark, which stops the children itself.
	cmd.SysProcAttr = benchSysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", r.Name, err)
	}
	c := &child{name: r.Name, dir: rdir, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	b.children[i] = c
	return nil
}

func (b *benchCluster) startAll() error {
	for i := range b.regions {
		if err := b.start(i); err != nil {
			return err
		}
	}
	return nil
}

// kill SIGKILLs region i and waits until it is gone.
func (b *benchCluster) kill(i int) {
	c := b.children[i]
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop stops every running child: SIGTERM, SIGKILL after 10 s.
func (b *benchCluster) stop() {
	var running []*child
	for _, c := range b.children {
		if c != nil {
			running = append(running, c)
		}
	}
	stopChildren(b.progress, running)
}

func (b *benchCluster) logPath(i int) string {
	return filepath.Join(b.dir, b.regions[i].Name, "region.log")
}
func (b *benchCluster) url(i int) string     { return "http://" + b.regions[i].Host + ":8080" }
func (b *benchCluster) natsURL(i int) string { return "nats://" + b.regions[i].Host + ":4222" }

func (b *benchCluster) waitReady(ctx context.Context, i int) error {
	if err := waitHTTPReady(ctx, b.url(i)+"/readyz", b.children[i].done, 90*time.Second); err != nil {
		return fmt.Errorf("%s: %w (see %s)", b.regions[i].Name, err, b.logPath(i))
	}
	return nil
}

// waitAllReady waits for every region's /readyz and, with several regions,
// for each to see the alias register: the supercluster has then formed
// (the R3 register needs the global members of all three).
func (b *benchCluster) waitAllReady(ctx context.Context) error {
	for i := range b.regions {
		if err := b.waitReady(ctx, i); err != nil {
			return err
		}
	}
	if len(b.regions) == 1 {
		return nil
	}
	return b.pollRegions(ctx, "alias register available", func(rr region.RegionsResponse) error {
		if rr.AliasRegister != "available" {
			return errors.New("the alias register is " + rr.AliasRegister)
		}
		return nil
	})
}

// pollRegions polls each region's GET /api/v1/regions, one region after
// the other, until cond accepts its answer (nil), for up to a minute each.
func (b *benchCluster) pollRegions(ctx context.Context, what string, cond func(region.RegionsResponse) error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for i, r := range b.regions {
		err := benchPoll(ctx, 60*time.Second, 50*time.Millisecond, r.Name+": "+what, func(ctx context.Context) (bool, error) {
			var rr region.RegionsResponse
			if err := getJSON(ctx, client, b.url(i)+"/api/v1/regions", &rr); err != nil {
				return false, err
			}
			err := cond(rr)
			return err == nil, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// waitMirrorsLive waits until every region reports each other region's
// mirror live. On a fresh cluster the mirrors start copying about a second
// after the regions are ready: a load started before measures that start,
// not replication (docs/benchmarks.md, "Replication lag, found").
func (b *benchCluster) waitMirrorsLive(ctx context.Context) error {
	return b.pollRegions(ctx, "every mirror live", func(rr region.RegionsResponse) error {
		if len(rr.Origins) != len(b.regions) {
			return fmt.Errorf("%d origins reported, want %d", len(rr.Origins), len(b.regions))
		}
		for _, o := range rr.Origins {
			if !o.Local && !o.MirrorActive {
				return fmt.Errorf("the mirror of %s is not live", o.Origin)
			}
		}
		return nil
	})
}

// benchThreeRegions is the topology of the multi-region benchmarks: the dev
// cluster's names and digits on 127.0.8.0/24, two addresses apart so that
// each global member (the next address) is free.
func benchThreeRegions(first int) []devRegion {
	var out []devRegion
	for i, r := range devRegions {
		out = append(out, devRegion{Name: r.Name, Digit: r.Digit, Host: fmt.Sprintf("127.0.8.%d", first+2*i)})
	}
	return out
}

// pollStop is an error of a benchPoll condition that makes waiting longer
// pointless: the process it waits for exited.
type pollStop struct{ error }

// benchPoll calls cond every interval until it reports true, the timeout
// passes (an error naming what and cond's last error), ctx ends, or cond
// fails with a pollStop.
func benchPoll(ctx context.Context, timeout, interval time.Duration, what string, cond func(context.Context) (bool, error)) error {
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

// secrets is the cluster's NATS credentials folder, made with it.
func (b *benchCluster) secrets() string { return filepath.Join(b.dir, "secrets") }

// connect connects to region i's NATS server as the bench user.
// Reconnects are quick so that a restarted server is found again without a
// 2 s pause.
func (b *benchCluster) connect(i int) (*nats.Conn, jetstream.JetStream, error) {
	return b.connectAs(i, "bench")
}

// connectAs connects to region i's NATS server as user: a region's user to
// write its stream directly (bench catchup and replay fill it).
func (b *benchCluster) connectAs(i int, user string) (*nats.Conn, jetstream.JetStream, error) {
	url := b.natsURL(i)
	var cred *secrets.Client
	if !b.plaintext {
		var err error
		if cred, err = secrets.LoadClient(user, secrets.Paths{Dir: b.secrets()}.Resolve(user)); err != nil {
			return nil, nil, err
		}
	}
	nc, err := nats.Connect(url, append(cred.NATSOptions(), nats.Name("shortener-bench"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// lastSeq returns a stream's last sequence; with a JetStream client
// connected anywhere in the supercluster, the stream's own server answers.
func lastSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.LastSeq, nil
}

// benchQuantiles returns the q-quantiles of ds (sorted in place), nearest
// rank; zero when ds is empty.
func benchQuantiles(ds []time.Duration, qs ...float64) []time.Duration {
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

// benchMachine describes the machine for the report: CPUs, Go, and the load
// average when the run started (other work on the machine skews results).
func benchMachine(loadavg string) string {
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

func writeBenchJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// benchTimeout bounds a whole run; its expiry is reported as such rather
// than as whatever wait it happened to interrupt.
func benchTimeout(ctx context.Context, d time.Duration, run func(context.Context) error) error {
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

// writeLinkEvents appends n valid LinkCreated envelopes of us-east (digit
// 1), each to subject(code) with its id as Nats-Msg-Id, keeping at most
// window unacknowledged, and returns the size of the last one.
func writeLinkEvents(ctx context.Context, nc *nats.Conn, n, window int, subject func(code string) string) (int, error) {
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
		}))
	if err != nil {
		return 0, err
	}
	size := 0
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		code := events.NewCode('1')
		env, err := events.New(events.TypeLinkCreated, code, "us-east", "bench", time.Now(),
			events.LinkCreated{URL: "https://example.com/bench/" + code, RedirectStatus: 302})
		if err != nil {
			return 0, err
		}
		data := env.Encode()
		size = len(data)
		// A full window stalls the publish until acks free it: wait as long
		// as an ack may take, not the client's default 200 ms.
		if _, err := js.PublishAsync(subject(code), data, jetstream.WithMsgID(env.ID), jetstream.WithStallWait(30*time.Second)); err != nil {
			return 0, fmt.Errorf("publish %d of %d: %w", i+1, n, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if n := failed.Load(); n > 0 {
		return 0, fmt.Errorf("%d publishes failed, the first: %v", n, *firstErr.Load())
	}
	return size, nil
}

// mirrorLag records, for the events of one measurement, the time from each
// event's producer time to its delivery from a mirror to this process, and
// when in the measurement it arrived (for the lag-over-time picture).
type mirrorLag struct {
	mu      sync.Mutex
	start   time.Time
	samples []lagSample
	lastSeq map[string]uint64 // per mirror, the last stream sequence delivered (heartbeats too)
}

// lagSample is one event delivered from one mirror.
type lagSample struct {
	Mirror string
	At     time.Duration // delivery time since the measurement began
	Lag    time.Duration
}

func newMirrorLag() *mirrorLag {
	return &mirrorLag{start: time.Now(), lastSeq: map[string]uint64{}}
}

func (m *mirrorLag) record(mirror string, seq uint64, at time.Time, lag time.Duration, isEvent bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq <= m.lastSeq[mirror] {
		return // a redelivery after an ordered consumer reset
	}
	m.lastSeq[mirror] = seq
	if isEvent {
		m.samples = append(m.samples, lagSample{Mirror: mirror, At: at.Sub(m.start), Lag: lag})
	}
}

// reset starts a new measurement now and returns the samples of the one
// before.
func (m *mirrorLag) reset() []lagSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.samples
	m.samples = nil
	m.start = time.Now()
	return out
}

func (m *mirrorLag) seen(mirror string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeq[mirror]
}
