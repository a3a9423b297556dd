package region_test

import (
	"strings"
	"testing"
	"time"

	"shortener/region"
)

// TestParseDurationFlags: the region's duration flags take what they
// document and refuse, naming the flag, what is out of bounds or not a
// duration; "" is the default (0 in Config).
func TestParseDurationFlags(t *testing.T) {
	for _, c := range []struct {
		flag, in string
		parse    func(string) (time.Duration, error)
		want     time.Duration
		bad      bool
	}{
		{"--redirect-max-age", "", region.ParseRedirectMaxAge, 0, false},
		{"--redirect-max-age", "1h", region.ParseRedirectMaxAge, time.Hour, false},
		{"--redirect-max-age", "24h", region.ParseRedirectMaxAge, 24 * time.Hour, false},
		{"--redirect-max-age", "0", region.ParseRedirectMaxAge, -1, false}, // max-age=0
		{"--redirect-max-age", "24h1s", region.ParseRedirectMaxAge, 0, true},
		{"--redirect-max-age", "-1s", region.ParseRedirectMaxAge, 0, true},
		{"--redirect-max-age", "an hour", region.ParseRedirectMaxAge, 0, true},
		{"--redirect-max-age", "9999999999999999h", region.ParseRedirectMaxAge, 0, true},
		{"--click-commit-every", "", region.ParseClickCommitEvery, 0, false},
		{"--click-commit-every", "2s", region.ParseClickCommitEvery, 2 * time.Second, false},
		{"--click-commit-every", "1m", region.ParseClickCommitEvery, time.Minute, false},
		{"--click-commit-every", "0", region.ParseClickCommitEvery, 0, true},
		{"--click-commit-every", "61s", region.ParseClickCommitEvery, 0, true},
		{"--click-commit-every", "2", region.ParseClickCommitEvery, 0, true},
	} {
		got, err := c.parse(c.in)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), c.flag) {
				t.Errorf("%s %q: %v, %v; want an error naming the flag", c.flag, c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q: %v, %v; want %v", c.flag, c.in, got, err, c.want)
		}
	}
}
