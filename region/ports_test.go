package region_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shortener/region"
	"shortener/region/regiontest"
)

// TestRegionsOnTheirOwnPorts: two regions that share no port and whose
// global members are on hosts of their own, not "the regional host plus
// one": each knows the other's ports from its --peer spec (ParsePeer) and
// every listener is set explicitly. A link made in each redirects in the
// other. With the ports every region had to share before, they could not
// have been told apart.
func TestRegionsOnTheirOwnPorts(t *testing.T) {
	dir := t.TempDir()
	us := regiontest.Config("us-east", filepath.Join(dir, "us-east"))
	eu := regiontest.Config("eu-west", filepath.Join(dir, "eu-west"))
	host := func(c region.Config) string { h, _, _ := strings.Cut(c.HTTPAddr, ":"); return h }
	euHost, euGlobal := host(eu), regiontest.Host()
	eu.HTTPAddr = euHost + ":8180"
	eu.NATS = region.NATSConfig{ClientPort: 4322, ClusterPort: 6322, GatewayPort: 7322,
		GlobalHost: euGlobal, GlobalClientPort: 4323, GlobalClusterPort: 6323, GlobalGatewayPort: 7323}
	usGlobal := regiontest.Host()
	us.NATS = region.NATSConfig{GlobalHost: usGlobal}
	peer := func(spec string) region.Peer {
		p, err := region.ParsePeer(spec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	us.Peers = []region.Peer{peer("eu-west=" + euHost + ":7322," + euGlobal + ":6323:7323")}
	eu.Peers = []region.Peer{peer("us-east=" + host(us) + "," + usGlobal)}
	regs := regiontest.StartCluster(t, []region.Config{us, eu})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, r := range regs {
		c := regiontest.NewClient(r.URL)
		url := "https://example.com/made-in-" + r.Config().Name
		resp, err := c.Create(ctx, map[string]any{"url": url})
		if err != nil || resp.Status != http.StatusCreated {
			t.Fatalf("create in %s: %v %s", r.Config().Name, err, resp.Raw)
		}
		code := resp.Str("code")
		other := regs[1-i]
		nofollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		regiontest.WaitFor(t, 30*time.Second, func() error {
			res, err := nofollow.Get(other.URL + "/" + code)
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.Header.Get("Location") != url {
				return fmt.Errorf("%s answers %d, not the link's redirect", other.Config().Name, res.StatusCode)
			}
			return nil
		})
	}
}
