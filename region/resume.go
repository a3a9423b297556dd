package region

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"shortener/replicator"
)

// gatewaysBothWaysWait bounds how long a starting region waits for every
// peer to have dialled its regional server back. A peer redials a lost
// gateway every second (nats-server's gateway connect delay, which has no
// option), so a peer that is up has done so within about 1 s of the
// server's start; one that has not after this is taken for down.
const gatewaysBothWaysWait = 3 * time.Second

// jetStreamHealthyWait bounds how long a JetStream restarted by
// resumeMirrors may take to be healthy again (it is not when the
// supercluster has no meta leader: the region then starts anyway).
const jetStreamHealthyWait = 5 * time.Second

// resumeMirrors gets the mirrors of a restarted regional server copying
// again at once, through nats-server's public API only.
//
// A mirror asks its origin for its consumer about 150 ms after JetStream
// recovers it, which nats-server does before it even listens for
// gateways; the origin's answer comes back over the origin's gateway to
// this server, which the origin redials only up to 1 s later. The answer
// is lost, and nats-server waits for it: 30 s and a 10 s backoff for a
// mirror's ephemeral consumer (ready ~42 s after the start), 5 s and then
// the durable consumer's next heartbeat for the durable ones regions make
// now (ready ~6 s after the start). Nothing public makes a mirror ask
// again (a mirror's configuration cannot be updated, and an R1 stream has
// no leader to move), but restarting JetStream does: its streams are
// recovered again and their mirrors ask again, now over gateways that are
// up both ways. The durable consumers on this server that feed the
// peers' mirrors survive it.
//
// So: wait until every peer's regional cluster is connected both ways and
// every peer's global member has dialled this server (or
// gatewaysBothWaysWait passed), then, if a durable link mirror of a
// connected peer has not heard from it (idleMirrors), restart the
// server's JetStream (ShutdownJetStream keeps its state; EnableJetStream
// with the configuration Start builds) and wait until it is healthy.
// Nothing of this instance's application runs on the server yet; a second
// instance of the region (docs/deploy.md), connected to it, finds
// JetStream away for that moment and retries. A fresh region has no
// mirrors yet: it only waits, so that its first requests are answered.
func (r *Region) resumeMirrors(regional serverSpec, gws map[string][]string) error {
	if len(r.cfg.Peers) == 0 || len(r.servers) == 0 {
		return nil
	}
	s := r.servers[0]
	var peers []string
	for _, p := range r.cfg.Peers {
		peers = append(peers, p.Name)
	}
	start := time.Now()
	up, globals := bothWays(s, peers)
	for (len(up) < len(peers) || globals < len(peers)+1) && time.Since(start) < gatewaysBothWaysWait {
		time.Sleep(10 * time.Millisecond)
		up, globals = bothWays(s, peers)
	}
	waited := time.Since(start).Round(time.Millisecond)
	idle := idleMirrors(s, up)
	if len(idle) == 0 || len(up) == 0 {
		r.log.Info("gateways", "both_ways", up, "global_inbound", globals, "waited", waited, "idle_mirrors", idle)
		return nil
	}
	r.log.Info("restarting JetStream so that its mirrors ask their origins again, over gateways up both ways",
		"both_ways", up, "global_inbound", globals, "idle_mirrors", idle, "waited", waited)
	if err := s.ShutdownJetStream(); err != nil {
		return fmt.Errorf("restart jetstream: %w", err)
	}
	if err := s.EnableJetStream(jetStreamConfig(natsOptions(r.cfg, regional, gws))); err != nil {
		return fmt.Errorf("restart jetstream: %w", err)
	}
	// Until its meta layer has caught up and its streams are recovered,
	// the server leaves JetStream API requests about them unanswered: the
	// application's first lookups would wait out their timeouts (3 s).
	restarted := time.Now()
	health := s.Healthz(nil)
	for health.Status != "ok" && time.Since(restarted) < jetStreamHealthyWait {
		time.Sleep(10 * time.Millisecond)
		health = s.Healthz(nil)
	}
	r.log.Info("jetstream restarted", "took", time.Since(restarted).Round(time.Millisecond), "health", health.Status, "error", health.Error)
	return nil
}

// bothWays returns the clusters of peers that s has both an outbound and
// an inbound gateway connection with, and how many members of the global
// cluster have dialled s. Each server answers over its own gateway: the
// JetStream meta leader, which answers a consumer create, may be a global
// member, and until it has dialled this server back the application's
// first consumer (the repair's read of its own stream) waited out its
// timeout.
func bothWays(s *server.Server, peers []string) (up []string, globals int) {
	gz, err := s.Gatewayz(&server.GatewayzOptions{})
	if err != nil {
		return nil, 0
	}
	for _, g := range gz.InboundGateways[GlobalCluster] {
		if g != nil && g.Connection != nil {
			globals++
		}
	}
	for _, p := range peers {
		out := gz.OutboundGateways[p]
		if out == nil || out.Connection == nil {
			continue
		}
		if slices.ContainsFunc(gz.InboundGateways[p], func(g *server.RemoteGatewayz) bool { return g != nil && g.Connection != nil }) {
			up = append(up, p)
		}
	}
	return up, globals
}

// idleMirrors lists the durable link mirrors on s whose origin is one of
// up (connected both ways) and that have not heard from it since
// JetStream started: the ones a JetStream restart gets going. A mirror of
// a region that is down stays idle whatever is done, a click mirror or
// one made before durable sourcing is not worth the restart (the peers'
// ephemeral mirrors of this server's streams would stall on it).
func idleMirrors(s *server.Server, up []string) []string {
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Config: true})
	if err != nil {
		return nil
	}
	origins := make(map[string]bool, len(up))
	for _, p := range up {
		origins[replicator.StreamName(p)] = true
	}
	var idle []string
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			m := st.Mirror
			if m == nil || m.Active >= 0 || !origins[m.Name] || st.Config == nil || st.Config.Mirror == nil || st.Config.Mirror.Consumer == nil {
				continue
			}
			idle = append(idle, st.Name)
		}
	}
	return idle
}

// jetStreamConfig is the JetStream configuration Server.Start builds from
// opts (server/server.go, Start), for enabling JetStream again.
func jetStreamConfig(opts *server.Options) *server.JetStreamConfig {
	return &server.JetStreamConfig{
		StoreDir:     opts.StoreDir,
		SyncInterval: opts.SyncInterval,
		SyncAlways:   opts.SyncAlways,
		Strict:       !opts.NoJetStreamStrict,
		MaxMemory:    opts.JetStreamMaxMemory,
		MaxStore:     opts.JetStreamMaxStore,
		Domain:       opts.JetStreamDomain,
		CompressOK:   true,
		UniqueTag:    opts.JetStreamUniqueTag,
	}
}
