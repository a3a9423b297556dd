package region_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/projections"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// jetStreamAs is a plain JetStream client connected to natsURL as user,
// for what a test does behind the region's back: forged events, a look at
// a stream. (Outside tests only replicator talks JetStream.)
func jetStreamAs(t *testing.T, natsURL, user string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(regiontest.NATS(t, natsURL, user))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// forge publishes e on subject straight into a region's NATS, as a user
// allowed to publish there can, bypassing the API; signed by signer, as a
// region's own application (or a thief of its key) would, unless nil.
func forge(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string, e events.Envelope, signer events.Signer) uint64 {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: e.Encode()}
	if signer != nil {
		sig, err := events.Sign(signer, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		msg.Header = nats.Header{events.SignatureHeader: []string{sig}}
	}
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		t.Fatalf("publish forged %s on %s: %v", e.Type, subject, err)
	}
	return ack.Sequence
}

func forged(t *testing.T, typ events.Type, code, origin string, at time.Time, payload any) events.Envelope {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	// Built by hand: events.New would refuse nothing here, but a forger
	// does not go through it anyway.
	return events.Envelope{ID: events.NewID(at), Type: typ, Schema: events.SchemaVersion, Code: code, Origin: origin,
		Time: at.UTC(), Actor: "stranger", Payload: raw}
}

