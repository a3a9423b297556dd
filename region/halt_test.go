package region_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"shortener/events"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// TestNewerSchemaStopsItsStreamUntilUpgrade: an event of a newer schema,
// written straight to us-east's stream, stops that stream in eu-west's
// projection (a valid event after it is not folded, nothing is skipped),
// while eu-west keeps serving what it had and folding its own stream, and
// says so (GET /api/v1/regions, /readyz, the halted gauge's source). After
// an "upgrade" (eu-west reopened on the same data with a projection that
// reads schema 2) the stream resumes at that event and folds it and what
// followed.
func TestNewerSchemaStopsItsStreamUntilUpgrade(t *testing.T) {
	cfgs := regiontest.ClusterConfigs(t.TempDir(), "us-east", "eu-west")
	regs := regiontest.StartCluster(t, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	us, eu := regs[0], regs[1]
	mirror := replicator.MirrorName("us-east", "eu-west")

	redirect := func(base, code string) (int, string) {
		resp, err := regiontest.NewClient(base).Do(ctx, http.MethodGet, "/"+code, nil)
		if err != nil {
			return 0, err.Error()
		}
		return resp.Status, resp.Header.Get("Location")
	}
	before, err := regiontest.NewClient(us.URL).Create(ctx, map[string]any{"url": "https://example.com/before"})
	if err != nil || before.Status != http.StatusCreated {
		t.Fatalf("create: %v %+v", err, before)
	}
	regiontest.WaitFor(t, 30*time.Second, func() error {
		if st, _ := redirect(eu.URL, before.Str("code")); st != http.StatusFound {
			return fmt.Errorf("eu-west: /%s answers %d", before.Str("code"), st)
		}
		return nil
	})

	js := jetStreamAs(t, us.NATSURL(), secrets.RegionUser("us-east"))
	future := forged(t, events.TypeLinkCreated, "from-the-future", "us-east", time.Now(), events.LinkCreated{URL: "https://example.com/future", RedirectStatus: 302})
	future.Schema = 2
	haltSeq := forge(ctx, t, js, replicator.Subject("us-east", "from-the-future"), future, regiontest.Signer("us-east"))
	after := forged(t, events.TypeLinkCreated, "after-the-halt", "us-east", time.Now(), events.LinkCreated{URL: "https://example.com/after", RedirectStatus: 302})
	forge(ctx, t, js, replicator.Subject("us-east", "after-the-halt"), after, regiontest.Signer("us-east"))

	regiontest.WaitFor(t, 30*time.Second, func() error {
		h, ok := eu.Store().HaltedAt(mirror)
		if !ok || h.Seq != haltSeq || h.Schema != 2 {
			return fmt.Errorf("eu-west: %s halted %+v (%v), want at #%d schema 2", mirror, h, ok, haltSeq)
		}
		return nil
	})
	// Stopped, not skipped: the checkpoint stays before the event, and
	// heartbeats that keep coming after it are not applied either.
	if cp := eu.Store().Checkpoint(mirror); cp != haltSeq-1 {
		t.Fatalf("eu-west: checkpoint of %s %d, want %d (just before the halt)", mirror, cp, haltSeq-1)
	}
	if n := eu.Store().Skipped(); n != 0 {
		t.Fatalf("eu-west skipped %d records, want none", n)
	}
	for _, code := range []string{"from-the-future", "after-the-halt"} {
		if st, _ := redirect(eu.URL, code); st != http.StatusNotFound {
			t.Fatalf("eu-west: /%s answers %d before the upgrade, want 404", code, st)
		}
	}
	// Still serving what it had, and its own stream goes on.
	if st, loc := redirect(eu.URL, before.Str("code")); st != http.StatusFound || loc != "https://example.com/before" {
		t.Fatalf("eu-west: /%s answers %d %q while halted", before.Str("code"), st, loc)
	}
	own, err := regiontest.NewClient(eu.URL).Create(ctx, map[string]any{"url": "https://example.com/own"})
	if err != nil || own.Status != http.StatusCreated {
		t.Fatalf("eu-west create while a mirror is halted: %v %+v", err, own)
	}
	if st, _ := redirect(eu.URL, own.Str("code")); st != http.StatusFound {
		t.Fatalf("eu-west: its own new link answers %d", st)
	}
	if h, ok := eu.Regions(ctx).Halted[mirror]; !ok || h.Seq != haltSeq {
		t.Fatalf("GET /api/v1/regions: halted %+v", eu.Regions(ctx).Halted)
	}
	rd := eu.Ready(ctx)
	if !strings.Contains(rd.Checks["streams"], mirror) || !strings.Contains(rd.Checks["streams"], "upgrade") {
		t.Fatalf("/readyz does not say why: %+v", rd)
	}
	// The mirror holds more than the projection applied, and keeps getting
	// heartbeats: the projection still does not move.
	regiontest.WaitFor(t, 30*time.Second, func() error {
		s, err := js.Stream(ctx, mirror)
		if err != nil {
			return err
		}
		if s.CachedInfo().State.LastSeq < haltSeq+3 {
			return fmt.Errorf("%s holds up to #%d", mirror, s.CachedInfo().State.LastSeq)
		}
		return nil
	})
	if cp := eu.Store().Checkpoint(mirror); cp != haltSeq-1 {
		t.Fatalf("eu-west: checkpoint of %s moved to %d while halted", mirror, cp)
	}

	// The upgrade: eu-west restarted on its data with a projection that
	// reads schema 2.
	eu.Stop(t)
	cfg := cfgs[1]
	cfg.MaxSchema = 2
	up := regiontest.Start(t, cfg)
	regiontest.WaitFor(t, 30*time.Second, func() error {
		for code, want := range map[string]string{"from-the-future": "https://example.com/future", "after-the-halt": "https://example.com/after"} {
			if st, loc := redirect(up.URL, code); st != http.StatusFound || loc != want {
				return fmt.Errorf("upgraded eu-west: /%s answers %d %q", code, st, loc)
			}
		}
		if _, ok := up.Store().HaltedAt(mirror); ok {
			return fmt.Errorf("still halted")
		}
		return nil
	})
	if cp := up.Store().Checkpoint(mirror); cp < haltSeq+1 {
		t.Fatalf("upgraded eu-west: checkpoint of %s %d, want past #%d", mirror, cp, haltSeq+1)
	}
}
