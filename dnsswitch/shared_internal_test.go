package dnsswitch

import (
	"net/netip"
	"testing"

	"shortener/replicator"
)

// A shared state is applied only if it is newer than the one held: a
// change's own answer and the watch deliver the same revisions in either
// order. Names the switch does not serve are left out.
func TestApplySharedKeepsTheNewest(t *testing.T) {
	s, err := Open(Config{Zone: "short.test", Regions: []Region{
		{Name: "us-east", Addr: netip.MustParseAddr("127.0.1.1")},
		{Name: "eu-west", Addr: netip.MustParseAddr("127.0.2.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	s.applyShared(replicator.SwitchShared{Drained: []string{"eu-west", "nowhere"}, Overrides: map[string]string{"us-east": "eu-west", "x": "y"}}, 5)
	s.applyShared(replicator.SwitchShared{}, 4) // older: ignored
	st := s.State()
	if !st.Regions[1].Drained || st.Overrides["us-east"] != "eu-west" || len(st.Overrides) != 1 {
		t.Fatalf("after revisions 5 then 4: %+v %v", st.Regions, st.Overrides)
	}
	s.applyShared(replicator.SwitchShared{}, 6)
	st = s.State()
	if st.Regions[1].Drained || len(st.Overrides) != 0 {
		t.Fatalf("after revision 6 (empty): %+v %v", st.Regions, st.Overrides)
	}
	if n := len(st.Transitions); n != 4 { // drained, override, undrained, override cleared
		t.Fatalf("%d transitions, want 4: %+v", n, st.Transitions)
	}
}
