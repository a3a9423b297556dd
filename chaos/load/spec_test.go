package load

import "testing"

func TestParseSpecs(t *testing.T) {
	ts, rs, err := ParseTargets([]string{"us-east=http://127.0.1.1:8080", "http://127.0.2.1:8080"})
	if err != nil || len(ts) != 2 || len(rs) != 1 || rs[0].Name != "us-east" || ts[1].Name != "" {
		t.Fatalf("ParseTargets = %+v, %+v, %v", ts, rs, err)
	}
	cs, err := ClientTargets([]string{"eu-west=127.0.2.10"}, "127.0.0.1:8053", "short.test", 8080)
	if err != nil || len(cs) != 1 || cs[0].BaseURL != "http://short.test:8080" || cs[0].LocalAddr != "127.0.2.10" {
		t.Fatalf("ClientTargets = %+v, %v", cs, err)
	}
	for name, bad := range map[string]func() error{
		"target without scheme": func() error { _, _, err := ParseTargets([]string{"us-east=127.0.1.1:8080"}); return err },
		"client without ip":     func() error { _, err := ClientTargets([]string{"us-east=nowhere"}, "", "x", 80); return err },
		"client without name":   func() error { _, err := ClientTargets([]string{"=127.0.0.1"}, "", "x", 80); return err },
		"port 0":                func() error { _, err := ClientTargets(nil, "", "x", 0); return err },
		"port too high":         func() error { _, err := ClientTargets(nil, "", "x", 65536); return err },
		"region without name":   func() error { _, err := ParseRegions([]string{"=http://x"}); return err },
		"region without url":    func() error { _, err := ParseRegions([]string{"us-east"}); return err },
	} {
		if bad() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
