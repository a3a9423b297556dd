//go:build regions

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"shortener/chaos/netfault"
	"shortener/procs"
	"shortener/region"
	"shortener/region/regiontest"
	"shortener/replicator"
)

// TestClusterChaosPartition: in a dev cluster started with --chaos, a cut
// between us-east and eu-west (through the supervisor, as shortener chaos
// asks it) stops everything between them, gossip included: us-east loses
// sight of eu-west, a link created in eu-west reaches ap-south but not
// us-east; after the heal it reaches us-east too.
func TestClusterChaosPartition(t *testing.T) {
	d := startDev(t, "--chaos")
	ctx := context.Background()
	hc := &http.Client{Timeout: 5 * time.Second}
	view := func(i int, origin string) (replicator.OriginLag, error) {
		var rr region.RegionsResponse
		if err := getJSON(ctx, hc, d.url(i)+"/api/v1/regions", &rr); err != nil {
			return replicator.OriginLag{}, err
		}
		for _, o := range rr.Origins {
			if o.Origin == origin {
				return o, nil
			}
		}
		return replicator.OriginLag{}, fmt.Errorf("no origin %s", origin)
	}
	bypassing(t, d)
	if err := procs.Call(ctx, d.dir, http.MethodPost, "/net/cut/us-east/eu-west", nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	regiontest.WaitFor(t, 20*time.Second, func() error {
		if o, err := view(0, "eu-west"); err != nil || o.OriginReachable {
			return fmt.Errorf("us-east still sees eu-west: %+v %v", o, err)
		}
		return nil
	})
	t.Logf("cut: us-east lost sight of eu-west after %v", time.Since(start).Round(time.Millisecond))

	code := create(t, hc, d.url(1), d.key, "https://example.com/made-during-the-cut")
	regiontest.WaitFor(t, 30*time.Second, func() error { return resolvesAt(hc, d.url(2), code) })
	time.Sleep(3 * time.Second) // ap-south has it: long enough for us-east too, were anything to cross
	if err := resolvesAt(hc, d.url(0), code); err == nil {
		t.Fatal("a link created in eu-west reached us-east across the cut")
	}
	var st netfault.State
	if err := procs.Call(ctx, d.dir, http.MethodGet, "/net", &st); err != nil {
		t.Fatal(err)
	}
	if l := st.Link("eu-west", "us-east"); !l.Cut || l.Open != 0 || l.Refused == 0 {
		t.Fatalf("eu-west/us-east during the cut: %+v", l)
	}

	if err := procs.Call(ctx, d.dir, http.MethodPost, "/net/heal/us-east/eu-west", nil); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	regiontest.WaitFor(t, 90*time.Second, func() error { return resolvesAt(hc, d.url(0), code) })
	t.Logf("heal: the link made in eu-west during the cut resolved in us-east %v after the heal", time.Since(start).Round(time.Millisecond))
}

func create(t *testing.T, hc *http.Client, base, key, url string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"url": url})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/links", bytes.NewReader(body))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create at %s: %d %v", base, resp.StatusCode, err)
	}
	return l.Code
}

func resolvesAt(hc *http.Client, base, code string) error {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(base + "/" + code)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		return fmt.Errorf("%s/%s: %d", base, code, resp.StatusCode)
	}
	return nil
}

// bypassing fails the test if a region's process holds a TCP connection to
// another region's gateway or route listener directly instead of through
// its proxy (what gossip of a direct address leads to). It reads the
// sockets of each process from /proc, for 10 s, as gossip spreads.
func bypassing(t *testing.T, d *devCluster) {
	t.Helper()
	var ps []procs.ProcInfo
	if err := procs.Call(context.Background(), d.dir, http.MethodGet, "/procs", &ps); err != nil {
		t.Fatal(err)
	}
	direct := map[string]string{} // ip:port (as in /proc/net/tcp) -> region
	for _, r := range d.topo.Regions {
		for _, a := range []string{r.Host + ":7222", procs.GlobalHost(r.Host) + ":7222", procs.GlobalHost(r.Host) + ":6222"} {
			direct[procNetAddr(a)] = r.Name
		}
	}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		remotes := procRemotes(t) // socket inode -> remote address
		for _, p := range ps {
			fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID))
			for _, fd := range fds {
				l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.PID, fd.Name()))
				if err != nil || !strings.HasPrefix(l, "socket:[") {
					continue
				}
				ino := strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")
				if to, ok := direct[remotes[ino]]; ok && to != p.Name {
					t.Fatalf("%s (pid %d) is connected to %s's NATS listener %s directly, around the fault proxy", p.Name, p.PID, to, remotes[ino])
				}
			}
		}
	}
}

// procNetAddr is host:port as /proc/net/tcp writes it: little-endian hex.
func procNetAddr(hostPort string) string {
	h, p, _ := net.SplitHostPort(hostPort)
	ip := net.ParseIP(h).To4()
	port, _ := strconv.Atoi(p)
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], port)
}

// procRemotes maps the inode of every established TCP socket to its
// remote address.
func procRemotes(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[3] == "01" { // ESTABLISHED
			out[f[9]] = f[2]
		}
	}
	return out
}
