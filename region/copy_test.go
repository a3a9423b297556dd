package region_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// TestCopiedEventIsRefused: NATS lets any user that may create a consumer
// name its deliver subject, and the server then publishes what the consumer
// reads on that subject, whatever the user may publish itself; the copy
// keeps the subject its message was stored under. The bench user (reads the
// log, writes its scratch streams) makes a scratch stream that stores under
// links.us-east.<code> (a subject transform), puts an event of its own
// making for us-east there and has a push consumer deliver it: it lands in
// us-east's stream with the right origin and subject, and would be served
// (the negative control: checked without keys, it passes every other
// check). With signatures it is refused at the fold in every region,
// counted under "signature", and never served.
func TestCopiedEventIsRefused(t *testing.T) {
	regs := regiontest.StartCluster(t, regiontest.ClusterConfigs(t.TempDir(), "us-east", "eu-west"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	us := regs[0]
	const code = "copied-in"
	evil := "https://evil.example/copied"

	// The bench user's scratch stream, in eu-west, holding the forgery
	// signed with the bench user's own key (all it has). (A push consumer
	// delivers only where there is interest; us-east's stream, across the
	// gateway, is that interest.)
	nc, err := nats.Connect(regs[1].NATSURL(), regiontest.NATSOptions("bench")...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A push consumer's copy keeps the subject its message was stored
	// under, and only us-east's stream takes links.us-east.>; but a stream
	// may transform the subjects it stores under, to any subject.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.copy"}, Storage: jetstream.MemoryStorage,
		SubjectTransform: &jetstream.SubjectTransformConfig{Source: "bench.copy", Destination: replicator.Subject("us-east", code)}}); err != nil {
		t.Fatalf("bench creates its scratch stream: %v", err)
	}
	benchKey, err := secrets.LoadClient("bench", secrets.Paths{Dir: regiontest.SecretsDir()}.Resolve("bench"))
	if err != nil {
		t.Fatal(err)
	}
	e := forged(t, events.TypeLinkCreated, code, "us-east", time.Now(), events.LinkCreated{URL: evil, RedirectStatus: 302})
	msg := &nats.Msg{Subject: "bench.copy", Data: e.Encode()}
	sig, err := events.Sign(benchKey, msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header = nats.Header{events.SignatureHeader: []string{sig}}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("bench writes its scratch stream: %v", err)
	}
	// It may not publish on us-east's subjects itself (the server drops
	// the message, so no acknowledgement comes)...
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = js.Publish(pctx, replicator.Subject("us-east", code), e.Encode())
	pcancel()
	if err == nil {
		t.Fatal("the bench user published on us-east's subjects")
	}
	// ...but a push consumer delivers there for it.
	req, _ := json.Marshal(map[string]any{"stream_name": "BENCH_RAW", "config": map[string]any{
		"deliver_subject": replicator.Subject("us-east", code), "filter_subject": replicator.Subject("us-east", code),
		"ack_policy": "none", "deliver_policy": "all"}})
	resp, err := nc.RequestWithContext(ctx, "$JS.API.CONSUMER.CREATE.BENCH_RAW", req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Error *struct{ Description string } `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &created); err != nil || created.Error != nil {
		t.Fatalf("the push consumer was refused (%v %+v): the attack this test guards against was not tried", err, created.Error)
	}

	// The copy lands in us-east's stream: the attack works at the NATS
	// level, so what follows is the fold's doing.
	ujs := jetStreamAs(t, us.NATSURL(), secrets.RegionUser("us-east"))
	var rec events.Record
	regiontest.WaitFor(t, 30*time.Second, func() error {
		s, err := ujs.Stream(ctx, replicator.StreamName("us-east"))
		if err != nil {
			return err
		}
		m, err := s.GetLastMsgForSubject(ctx, replicator.Subject("us-east", code))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no copy in %s yet", replicator.StreamName("us-east"))
		}
		if err != nil {
			return err
		}
		rec = events.Record{Stream: replicator.StreamName("us-east"), Seq: m.Sequence, Subject: m.Subject, Data: m.Data,
			Signature: m.Header.Get(events.SignatureHeader)}
		return nil
	})
	got, err := events.Decode(rec.Data)
	if err != nil {
		t.Fatalf("the copy does not decode: %v", err)
	}
	// Negative control: without keys the copy passes every check.
	if rej := (events.Rules{}).CheckRecord(got, rec); rej != nil {
		t.Fatalf("negative control: unsigned rules refuse the copy (%v), so the test shows nothing", rej)
	}
	if rej := (events.Rules{Keys: regiontest.KeyRing()}).CheckRecord(got, rec); rej == nil || rej.Reason != events.ReasonSignature {
		t.Fatalf("with keys the copy gives %v, want a signature rejection", rej)
	}

	for _, r := range regs {
		name := r.Config().Name
		regiontest.WaitFor(t, 30*time.Second, func() error {
			if n := r.Store().Rejected()[events.ReasonSignature]; n != 1 {
				return fmt.Errorf("%s: %d records refused for their signature, want 1", name, n)
			}
			return nil
		})
		resp, err := regiontest.NewClient(r.URL).Do(ctx, http.MethodGet, "/"+code, nil)
		if err != nil || resp.Status != http.StatusNotFound {
			t.Errorf("%s: /%s answers %v %+v, want 404", name, code, err, resp)
		}
	}
}
