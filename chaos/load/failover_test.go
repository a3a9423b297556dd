package load

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFailoverAnalysis runs three regions' clients through a switch, stops
// us-east's replication, kills us-east, moves its clients to eu-west after a
// detection delay, brings us-east back and moves them home, then checks
// what Failover and Probe make of the history.
func TestFailoverAnalysis(t *testing.T) {
	rs := startFakeRegions(t, 3)
	east, west := rs[0], rs[1]
	sw := startSwitch(t, 1, map[byte]string{1: "127.0.1.1", 2: "127.0.2.1", 3: "127.0.3.1"})
	const detect = 300 * time.Millisecond // the switch's detection delay
	var hist syncBuffer
	var killedAt, upAt time.Time
	var restartErr error
	scenario := make(chan struct{})
	go func() {
		defer close(scenario)
		time.Sleep(600 * time.Millisecond) // the script of the drill, not a wait for a state
		east.store.pause("us-east")
		time.Sleep(800 * time.Millisecond)
		killedAt = time.Now()
		east.kill()
		time.Sleep(detect)
		sw.set(1, "127.0.2.1")
		time.Sleep(1500 * time.Millisecond)
		restartErr = east.start()
		upAt = time.Now()
		sw.set(1, "127.0.1.1")
	}()
	rep := run(t, Config{
		Targets:     clientsOf(rs, sw),
		Regions:     regionsOf(rs),
		Rate:        300,
		Duration:    5 * time.Second,
		Workers:     16,
		CreateRatio: 0.2,
		APIKey:      "k",
		History:     &hist,
	})
	<-scenario
	if restartErr != nil {
		t.Fatal(restartErr)
	}
	h, err := ReadHistory(strings.NewReader(hist.String()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := Failover(h, "us-east", killedAt, upAt)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	fr.WriteText(&text)
	t.Logf("report:\n%s", text.String())

	// RTO: the detection delay plus at most one TTL and a request.
	if !fr.Recovered || fr.FirstElsewhere.Region != "eu-west" || fr.RTO < detect || fr.RTO > detect+time.Second+200*time.Millisecond {
		t.Errorf("recovered %v, RTO %v, first elsewhere %+v", fr.Recovered, fr.RTO, fr.FirstElsewhere)
	}
	byClient := map[string]ClientStats{}
	for _, c := range fr.Clients {
		byClient[c.Client] = c
	}
	for _, name := range []string{"eu-west", "ap-south"} {
		c := byClient[name]
		if c.Ops < 400 || c.SuccessRate != 1 || c.LongestFailures != 0 || c.ServedBy[name] != c.Ops {
			t.Errorf("%s: %+v", name, c)
		}
		if tr := rep.Targets[name]; tr.Sent != c.Ops {
			t.Errorf("%s: %d ops in the analysis, %d in the report", name, c.Ops, tr.Sent)
		}
	}
	ce := byClient["us-east"]
	if ce.LongestFailures == 0 || ce.SuccessRate >= 1 || ce.LongestFailFrom.Before(killedAt.Add(-time.Second)) ||
		ce.LongestFailTo.After(killedAt.Add(fr.RTO)) || ce.ServedBy["eu-west"] == 0 || ce.ServedBy["us-east"] == 0 {
		t.Errorf("us-east clients: %+v", ce)
	}
	if ce.Ops-ce.OK != rep.Targets["us-east"].Failed {
		t.Errorf("us-east: %d failures in the analysis, %d in the report", ce.Ops-ce.OK, rep.Targets["us-east"].Failed)
	}
	if !fr.Returned || fr.ReturnAfter < 0 || fr.ReturnAfter > time.Second+200*time.Millisecond {
		t.Errorf("returned %v after %v", fr.Returned, fr.ReturnAfter)
	}

	// The acknowledged creates are the ones us-east made before the kill
	// (minus any whose 201 the kill cut off).
	acked := map[string]bool{}
	for _, o := range fr.Acked {
		if o.Region != "us-east" || o.Target != "us-east" || !o.Ack || !o.Start.Before(killedAt) {
			t.Fatalf("not a candidate: %+v", o)
		}
		acked[o.Code] = true
	}
	east.store.mu.Lock()
	made := 0
	for code, origin := range east.store.origin {
		at := east.store.createdAt[code]
		if origin == "us-east" && at.Before(killedAt.Add(-50*time.Millisecond)) {
			made++
			if !acked[code] {
				t.Errorf("create %s at %v, before the kill, not among the acknowledged", code, at)
			}
		}
		if acked[code] && (origin != "us-east" || at.After(killedAt)) {
			t.Errorf("acknowledged %s made in %s at %v", code, origin, at)
		}
	}
	east.store.mu.Unlock()
	if made < 20 {
		t.Errorf("only %d creates made in us-east before the kill", made)
	}

	// The RPO eu-west reported at its last poll before the kill.
	rp, ok := fr.ReportedBy("eu-west")
	if !ok || !rp.At.Before(killedAt) || killedAt.Sub(rp.At) > 700*time.Millisecond || !rp.RPOKnown || rp.RPOEvents == 0 {
		t.Errorf("eu-west reported %+v", rp)
	}
	for _, r := range h.Regions {
		if r.Region == "eu-west" && r.OK && r.End.After(rp.At) && r.End.Before(killedAt) {
			t.Errorf("a later poll before the kill: %+v", r)
		}
	}
	if _, ok := fr.ReportedBy("us-east"); ok {
		t.Error("the dead region reports on itself")
	}
	if rp, ok := fr.ReportedBy("ap-south"); !ok || rp.Origin != "us-east" {
		t.Errorf("ap-south reported %+v", rp)
	}

	// (e) The probe finds exactly the acknowledged creates that were never
	// replicated.
	hidden := east.store.hiddenOf("us-east")
	want := 0
	for c := range acked {
		if hidden[c] {
			want++
		}
	}
	p, err := Probe(context.Background(), west.url(), fr.AckedCodes())
	if err != nil {
		t.Fatal(err)
	}
	if want == 0 || p.Missing != want || p.Present != len(acked)-want || p.Checked != len(acked) || p.Errors+p.Gone+p.Other != 0 {
		t.Errorf("probe %+v, want %d missing of %d", p, want, len(acked))
	}
	for _, c := range p.MissingCodes {
		if !hidden[c] {
			t.Errorf("probe says %s is missing, but it was replicated", c)
		}
	}
	fr.Probe = p
	p.Region = h.RegionOfURL(west.url())
	text.Reset()
	fr.WriteText(&text)
	for _, s := range []string{"RTO ", "us-east's clients back home", "reported RPO for us-east by eu-west", "probe of eu-west"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, text.String())
		}
	}
	if _, err := json.Marshal(fr); err != nil {
		t.Error(err)
	}
}

