package region

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"shortener/projections"
	"shortener/replicator"
)

// Region is one running region: NATS, the projection and the HTTP API.
type Region struct {
	cfg     Config
	log     *slog.Logger
	keys    *keyring
	caching redirectCaching
	misses  *missLimiter // nil: no limit
	targets *targetGuard

	closing sync.Mutex       // held by Close: Run's own Close and a caller's may overlap
	servers []*server.Server // the embedded regional and global servers; none with an external NATS
	// inFlight counts the requests being served, for the drain at shutdown.
	inFlight atomic.Int64
	nc       *nats.Conn
	js       *replicator.Conn
	stream   string

	events      *replicator.Log
	aliases     *replicator.Aliases
	monitor     *replicator.Monitor
	replication *replicator.Replication
	store       *projections.Store
	feed        *replicator.Feed
	projector   *projections.Projector

	clicks *clicks // nil with DisableClicks
	faults *faults // fault injection (region/faults.go)

	http     *http.Server
	listener net.Listener
	opened   time.Time
	catchup  catchUp
	tel      *telemetry // metrics, spans, request logs (region/metrics.go)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
}

// New validates cfg and returns a Region. It does no I/O.
func New(cfg Config) (*Region, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	keys, err := newKeyring(cfg.APIKeyHashes)
	if err != nil {
		return nil, err
	}
	f := &faults{}
	if cfg.FaultInjection {
		cfg.Now = f.skewedClock(cfg.Now)
	}
	return &Region{cfg: cfg, keys: keys, caching: newRedirectCaching(cfg.RedirectMaxAge), misses: newMissLimiter(cfg.Limits), targets: newTargetGuard(cfg.Targets, ownHosts(cfg)...), log: cfg.Logger.With("region", cfg.Name), faults: f,
		stream: replicator.StreamName(cfg.Name), errc: make(chan error, 4)}, nil
}

// Config returns the region's configuration with defaults filled in.
func (r *Region) Config() Config { return r.cfg }

// Store returns the region's projection.
func (r *Region) Store() *projections.Store { return r.store }

// Handler returns the handler the region's HTTP server serves (after
// Open): its Echo application with all its middleware, for measuring a
// request in process (BenchmarkRedirectCacheHit).
func (r *Region) Handler() http.Handler { return r.http.Handler }

// Addr returns the address the HTTP server listens on.
func (r *Region) Addr() string { return r.listener.Addr().String() }

