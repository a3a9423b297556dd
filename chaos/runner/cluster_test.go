package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"shortener/chaos/netfault"
	"shortener/procs"
)

func TestRegionArgs(t *testing.T) {
	topo := procs.TopologyOn("127.7", "short.test", 3)
	got := regionArgs(topo.Regions[1], topo.Regions)
	want := []string{"--fault-injection", "--nats-advertise", "127.7.2.3", "--nats-global-advertise", "127.7.2.4",
		"--peer-nats", "us-east=127.7.1.3,127.7.1.4", "--peer-nats", "ap-south=127.7.3.3,127.7.3.4"}
	if !slices.Equal(got, want) {
		t.Fatalf("eu-west's chaos flags:\n got %q\nwant %q", got, want)
	}
}

// TestLinkRoutes drives the link-fault endpoints of a chaos cluster's
// control socket against real fault proxies, as a chaos run does, and
// checks what they did to the proxies and what they journalled.
func TestLinkRoutes(t *testing.T) {
	topo := procs.TopologyOn(fmt.Sprintf("127.%d", 64+rand.IntN(180)), "short.test", 3)
	var journal []string
	f := &faultNet{regions: topo.Regions, journal: func(line []byte) { journal = append(journal, string(line)) }}
	mux := http.NewServeMux()
	f.routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Before the proxies run, every endpoint refuses.
	if code, body := call(http.MethodPost, "/net/cut/us-east/eu-west"); code != http.StatusConflict || !strings.Contains(body, "no fault proxies") {
		t.Fatalf("cut without proxies: %d %s", code, body)
	}
	closer, err := f.start(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()

	for _, path := range []string{"/net/cut/us-east/nowhere", "/net/cut/eu-west/eu-west", "/net/degrade/us-east/eu-west?latency=soon"} {
		if code, body := call(http.MethodPost, path); code != http.StatusConflict {
			t.Errorf("%s: %d %s, want 409", path, code, body)
		}
	}
	for _, path := range []string{"/net/cut/us-east/eu-west", "/net/degrade/eu-west/ap-south?latency=200ms&jitter=50ms"} {
		if code, body := call(http.MethodPost, path); code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	code, body := call(http.MethodGet, "/net")
	var st netfault.State
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /net: %d %s %v", code, body, err)
	}
	cut, slow := false, false
	for _, l := range st.Links {
		cut = cut || (l.Cut && l.A == "eu-west" && l.B == "us-east") || (l.Cut && l.A == "us-east" && l.B == "eu-west")
		slow = slow || (l.Degradation != nil && l.Degradation.Latency.String() == "200ms")
	}
	if !cut || !slow {
		t.Fatalf("the proxies' state after cut and degrade: %+v", st)
	}
	if code, body := call(http.MethodPost, "/net/heal-all"); code != http.StatusOK {
		t.Fatalf("heal-all: %d %s", code, body)
	}
	var actions []string
	for _, line := range journal {
		var e netEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, strings.TrimSpace(e.Action+" "+e.Region+" "+e.Peer))
	}
	if got := strings.Join(actions, ", "); got != "cut us-east eu-west, degrade eu-west ap-south, heal-all" {
		t.Fatalf("journal: %s", got)
	}
}
