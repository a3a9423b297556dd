//go:build regions

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/region/regiontest"
	"shortener/replicator"
)

// natsOf connects to region i's regional server.
func natsOf(t *testing.T, c *cluster, i int) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("nats://"+c.hosts[i]+":4222", nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamInfoOf(js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func lastSeqOf(js jetstream.JetStream, stream string) (uint64, error) {
	info, err := streamInfoOf(js, stream)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// TestClusterMirrorsResumeAfterRestart SIGKILLs us-east, keeps it down for
// 10 s while the others keep writing (heartbeats), restarts it and times
// (from the restart) when the other regions' mirrors of us-east move again
// and when us-east's own mirrors hold what their origins had at the
// restart. With ephemeral mirror consumers the former took 14 to 21 s.
func TestClusterMirrorsResumeAfterRestart(t *testing.T) {
	started := time.Now()
	// SHORTENER_KEEP_LOGS=dir: the regions log at debug level (nats-server's
	// notices included) and their logs are copied to dir.
	var extra []string
	keep := os.Getenv("SHORTENER_KEEP_LOGS")
	if keep != "" {
		extra = []string{"--log-level", "debug"}
	}
	c := newCluster(t, extra...)
	if keep != "" {
		defer func() {
			for _, n := range c.names {
				b, _ := os.ReadFile(filepath.Join(c.dir, n+".log"))
				_ = os.WriteFile(filepath.Join(keep, n+".log"), b, 0o644)
			}
		}()
	}
	t.Logf("cluster up with every mirror live after %s", time.Since(started).Round(time.Millisecond))
	js := []jetstream.JetStream{nil, natsOf(t, c, 1), natsOf(t, c, 2)}
	const down = 10 * time.Second

	c.kill(0)
	time.Sleep(down)
	var held, target [3]uint64 // held[j]: j's mirror of us-east; target[j]: j's own stream
	for _, j := range []int{1, 2} {
		var err error
		if held[j], err = lastSeqOf(js[j], replicator.MirrorName("us-east", c.names[j])); err != nil {
			t.Fatal(err)
		}
		if target[j], err = lastSeqOf(js[j], replicator.StreamName(c.names[j])); err != nil {
			t.Fatal(err)
		}
	}
	restarted := time.Now()
	c.procs[0] = c.spawn(0)
	if c.procs[0] == nil {
		t.FailNow()
	}
	// Others' mirrors of us-east: linked again (a heartbeat or message from
	// the source consumer in the last second, no error) and moved past what
	// they held (us-east writes again once its Open is done). us-east's
	// mirrors of j: hold target[j]. Asked through j's server (us-east's
	// are answered over the gateway once it is up).
	var linked, theirs, ours [3]time.Duration
	deadline := restarted.Add(90 * time.Second)
	for time.Now().Before(deadline) {
		pending := 0
		for _, j := range []int{1, 2} {
			if linked[j] == 0 || theirs[j] == 0 {
				pending++
				if info, err := streamInfoOf(js[j], replicator.MirrorName("us-east", c.names[j])); err == nil {
					if m := info.Mirror; linked[j] == 0 && m != nil && m.Error == nil && m.Active >= 0 && m.Active < time.Second {
						linked[j] = time.Since(restarted)
					}
					if theirs[j] == 0 && info.State.LastSeq > held[j] {
						theirs[j] = time.Since(restarted)
					}
				}
			}
			if ours[j] == 0 {
				pending++
				if seq, err := lastSeqOf(js[j], replicator.MirrorName(c.names[j], "us-east")); err == nil && seq >= target[j] {
					ours[j] = time.Since(restarted)
				}
			}
		}
		if pending == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitReady(0)
	readyAfter := time.Since(restarted)
	// Others' mirrors of us-east must link again within 8 s (they move
	// once us-east writes again, after its Open: logged, not asserted).
	// us-east's own mirrors: about 1 s when their first reset request goes
	// out after the gateways are up, but when it races them it is lost and
	// nats-server waits 5 s for its answer (srcDurableConsumerWaitTime)
	// before the source consumer's heartbeat can end the wait: up to 9 s.
	const theirBound, ourBound = 8 * time.Second, 12 * time.Second
	for _, j := range []int{1, 2} {
		t.Logf("us-east down %s; after its restart: %s's mirror of us-east linked at %s, moved at %s; us-east's mirror of %s caught up at %s",
			down, c.names[j], fmtDur(linked[j]), fmtDur(theirs[j]), c.names[j], fmtDur(ours[j]))
		if linked[j] == 0 || linked[j] > theirBound || theirs[j] == 0 {
			t.Errorf("%s's mirror of us-east linked again after %s and moved after %s, want a link within %s of the restart", c.names[j], fmtDur(linked[j]), fmtDur(theirs[j]), theirBound)
		}
		if ours[j] == 0 || ours[j] > ourBound {
			t.Errorf("us-east's mirror of %s caught up after %s, want within %s of the restart", c.names[j], fmtDur(ours[j]), ourBound)
		}
	}
	t.Logf("us-east ready (/readyz) %s after its restart", readyAfter.Round(time.Millisecond))
}

func fmtDur(d time.Duration) string {
	if d == 0 {
		return "never (90 s)"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// TestClusterMirrorMigration puts eu-west in the state an earlier version
// left: its mirror of us-east created without a source consumer
// (replicator.MirrorConfig, JetStream's ephemeral sourcing) and read by the
// projection's durable consumer at its checkpoint. eu-west is SIGKILLed,
// us-east takes more links, eu-west restarts: the mirror must be replaced
// once by one with a durable source consumer, copied again from #1, the
// projection's consumer re-created right behind its checkpoint (neither
// skipping nor re-applying), every link must resolve in eu-west and the
// three projections must agree.
func TestClusterMirrorMigration(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	var acks []ack
	create := func(i, n int, tag string) {
		for k := 0; k < n; k++ {
			url := fmt.Sprintf("https://example.com/%s/%s/%d", c.names[i], tag, k)
			r, err := c.clients[i].Create(ctx, map[string]any{"url": url})
			if err != nil || r.Status != http.StatusCreated {
				t.Fatalf("create in %s: %v %s", c.names[i], err, r.Raw)
			}
			acks = append(acks, ack{i, r.Str("code"), url})
		}
	}
	for i := range c.names {
		create(i, 20, "before")
	}
	converged(t, c, acks, 30*time.Second)

	jsEU, jsUS := natsOf(t, c, 1), natsOf(t, c, 0)
	mirror, origin := replicator.MirrorName("us-east", "eu-west"), replicator.StreamName("us-east")
	durable := "proj-eu-west"
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	oldSource := sourceConsumerOf(t, sctx, jsEU, mirror)
	// The old state: a mirror without a source consumer, and the
	// projection's consumer on it at the projection's checkpoint.
	if err := jsEU.DeleteStream(sctx, mirror); err != nil {
		t.Fatal(err)
	}
	cp := c.projection(1).Checkpoints[mirror]
	legacy, err := jsEU.CreateStream(sctx, replicator.MirrorConfig("us-east", "eu-west"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.CreateConsumer(sctx, replicator.ConsumerConfig(durable, cp)); err != nil {
		t.Fatal(err)
	}
	regiontest.WaitFor(t, 30*time.Second, func() error {
		last, err := lastSeqOf(jsUS, origin)
		if err != nil {
			return err
		}
		if held, err := lastSeqOf(jsEU, mirror); err != nil || held < last {
			return fmt.Errorf("legacy mirror holds #%d of #%d (%v)", held, last, err)
		}
		return nil
	})
	// The projection may apply a little more from the legacy mirror before
	// the kill: its checkpoint is at least cp.
	cpBeforeKill := c.projection(1).Checkpoints[mirror]
	legacyLast, _ := lastSeqOf(jsEU, mirror)
	c.kill(1)
	create(0, 20, "while-down")
	restarted := time.Now()
	c.restart(1)
	t.Logf("eu-west ready %s after its restart", time.Since(restarted).Round(time.Millisecond))

	s, err := jsEU.Stream(sctx, mirror)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Mirror == nil || info.Config.Mirror.Consumer == nil {
		t.Fatalf("%s was not replaced: mirror config %+v", mirror, info.Config.Mirror)
	}
	newSource := info.Config.Mirror.Consumer.Name
	if newSource == oldSource || !strings.HasPrefix(newSource, mirror+"-") {
		t.Fatalf("source consumer %q after the migration (before: %q)", newSource, oldSource)
	}
	pc, err := s.Consumer(sctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	// Re-created behind the checkpoint it had at the restart: not from #1
	// (re-applying), not past it (skipping).
	start := pc.CachedInfo().Config.OptStartSeq
	if start < cpBeforeKill+1 || start > legacyLast+1 {
		t.Errorf("projection consumer on the new mirror starts at #%d; the checkpoint was between #%d and #%d", start, cpBeforeKill, legacyLast)
	}
	t.Logf("checkpoint of %s: %d when the legacy mirror was made, %d before the kill; projection consumer re-created at #%d", mirror, cp, cpBeforeKill, start)

	converged(t, c, acks, 60*time.Second)
	regiontest.WaitFor(t, 30*time.Second, func() error {
		last, err := lastSeqOf(jsUS, origin)
		if err != nil {
			return err
		}
		info, err := s.Info(sctx)
		if err != nil {
			return err
		}
		if info.State.FirstSeq != 1 || info.State.LastSeq < last || info.State.Msgs != info.State.LastSeq {
			return fmt.Errorf("new mirror holds #%d..#%d (%d messages), origin at #%d", info.State.FirstSeq, info.State.LastSeq, info.State.Msgs, last)
		}
		if p := c.projection(1); p.Checkpoints[mirror] < last || p.Skipped != 0 {
			return fmt.Errorf("eu-west's projection at #%d of %s (origin #%d), %d skipped", p.Checkpoints[mirror], mirror, last, p.Skipped)
		}
		return nil
	})
	// The legacy mirror's source consumer (ephemeral) goes by itself; the
	// earlier durable one is deleted once the new one exists.
	regiontest.WaitFor(t, 30*time.Second, func() error {
		o, err := jsUS.Stream(sctx, origin)
		if err != nil {
			return err
		}
		var mine []string
		names := o.ConsumerNames(sctx)
		for n := range names.Name() {
			if strings.HasPrefix(n, mirror+"-") {
				mine = append(mine, n)
			}
		}
		if len(mine) != 1 || mine[0] != newSource {
			return fmt.Errorf("source consumers of %s on %s: %v, want only %s", mirror, origin, mine, newSource)
		}
		return nil
	})
	log, _ := os.ReadFile(filepath.Join(c.dir, "eu-west.log"))
	if n := strings.Count(string(log), "mirror replaced"); n != 1 {
		t.Errorf("eu-west logged %d mirror replacements, want 1", n)
	}
}

func sourceConsumerOf(t *testing.T, ctx context.Context, js jetstream.JetStream, mirror string) string {
	t.Helper()
	s, err := js.Stream(ctx, mirror)
	if err != nil {
		t.Fatal(err)
	}
	m := s.CachedInfo().Config.Mirror
	if m == nil || m.Consumer == nil {
		t.Fatalf("%s has no durable source consumer: %+v", mirror, m)
	}
	return m.Consumer.Name
}
