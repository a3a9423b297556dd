package region

import (
	"slices"
	"strings"
	"testing"

	"shortener/replicator"
	"shortener/secrets"
)

// The positive side of TestNATSPermissions' refused mirror deletes: a
// region's user may delete its own mirrors (replicator.EnsureMirror makes
// one again that cannot resume), and no other stream.
func TestRegionMayDeleteItsOwnMirrorsOnly(t *testing.T) {
	all := []string{"us-east", "eu-west", "ap-south"}
	allow := permissions(secrets.User{Name: "region-us-east", Role: secrets.RoleRegion, Region: "us-east"}, all).Publish.Allow
	deletes := slices.DeleteFunc(slices.Clone(allow), func(s string) bool { return !strings.HasPrefix(s, "$JS.API.STREAM.DELETE.") })
	want := []string{"$JS.API.STREAM.DELETE." + replicator.MirrorName("eu-west", "us-east"), "$JS.API.STREAM.DELETE." + replicator.MirrorName("ap-south", "us-east")}
	slices.Sort(deletes)
	slices.Sort(want)
	if !slices.Equal(deletes, want) {
		t.Fatalf("us-east's user may delete %v, want exactly %v", deletes, want)
	}
}