// TestForgedEventsAreRefusedEverywhere: events written straight to a
// region's stream (wrong origin, a code that is not its subject's, a create
// of another region's generated code, a javascript: URL, a URL not in its
// stored form) are refused at the fold in every region and in an audit
// replay, counted by reason, while a legitimate update and delete of the
// region's links from another region (a failover) fold; the digests stay
// equal. Negative control: the same records folded unchecked would have
// served the forgeries.
func TestForgedEventsAreRefusedEverywhere(t *testing.T) {
	regs := regiontest.StartCluster(t, regiontest.ClusterConfigs(t.TempDir(), "us-east", "eu-west", "ap-south"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	us, eu := regs[0], regs[1]

	// Two links created in us-east, seen everywhere.
	var codes []string
	for i := 0; i < 2; i++ {
		resp, err := regiontest.NewClient(us.URL).Create(ctx, map[string]any{"url": fmt.Sprintf("https://example.com/%d", i)})
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("create: %v %+v", err, resp)
		}
		codes = append(codes, resp.Str("code"))
	}
	if codes[0][0] != '1' {
		t.Fatalf("us-east generated %s, want its digit 1", codes[0])
	}
	redirect := func(r *regiontest.Running, code string) (int, string) {
		resp, err := regiontest.NewClient(r.URL).Do(ctx, http.MethodGet, "/"+code, nil)
		if err != nil {
			return 0, err.Error()
		}
		return resp.Status, resp.Header.Get("Location")
	}
	for _, r := range regs {
		regiontest.WaitFor(t, 30*time.Second, func() error {
			for i, c := range codes {
				if st, loc := redirect(r, c); st != http.StatusFound || loc != fmt.Sprintf("https://example.com/%d", i) {
					return fmt.Errorf("%s: /%s answers %d %q", r.Config().Name, c, st, loc)
				}
			}
			return nil
		})
	}

	// The forgeries, into us-east's stream through its NATS client port.
	js := jetStreamAs(t, us.NATSURL(), secrets.RegionUser("us-east"))
	rc := regiontest.Replicator(t, us.NATSURL(), secrets.RegionUser("us-east"))
	future := time.Now().Add(time.Hour) // so that, folded, each would win over the real events
	evil := "https://evil.example/"
	// Signed with us-east's own key: a region's application (or whoever
	// holds its key) signs whatever it writes; the checks below must catch
	// each forgery on its own.
	usKey := regiontest.Signer("us-east")
	forge(ctx, t, js, replicator.Subject("us-east", codes[0]), // origin: eu-west's event in us-east's stream
		forged(t, events.TypeLinkUpdated, codes[0], "eu-west", future, events.LinkUpdated{URL: &evil}), usKey)
	forge(ctx, t, js, replicator.Subject("us-east", "decoy-code"), // subject: an event about codes[0] on another code's subject
		forged(t, events.TypeLinkUpdated, codes[0], "us-east", future, events.LinkUpdated{URL: &evil}), usKey)
	forge(ctx, t, js, replicator.Subject("us-east", "2Forged0"), // code_owner: eu-west's digit, created by us-east
		forged(t, events.TypeLinkCreated, "2Forged0", "us-east", future, events.LinkCreated{URL: evil, RedirectStatus: 302}), usKey)
	forge(ctx, t, js, replicator.Subject("us-east", "forged-js"), // url: javascript:
		forged(t, events.TypeLinkCreated, "forged-js", "us-east", future, events.LinkCreated{URL: "javascript:alert(document.cookie)", RedirectStatus: 302}), usKey)
	forge(ctx, t, js, replicator.Subject("us-east", "forged-case"), // url: not its stored form
		forged(t, events.TypeLinkCreated, "forged-case", "us-east", future, events.LinkCreated{URL: "HTTPS://EVIL.example/", RedirectStatus: 302}), usKey)
	wantRejected := map[events.Reason]uint64{events.ReasonOrigin: 1, events.ReasonSubject: 1, events.ReasonCodeOwner: 1, events.ReasonURL: 2}

	// A failover: eu-west updates one of us-east's links and deletes the
	// other, through its API.
	moved := "https://example.com/moved"
	if resp, err := regiontest.NewClient(eu.URL).Do(ctx, http.MethodPatch, "/api/v1/links/"+codes[0], map[string]any{"url": moved}); err != nil || resp.Status != http.StatusOK {
		t.Fatalf("update from eu-west: %v %+v", err, resp)
	}
	if resp, err := regiontest.NewClient(eu.URL).Do(ctx, http.MethodDelete, "/api/v1/links/"+codes[1], nil); err != nil || resp.Status != http.StatusNoContent {
		t.Fatalf("delete from eu-west: %v %+v", err, resp)
	}

	for _, r := range regs {
		name := r.Config().Name
		regiontest.WaitFor(t, 30*time.Second, func() error {
			if got := r.Store().Rejected(); !maps.Equal(got, wantRejected) {
				return fmt.Errorf("%s: rejected %v, want %v", name, got, wantRejected)
			}
			if st, loc := redirect(r, codes[0]); st != http.StatusFound || loc != moved {
				return fmt.Errorf("%s: /%s answers %d %q, want the failover's update", name, codes[0], st, loc)
			}
			if st, _ := redirect(r, codes[1]); st != http.StatusGone {
				return fmt.Errorf("%s: /%s answers %d, want 410 after the failover's delete", name, codes[1], st)
			}
			return nil
		})
		for _, c := range []string{"2Forged0", "forged-js", "forged-case"} {
			if st, loc := redirect(r, c); st != http.StatusNotFound {
				t.Errorf("%s: forged /%s answers %d %q, want 404", name, c, st, loc)
			}
		}
		if got := r.Regions(ctx).Rejected; !maps.Equal(got, wantRejected) {
			t.Errorf("%s: GET /api/v1/regions says rejected %v", name, got)
		}
	}
	var digests []string
	regiontest.WaitFor(t, 30*time.Second, func() error {
		digests = digests[:0]
		for _, r := range regs {
			d, err := r.Store().Digest()
			if err != nil {
				return err
			}
			digests = append(digests, d)
		}
		if digests[0] != digests[1] || digests[0] != digests[2] {
			return fmt.Errorf("digests differ: %v", digests)
		}
		return nil
	})

	// An audit replay of what eu-west holds refuses the same records and
	// has its digest; the same records folded unchecked serve the forgeries.
	copies, err := replicator.DiscoverLog(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	held := copies.HeldBy("eu-west")
	if len(held) != 3 {
		t.Fatalf("eu-west holds %v, want its stream and two mirrors", held)
	}
	replayHeld := func(opts projections.ReplayOptions) (*projections.Store, projections.ReplayStats) {
		rp, err := projections.NewReplay(t.TempDir(), opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range held {
			cp := eu.Store().Checkpoint(c.Stream)
			if err := replicator.Read(ctx, rc, c.Stream, replicator.ReadOptions{To: cp}, rp.Apply); err != nil {
				t.Fatal(err)
			}
		}
		st := rp.Stats()
		s, err := rp.Finish()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, st
	}
	checked, stats := replayHeld(projections.ReplayOptions{Rules: events.Rules{Digits: eu.Config().Digits, Keys: regiontest.KeyRing()}})
	if !maps.Equal(stats.Rejected, wantRejected) {
		t.Errorf("replay rejected %v, want %v", stats.Rejected, wantRejected)
	}
	if d, _ := checked.Digest(); d != digests[1] {
		t.Errorf("replay digest %s, eu-west's %s", d, digests[1])
	}
	unchecked, stats := replayHeld(projections.ReplayOptions{Unchecked: true})
	if stats.Invalid != 0 {
		t.Errorf("unchecked replay refused %d records", stats.Invalid)
	}
	for code, want := range map[string]string{codes[0]: evil, "2Forged0": evil, "forged-js": "javascript:alert(document.cookie)", "forged-case": "HTTPS://EVIL.example/"} {
		if e, found, _ := unchecked.Lookup(code); !found || !e.Servable(time.Now()) || e.URL() != want {
			t.Errorf("negative control: unchecked, %s would serve %+v (found %v), want %q", code, e, found, want)
		}
	}
}
