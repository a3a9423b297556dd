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

// TestParsePeer: a peer's hosts and, when they are not this region's, its
// ports; anything else is refused with the form it wants.
func TestParsePeer(t *testing.T) {
	for _, c := range []struct {
		in   string
		want region.Peer
		bad  bool
	}{
		{in: "eu-west=10.0.2.1", want: region.Peer{Name: "eu-west", Host: "10.0.2.1"}},
		{in: "eu-west=10.0.2.1,10.0.9.9", want: region.Peer{Name: "eu-west", Host: "10.0.2.1", GlobalHost: "10.0.9.9"}},
		{in: "eu-west=eu.example:7300", want: region.Peer{Name: "eu-west", Host: "eu.example", GatewayPort: 7300}},
		{in: "eu-west=eu.example:7300,global-eu.example:6300:7301", want: region.Peer{Name: "eu-west", Host: "eu.example", GatewayPort: 7300,
			GlobalHost: "global-eu.example", GlobalClusterPort: 6300, GlobalGatewayPort: 7301}},
		{in: "eu-west", bad: true},
		{in: "=10.0.2.1", bad: true},
		{in: "eu-west=", bad: true},
		{in: "eu-west=:7222", bad: true},
		{in: "eu-west=10.0.2.1:0", bad: true},
		{in: "eu-west=10.0.2.1:65536", bad: true},
		{in: "eu-west=10.0.2.1:x", bad: true},
		{in: "eu-west=10.0.2.1:1:2", bad: true},
		{in: "eu-west=10.0.2.1,g:6300", bad: true}, // a global member's two ports or none
		{in: "eu-west=10.0.2.1,:6300:7300", bad: true},
		{in: "eu-west=[::1]:7222", bad: true},
		{in: "eu-west=h,g,x", bad: true},
	} {
		got, err := region.ParsePeer(c.in)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), "NAME=HOST") {
				t.Errorf("%q: %+v, %v; want an error giving the form", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

// The digit comes from --digit, else from the --digits table; a bad table,
// no digit, or a digit that is not one character 0-9 is refused naming the
// flag.
func TestParseDigit(t *testing.T) {
	for _, c := range []struct {
		digit, table string
		want         byte
		err          string
	}{
		{"7", "", '7', ""},
		{"", "us-east=1,eu-west=2", '1', ""},
		{"4", "us-east=1", '4', ""},
		{"", "eu-west=2", 0, "--digits table that names us-east"},
		{"", "", 0, "give --digit"},
		{"12", "", 0, "--digit must be one digit"},
		{"x", "", 0, "--digit must be one digit"},
		{"1", "us-east=1,eu-west=1", 0, "--digits"},
	} {
		d, _, err := region.ParseDigit("us-east", c.digit, c.table)
		if c.err == "" && (err != nil || d != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseDigit(%q, %q) = %q, %v; want %q, %q", c.digit, c.table, d, err, c.want, c.err)
		}
	}
}
