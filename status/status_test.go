package status

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatusTable: make status prints a row per (region, origin) with the
// mirror's state, and the mirror's error when nats-server reports one: as
// a warning while the mirror moves (live, or catching up: "stalled on flow
// control" then means a write backlog), as an error when it does not; a
// region that does not answer is a row saying so.
func TestStatusTable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/regions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"region":"ap-south","durability":"local","alias_register":"available","origins":[
			{"origin":"ap-south","stream":"LINKS_AP_SOUTH","last_seq":40,"local":true,"mirror_active":true,"rpo_known":true,"origin_reachable":true},
			{"origin":"us-east","stream":"LINKS_US_EAST_AT_AP_SOUTH","last_seq":900,"lag_events":120,"lag_seconds":4.5,
			 "mirror_active":true,"mirror_active_ago_seconds":0.2,"mirror_error":"stream source consumer stalled on flow control",
			 "rpo_events":130,"rpo_seconds":5,"rpo_known":true,"origin_reachable":true},
			{"origin":"eu-west","stream":"LINKS_EU_WEST_AT_AP_SOUTH","last_seq":700,"lag_events":9000,"lag_seconds":60,
			 "mirror_active":false,"mirror_copying":true,"mirror_active_ago_seconds":0.1,"mirror_error":"stream source consumer stalled on flow control",
			 "rpo_events":9000,"rpo_seconds":60,"rpo_known":true,"origin_reachable":true},
			{"origin":"sa-east","stream":"LINKS_SA_EAST_AT_AP_SOUTH","last_seq":300,"lag_events":50,"lag_seconds":30,
			 "mirror_active":false,"mirror_active_ago_seconds":12,"mirror_error":"stream source consumer stalled on flow control",
			 "rpo_events":60,"rpo_seconds":30,"rpo_known":true,"origin_reachable":true},
			{"origin":"me-south","stream":"LINKS_ME_SOUTH_AT_AP_SOUTH","last_seq":500,"origin_last_seq":7,
			 "mirror_active":true,"mirror_active_ago_seconds":0.1,"origin_behind":true,"origin_diverged":true,"diverged_at":7,
			 "rpo_events":1,"rpo_seconds":0.5,"rpo_known":true,"origin_reachable":true}]}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := Print(context.Background(), &out, []Target{{"ap-south", srv.URL}, {"eu-west", "http://127.0.0.1:1"}}); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	lines := strings.Split(out.String(), "\n")
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(strings.Join(strings.Fields(l), " "), prefix) {
				return l
			}
		}
		t.Fatalf("no row %q in:\n%s", prefix, out.String())
		return ""
	}
	const fc = "stream source consumer stalled on flow control"
	if row := find("ap-south us-east 900 120"); !strings.Contains(row, "live (warn: "+fc+")") {
		t.Errorf("a live mirror's error is not a warning in its row: %q", row)
	}
	if row := find("ap-south eu-west 700 9000"); !strings.Contains(row, "CATCHING UP (warn: "+fc+")") {
		t.Errorf("a copying mirror is not catching up with a warning: %q", row)
	}
	if row := find("ap-south sa-east 300 50"); !strings.Contains(row, "DOWN 12s ERR "+fc) {
		t.Errorf("a mirror that does not move does not show its error as one: %q", row)
	}
	if row := find("ap-south me-south 500 0"); !strings.Contains(row, "live ORIGIN BEHIND DIVERGED #7") {
		t.Errorf("an origin behind its mirror is not said so: %q", row)
	}
	if row := find("ap-south ap-south 40"); !strings.Contains(row, "(own)") || strings.Contains(row, "ERR") {
		t.Errorf("own stream row: %q", row)
	}
	find("eu-west UNREACHABLE")
}

// TestStatusNoRegion: with no region answering, the table is an error.
func TestStatusNoRegion(t *testing.T) {
	var out bytes.Buffer
	err := Print(context.Background(), &out, []Target{{"us-east", "http://127.0.0.1:1"}})
	if err == nil || !strings.Contains(out.String(), "us-east  UNREACHABLE") {
		t.Fatalf("no region answering: %v\n%s", err, out.String())
	}
}

// TestReportedRPOs: every other region's bound for the origin, unknown
// said so, an unreachable region said so, the origin itself left out.
func TestReportedRPOs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"region":"eu-west","origins":[{"origin":"us-east","lag_events":3,"rpo_events":4,"rpo_seconds":1.5,"rpo_known":true},
			{"origin":"ap-south","rpo_known":false}]}`))
	}))
	defer srv.Close()
	got := ReportedRPOs(context.Background(), []Target{{"us-east", srv.URL}, {"eu-west", srv.URL}, {"ap-south", "http://127.0.0.1:1"}}, "us-east")
	want := []RPO{{"eu-west", "at most 4 events, 1.5 s (lag 3 events)"}, {"ap-south", "unreachable"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