// NATSURL returns the client URL of the NATS the region uses.
func (r *Region) NATSURL() string {
	if r.cfg.NATSURL != "" {
		return r.cfg.NATSURL
	}
	host := r.cfg.NATS.Host
	if l := r.cfg.NATS.ClientListen; l != "" && !isUnspecified(l) {
		host = l
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(r.cfg.NATS.ClientPort))
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// Open starts NATS (unless external), creates the region's stream, opens the
// projection and its feed, starts the projector and binds the HTTP listener.
// It returns once all of that is done; the region serves after Run is called.
func (r *Region) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	start := time.Now()
	if err := r.targets.open(); err != nil {
		return err
	}
	if r.cfg.NATSURL == "" {
		regional, global := natsServers(r.cfg)
		gws := gatewayMap(r.cfg)
		for _, spec := range []serverSpec{regional, global} {
			ns, err := startNATS(natsOptions(r.cfg, spec, gws), r.log)
			if err != nil {
				return err
			}
			r.servers = append(r.servers, ns)
		}
		if err := r.resumeMirrors(regional, gws); err != nil {
			return err
		}
	}
	// The application talks to its own embedded server in process: no TCP
	// and no TLS on that hop (nats-server does not require TLS of an
	// in-process connection), still as the region's user with its
	// permissions. An external NATS is dialled over TLS.
	copts := r.cfg.NATSClientSecrets.NATSOptions()
	if len(r.servers) > 0 {
		copts = append(r.cfg.NATSClientSecrets.NkeyOptions(), nats.InProcessServer(r.servers[0]))
	}
	r.nc, err = nats.Connect(r.NATSURL(), append(copts,
		nats.Name("shortener "+r.cfg.Name+"/"+r.cfg.Instance),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", r.NATSURL(), err)
	}
	if r.js, err = replicator.Connect(r.nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := replicator.EnsureStream(ctx, r.js, r.cfg.Name); err != nil {
		return err
	}
	r.events = replicator.NewLog(r.js, r.cfg.Name, r.cfg.signer())
	streams := []string{r.stream}
	var peers []string
	for _, p := range r.cfg.Peers {
		if err := replicator.EnsureMirror(ctx, r.js, p.Name, r.cfg.Name, len(r.servers) > 0, r.log); err != nil {
			return err
		}
		streams = append(streams, replicator.MirrorName(p.Name, r.cfg.Name))
		peers = append(peers, p.Name)
	}
	if err := r.repairStream(ctx, peers); err != nil {
		return err
	}
	r.aliases = replicator.NewAliases(r.js, 1+len(peers))
	r.monitor = replicator.NewMonitor(r.js, r.cfg.Name, peers, r.cfg.Now)
	r.replication = replicator.NewReplication(r.js, r.cfg.Name, peers)
	if err := os.RemoveAll(r.checkpointsDir()); err != nil { // left by a crash during a backup
		return err
	}
	r.store, err = projections.Open(filepath.Join(r.cfg.DataDir, "projection"), r.cfg.projection(r.log.With("component", "projection")))
	if err != nil {
		return err
	}
	if r.cfg.FaultInjection {
		r.store.SetWriteFault(r.storeFault)
	}
	r.feed = replicator.NewFeed(r.js, "proj-"+r.cfg.Instance)
	if err := r.feed.Open(ctx, streams, r.store.Checkpoint); err != nil {
		return err
	}
	r.projector = projections.NewProjector(r.store, r.feed, r.log.With("component", "projector"))
	if !r.cfg.DisableClicks {
		if err := r.openClicks(ctx, peers); err != nil {
			return err
		}
	}
	if r.listener, err = net.Listen("tcp", r.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on %s: %w", r.cfg.HTTPAddr, err)
	}
	if r.cfg.HTTPCert != nil {
		r.listener = tls.NewListener(r.listener, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*r.cfg.HTTPCert},
			NextProtos: []string{"h2", "http/1.1"}})
	}
	handler, err := r.routes()
	if err != nil {
		return err
	}
	r.http = &http.Server{Handler: r.countInFlight(handler), ConnState: r.connState, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: 2 * time.Minute}

	r.opened = r.cfg.Now()
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.goRun(bg, "projector", r.projector.Run)
	r.goRun(bg, "alias register", r.aliases.Run)
	r.goRun(bg, "lag monitor", r.monitor.Run)
	r.goRun(bg, "mirror source consumers", func(ctx context.Context) error {
		return replicator.EnsureSourceConsumers(ctx, r.js, peers, r.cfg.Name, r.log)
	})
	r.goRun(bg, "replication", r.replication.Run)
	r.goRun(bg, "alias claims", r.reconcileClaimsLoop)
	if r.clicks != nil {
		r.goRun(bg, "click recorder", r.clicks.flush)
		r.goRun(bg, "click projector", r.clicks.project)
	}
	r.goRun(bg, "blocklist", r.watchBlocklist)
	r.goRun(bg, "heartbeats", func(ctx context.Context) error {
		return replicator.Heartbeats(ctx, r.events, r.cfg.Name, time.Second, r.cfg.Now)
	})
	r.log.Info("region open", "http", r.listener.Addr().String(), "nats", r.NATSURL(),
		"stream", r.stream, "fsync", r.cfg.Fsync, "applied", r.store.Checkpoint(r.stream), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// maxHeaderBytes bounds a request's header (net/http answers 431 beyond
// it, plus its own 4 KiB of slack): a redirect or an API call needs a few
// hundred bytes, and net/http's default of 1 MiB per request lets a few
// thousand connections hold gigabytes.
const maxHeaderBytes = 16 << 10

// repairStream copies back into the region's stream what a peer's mirror
// of it holds beyond it (a lost or replaced JetStream disk, a tail lost
// with fsync off), before the region writes anything: otherwise its next
// events would take sequences the mirrors already hold, and they would
// ignore them (docs/runbooks/procedures/lost-data-directory.md).
func (r *Region) repairStream(ctx context.Context, peers []string) error {
	if len(peers) == 0 {
		return nil
	}
	start := time.Now()
	rep, err := replicator.RepairFromMirrors(ctx, r.js, r.cfg.Name, peers, replicator.RepairOptions{Log: r.log.With("component", "repair")})
	if err != nil {
		return fmt.Errorf("%w (see docs/runbooks/procedures/lost-data-directory.md)", err)
	}
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case rep.Copied > 0:
		r.log.Warn("the region's stream was repaired from a mirror", "stream", rep.Stream, "had", rep.Had, "copied", rep.Copied,
			"from", rep.Source, "mirrors", rep.Mirrors, "unasked", rep.Unasked, "took", took)
	case len(rep.Unasked) > 0:
		// If this region lost its data, what it writes now may never reach
		// the mirrors that did not answer.
		r.log.Warn("the region's stream holds everything the mirrors that answered hold; some did not answer", "stream", rep.Stream,
			"last_seq", rep.Had, "mirrors", rep.Mirrors, "unasked", rep.Unasked, "took", took)
	default:
		r.log.Info("the region's stream holds everything its mirrors hold", "stream", rep.Stream, "last_seq", rep.Had,
			"mirrors", rep.Mirrors, "took", took)
	}
	return nil
}

// goRun runs fn in the background until Close; an error from it stops the
// region (Run returns it).
func (r *Region) goRun(ctx context.Context, what string, fn func(context.Context) error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := fn(ctx); err != nil {
			select {
			case r.errc <- fmt.Errorf("%s: %w", what, err):
			default:
			}
		}
	}()
}

