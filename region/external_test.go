package region_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"shortener/region/regiontest"
)

// TestExternalNATS runs a second app instance of the region against the
// first one's NATS (--nats-url): each has its own projection, both serve,
// and a link created through either redirects through both.
func TestExternalNATS(t *testing.T) {
	a := regiontest.Start(t, regiontest.Config("us-east", t.TempDir()))
	cfg := regiontest.Config("us-east", t.TempDir())
	cfg.NATSURL = a.NATSURL()
	cfg.Instance = "us-east-b"
	b := regiontest.Start(t, cfg)
	ctx := context.Background()
	ca, cb := regiontest.NewClient(a.URL), regiontest.NewClient(b.URL)

	for _, tc := range []struct {
		name     string
		writer   *regiontest.Client
		readers  []*regiontest.Client
		url      string
		instance string
	}{
		{"through the embedded instance", ca, []*regiontest.Client{ca, cb}, "https://example.com/a", "a"},
		{"through the external-NATS instance", cb, []*regiontest.Client{cb, ca}, "https://example.com/b", "b"},
	} {
		r, err := tc.writer.Create(ctx, map[string]any{"url": tc.url})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("%s: create: %v %s", tc.name, err, r.Raw)
		}
		code := r.Str("code")
		for i, rd := range tc.readers {
			regiontest.WaitFor(t, 2*time.Second, func() error {
				got, err := rd.Do(ctx, http.MethodGet, "/"+code, nil)
				if err != nil {
					return err
				}
				if got.Status != http.StatusFound || got.Header.Get("Location") != tc.url {
					if i == 0 {
						t.Fatalf("%s: no read-your-writes in the writing instance: %d", tc.name, got.Status)
					}
					return errStatus(got.Status)
				}
				return nil
			})
		}
	}
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Fatalf("the two instances' projections differ")
	}
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }

func digest(t *testing.T, r *regiontest.Running) string {
	t.Helper()
	d, err := r.Store().Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