func TestFailoverErrors(t *testing.T) {
	h := &History{Ops: []Op{{Target: "eu-west", Op: "redirect", OK: true}}}
	now := time.Now()
	if _, err := Failover(h, "us-east", now, time.Time{}); err == nil {
		t.Error("no error for a region without clients")
	}
	if _, err := Failover(h, "eu-west", time.Time{}, time.Time{}); err == nil {
		t.Error("no error without a kill time")
	}
	if _, err := Failover(h, "eu-west", now, now.Add(-time.Second)); err == nil {
		t.Error("no error for up before the kill")
	}
}

// A client the history holds no answered operation of has no statistics
// to pass a judge: it is not found, and its success rate is 0, not 1.
func TestFailoverClientWithoutOperations(t *testing.T) {
	now := time.Now()
	h := &History{Ops: []Op{
		{Target: "us-east", Op: "redirect", OK: true, End: now},
		{Target: "eu-west", Op: "redirect", Cut: true, End: now}, // cut off: no answer of the service
	}}
	fr, err := Failover(h, "us-east", now, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eu-west", "ap-south"} {
		if c, ok := fr.Client(name); ok || c.Ops != 0 || c.SuccessRate != 0 {
			t.Errorf("%s: found %t, %+v; want not found, 0 ops, success rate 0", name, ok, c)
		}
	}
	if c, ok := fr.Client("us-east"); !ok || c.Ops != 1 || c.SuccessRate != 1 {
		t.Errorf("us-east: found %t, %+v; want 1 op, success rate 1", ok, c)
	}
}

func TestProbeCounts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			t.Errorf("probe sent %s", r.Method)
		}
		switch strings.TrimPrefix(r.URL.Path, "/") {
		case "a", "b", "with space":
			w.Header().Set("Location", "https://example.com/")
			w.WriteHeader(http.StatusMovedPermanently)
		case "gone":
			w.WriteHeader(http.StatusGone)
		case "boom":
			w.WriteHeader(http.StatusInternalServerError)
		case "limited":
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	p, err := Probe(context.Background(), srv.URL+"/", []string{"a", "b", "with space", "x", "gone", "boom", "y", "limited"})
	if err != nil {
		t.Fatal(err)
	}
	// A 429 is a link not served: missing, not other.
	if p.Checked != 8 || p.Present != 3 || p.Missing != 3 || p.Limited != 1 || p.Gone != 1 || p.Other != 1 || p.Errors != 0 ||
		strings.Join(p.MissingCodes, ",") != "limited,x,y" {
		t.Errorf("%+v", p)
	}
	srv.Close()
	p, err = Probe(context.Background(), srv.URL, []string{"a", "b"})
	if err != nil || p.Errors != 2 || p.Missing != 0 {
		t.Errorf("probe of a closed server: %+v %v", p, err)
	}
	if _, err := Probe(context.Background(), "ftp://x", nil); err == nil {
		t.Error("no error for a bad URL")
	}
}