// WaitReady polls readiness until the region is ready or ctx ends.
func (r *Region) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		rd := r.Ready(ctx)
		if rd.Ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("region %s not ready: %w (%v)", r.cfg.Name, ctx.Err(), rd.Checks)
		case <-t.C:
		}
	}
}

// countInFlight keeps inFlight: the requests a drain must wait for.
func (r *Region) countInFlight(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.inFlight.Add(1)
		defer r.inFlight.Add(-1)
		h.ServeHTTP(w, req)
	})
}

// drain stops taking connections and requests and waits up to limit for
// the requests in flight. Connections with no request in flight (idle, or
// opened and never used: an HTTP client dials ahead and parks spare
// connections) are closed as soon as nothing is in flight; http.Server's
// Shutdown alone would wait 5 s for the unused ones. Only requests still
// being served after limit are an error.
func (r *Region) drain(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.http.Shutdown(ctx) }()
	quiet := 0
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			n := r.inFlight.Load()
			_ = r.http.Close()
			if n > 0 {
				return fmt.Errorf("%d requests still in flight after %v of draining, cut off: %w", n, limit, err)
			}
			return nil
		case <-tick.C:
			if r.inFlight.Load() != 0 {
				quiet = 0
			} else if quiet++; quiet == 2 {
				cancel() // nothing in flight twice in a row: close what is left
			}
		}
	}
}

// Run serves HTTP until ctx ends, then shuts down gracefully: in-flight
// requests get up to 5 s to finish (drain).
func (r *Region) Run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- r.http.Serve(r.listener) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	case err = <-r.errc:
	}
	if serr := r.drain(5 * time.Second); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, r.Close())
}

// Close stops everything Open started. It is safe to call more than once,
// and from several goroutines at once (Run closes the region when it
// returns).
func (r *Region) Close() error {
	r.closing.Lock()
	defer r.closing.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	if r.feed != nil {
		r.feed.Close()
		r.feed = nil
	}
	if r.clicks != nil {
		r.clicks.stop() // the projector may be part-way through a commit
	}
	r.wg.Wait()
	if r.clicks != nil {
		r.clicks.close() // after the projector stopped: Pebble panics on use after Close
		r.clicks = nil
	}
	if r.listener != nil {
		r.listener.Close() // already closed after Run's Shutdown; harmless
	}
	if r.nc != nil {
		r.nc.Close()
	}
	var err error
	r.tel.close() // its gauges read the store
	if r.store != nil {
		err = r.store.Close()
		r.store = nil
	}
	for _, ns := range r.servers {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	r.servers = nil
	return err
}
