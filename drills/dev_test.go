package drills

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"shortener/procs"
)

// TestDevCluster: the drills' view of a dev cluster asks its supervisor
// over the control socket (a stand-in answering as procs' does) and reads
// its answers: when a region was killed, how long a stop took.
func TestDevCluster(t *testing.T) {
	dir, err := os.MkdirTemp("", "drills") // short: a unix socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var asked []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{action}/{name}", func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.PathValue("action")+" "+r.PathValue("name"))
		if r.PathValue("name") == "nowhere" {
			procs.WriteError(w, os.ErrNotExist)
			return
		}
		_ = json.NewEncoder(w).Encode(procs.ProcInfo{Name: r.PathValue("name"), At: at, Exited: at.Add(1500 * time.Millisecond), Forced: true})
	})
	ln, err := net.Listen("unix", procs.ControlSocket(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	c := DevCluster(dir, procs.TopologyOn("127.5", "short.test", 2), "k")
	if len(c.Regions) != 2 || c.Regions[1].URL != "http://127.5.2.1:8080" || c.Regions[1].ClientAddr != "127.5.2.10" || c.Zone != "short.test" {
		t.Fatalf("regions: %+v zone %q", c.Regions, c.Zone)
	}
	ctx := context.Background()
	if got, err := c.Down(ctx, "us-east"); err != nil || !got.Equal(at) {
		t.Fatalf("down: %v %v", got, err)
	}
	if got, took, forced, err := c.Stop(ctx, "eu-west"); err != nil || !got.Equal(at) || took != 1500*time.Millisecond || !forced {
		t.Fatalf("stop: %v %v %v %v", got, took, forced, err)
	}
	if err := c.ResetProjection(ctx, "eu-west"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Up(ctx, "nowhere"); err == nil {
		t.Fatal("up of a region the supervisor refuses: no error")
	}
	if got := strings.Join(asked, ", "); got != "down us-east, stop eu-west, reset-projection eu-west, up nowhere" {
		t.Fatalf("asked: %s", got)
	}
}
