package region_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"shortener/projections"
	"shortener/region/regiontest"
	"shortener/replicator"
	"shortener/secrets"
)

// A claim whose event was never written (the region died between the claim
// and the append) is released once it is older than the grace period; a
// claim whose link exists never is.
func TestClaimWithoutEventIsReleased(t *testing.T) {
	cfg := regiontest.Config("us-east", t.TempDir())
	reg := regiontest.Start(t, cfg)
	c := regiontest.NewClient(reg.URL)
	ctx := context.Background()

	// The crash, reproduced: the register holds a claim and the store its
	// record, and no event was ever appended.
	rc := regiontest.Replicator(t, reg.NATSURL(), secrets.RegionUser("us-east"))
	reg2 := replicator.NewAliases(rc, 1)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := reg2.Run(rctx); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := reg2.Claim(ctx, "ghost-alias", replicator.AliasClaim{Region: "us-east", EventID: "never-written", Time: old}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Store().PutClaim(projections.PendingClaim{Alias: "ghost-alias", EventID: "never-written", Time: old}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Create(ctx, map[string]any{"url": "https://example.com/ghost", "alias": "ghost-alias"})
	must(t, r, err, http.StatusConflict)

	// A real alias, whose record is (as if a crash had kept it) still there.
	r, err = c.Create(ctx, map[string]any{"url": "https://example.com/real", "alias": "real-alias"})
	must(t, r, err, http.StatusCreated)
	evs, err := reg.Store().Events("real-alias")
	if err != nil || len(evs) != 1 {
		t.Fatalf("events of real-alias: %v %v", evs, err)
	}
	if err := reg.Store().PutClaim(projections.PendingClaim{Alias: "real-alias", EventID: evs[0].ID, Time: old}); err != nil {
		t.Fatal(err)
	}
	// And a fresh claim, within the grace period: left alone.
	if err := reg.Store().PutClaim(projections.PendingClaim{Alias: "fresh-alias", EventID: "in-flight", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}

	if n := reg.ReconcileClaims(ctx); n != 1 {
		t.Fatalf("released %d claims, want 1 (ghost-alias)", n)
	}
	left, err := reg.Store().Claims()
	if err != nil || len(left) != 1 || left[0].Alias != "fresh-alias" {
		t.Fatalf("pending claims left: %+v %v; want only fresh-alias", left, err)
	}
	r, err = c.Create(ctx, map[string]any{"url": "https://example.com/ghost", "alias": "ghost-alias"})
	must(t, r, err, http.StatusCreated)
	r, err = c.Create(ctx, map[string]any{"url": "https://example.com/other", "alias": "real-alias"})
	must(t, r, err, http.StatusConflict)
	if l, err := c.Do(ctx, http.MethodGet, "/real-alias", nil); err != nil || l.Header.Get("Location") != "https://example.com/real" {
		t.Fatalf("real-alias: %v %+v", err, l)
	}
	// A successful create leaves no record behind.
	if left, _ := reg.Store().Claims(); len(left) != 1 {
		t.Fatalf("pending claims after the creates: %+v", left)
	}
}
