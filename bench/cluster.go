package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/procs"
	"shortener/region"
	"shortener/replicator"
	"shortener/secrets"
	"shortener/status"
)

// benchKey is the API key of every benchmark region; only its hash is
// given to the children.
const benchKey = "bench-key"

// cluster is one or more regions run as child processes of a benchmark
// (package procs), each with its state and log under dir/<region>. The
// arguments are those of a dev region but for no rate limit, the bench key
// and warnings only in the log.
type cluster struct {
	self    string
	dir     string
	fsync   string
	regions []procs.Region
	proc    []*procs.Proc // index-aligned with regions; nil while not started
	// progress gets what stopping the children has to say.
	progress io.Writer
	// plaintext runs the regions on open, plaintext NATS (--insecure-nats):
	// the baseline that shows what TLS and authentication cost.
	plaintext bool
}

// newCluster wipes dir and checks that no earlier run still holds the
// addresses: a stale region answering /readyz would be benchmarked instead
// of ours.
func newCluster(dir, fsync string, regions []procs.Region, progress io.Writer) (*cluster, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, r := range regions {
		for _, addr := range []string{r.Host + ":8080", r.Host + ":4222", procs.GlobalHost(r.Host) + ":4222"} {
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
	return &cluster{self: self, dir: dir, fsync: fsync, regions: regions,
		proc: make([]*procs.Proc, len(regions)), progress: progress}, nil
}

// args is region i's command line after the binary: shortener region ...
func (b *cluster) args(i int) []string {
	r := b.regions[i]
	cfg := procs.RegionConfig{Name: r.Name, Digit: r.Digit, HTTP: r.Host + ":8080", Data: filepath.Join(b.dir, r.Name),
		Fsync: b.fsync, NoRateLimit: true, APIKeyHash: region.HashAPIKey(benchKey), LogLevel: "warn",
		Secrets: b.secrets(), InsecureNATS: b.plaintext, Peers: b.regions}
	// Extra region flags for a look inside a benchmark, e.g.
	// SHORTENER_BENCH_REGION_ARGS="--cpu-profile=/tmp/{region}.prof".
	for _, a := range strings.Fields(os.Getenv("SHORTENER_BENCH_REGION_ARGS")) {
		cfg.Extra = append(cfg.Extra, strings.ReplaceAll(a, "{region}", r.Name))
	}
	return cfg.Args()
}

// start starts region i (again, after a kill: same arguments, same state),
// its output appended to its log.
func (b *cluster) start(i int) error {
	r := b.regions[i]
	// Group: Ctrl-C reaches only the benchmark, which stops the children
	// itself. DieWithParent: a region left behind by a benchmark that died
	// would hold its addresses and answer the next run's readiness checks.
	p, err := procs.Start(procs.Spec{Name: r.Name, Bin: b.self, Args: b.args(i), Dir: filepath.Join(b.dir, r.Name),
		Log: b.logPath(i), Group: true, DieWithParent: true})
	if err != nil {
		return err
	}
	b.proc[i] = p
	return nil
}

func (b *cluster) startAll() error {
	for i := range b.regions {
		if err := b.start(i); err != nil {
			return err
		}
	}
	return nil
}

// kill SIGKILLs region i and waits until it is gone.
func (b *cluster) kill(i int) error { return b.proc[i].Kill(10 * time.Second) }

// stop stops every running child: SIGTERM, SIGKILL after 10 s.
func (b *cluster) stop() {
	var running []*procs.Proc
	for _, p := range b.proc {
		if p != nil {
			running = append(running, p)
		}
	}
	procs.StopAll(b.progress, running, 10*time.Second)
}

func (b *cluster) logPath(i int) string {
	return filepath.Join(b.dir, b.regions[i].Name, "region.log")
}
func (b *cluster) url(i int) string     { return "http://" + b.regions[i].Host + ":8080" }
func (b *cluster) natsURL(i int) string { return "nats://" + b.regions[i].Host + ":4222" }

func (b *cluster) waitReady(ctx context.Context, i int) error {
	if err := b.proc[i].WaitReady(ctx, b.url(i)+"/readyz", 90*time.Second); err != nil {
		return fmt.Errorf("%s: %w (see %s)", b.regions[i].Name, err, b.logPath(i))
	}
	return nil
}

// waitAllReady waits for every region's /readyz and, with several regions,
// for each to see the alias register: the supercluster has then formed
// (the R3 register needs the global members of all three).
func (b *cluster) waitAllReady(ctx context.Context) error {
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
func (b *cluster) pollRegions(ctx context.Context, what string, cond func(region.RegionsResponse) error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for i, r := range b.regions {
		err := poll(ctx, 60*time.Second, 50*time.Millisecond, r.Name+": "+what, func(ctx context.Context) (bool, error) {
			var rr region.RegionsResponse
			if err := status.GetJSON(ctx, client, b.url(i)+"/api/v1/regions", &rr); err != nil {
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
func (b *cluster) waitMirrorsLive(ctx context.Context) error {
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

// validateFirstHost reports a --host of threeRegions that leaves no room
// for three regions and their global members.
func validateFirstHost(first int) error {
	if first < 1 || first > 249 {
		return fmt.Errorf("--host must be from 1 to 249")
	}
	return nil
}

// threeRegions is the topology of the multi-region benchmarks: the dev
// cluster's names and digits on 127.0.8.0/24, two addresses apart so that
// each global member (the next address) is free.
func threeRegions(first int) []procs.Region {
	var out []procs.Region
	for i, name := range []string{"us-east", "eu-west", "ap-south"} {
		out = append(out, procs.Region{Name: name, Digit: events.DefaultDigits[name], Host: fmt.Sprintf("127.0.8.%d", first+2*i)})
	}
	return out
}

// secrets is the cluster's NATS credentials folder, made with it.
func (b *cluster) secrets() string { return filepath.Join(b.dir, "secrets") }

// conn is a connection to one region's NATS server as the bench user. The
// project's streams are reached through replicator's handle, as a region
// reaches them; raw, a JetStream client of its own, is for what bench
// measures them against: raw publishes, ordered-consumer reads, scratch
// streams and mirrors, and the mirrors' own progress (docs/decisions.md:
// only replicator talks JetStream, bench's baselines aside).
type conn struct {
	*nats.Conn
	repl *replicator.Conn
	raw  jetstream.JetStream
}

// connect connects to region i's NATS server as the bench user.
func (b *cluster) connect(i int) (*conn, error) {
	nc, err := b.dial(i, "bench")
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc}
	if c.repl, err = replicator.Connect(nc); err == nil {
		c.raw, err = jetstream.New(nc)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// dial connects to region i's NATS server as user: the bench user, or a
// region's user to write its stream directly (bench catchup and replay
// fill it). Reconnects are quick so that a restarted server is found again
// without a 2 s pause.
func (b *cluster) dial(i int, user string) (*nats.Conn, error) {
	url := b.natsURL(i)
	var cred *secrets.Client
	if !b.plaintext {
		var err error
		if cred, err = secrets.LoadClient(user, secrets.Paths{Dir: b.secrets()}.Resolve(user)); err != nil {
			return nil, err
		}
	}
	nc, err := nats.Connect(url, append(cred.NATSOptions(), nats.Name("shortener-bench"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return nc, nil
}

// signer is what region i signs its events with, as the region itself
// does (nil on plaintext NATS).
func (b *cluster) signer(i int) (events.Signer, error) {
	if b.plaintext {
		return nil, nil
	}
	user := secrets.RegionUser(b.regions[i].Name)
	c, err := secrets.LoadClient(user, secrets.Paths{Dir: b.secrets()}.Resolve(user))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// keys are the regions' keys of the cluster's users table (nil on
// plaintext NATS).
func (b *cluster) keys() (*events.KeyRing, error) {
	if b.plaintext {
		return nil, nil
	}
	users, err := secrets.LoadUsers(filepath.Join(b.secrets(), secrets.UsersFile))
	if err != nil {
		return nil, err
	}
	return users.KeyRing()
}

// lastSeq returns a stream's last sequence; connected anywhere in the
// supercluster, the stream's own server answers.
func lastSeq(ctx context.Context, c *replicator.Conn, stream string) (uint64, error) {
	st, err := c.State(ctx, stream)
	return st.LastSeq, err
}

// writeLinkEvents appends n valid LinkCreated envelopes of us-east (digit
// 1), each to subject(code) with its id as Nats-Msg-Id, keeping at most
// window unacknowledged, and returns the size of the last one.
func writeLinkEvents(ctx context.Context, nc *nats.Conn, signer events.Signer, n, window int, subject func(code string) string) (int, error) {
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
		msg := &nats.Msg{Subject: subject(code), Data: env.Encode()}
		size = len(msg.Data)
		if signer != nil {
			sig, err := events.Sign(signer, msg.Data)
			if err != nil {
				return 0, err
			}
			msg.Header = nats.Header{events.SignatureHeader: []string{sig}}
		}
		// A full window stalls the publish until acks free it: wait as long
		// as an ack may take, not the client's default 200 ms.
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID(env.ID), jetstream.WithStallWait(30*time.Second)); err != nil {
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
