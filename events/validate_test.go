package events_test

import (
	"errors"
	"strings"
	"testing"

	"shortener/events"
)

func TestNormalizeURL(t *testing.T) {
	long := "https://example.com/" + strings.Repeat("a", 2048)
	tests := []struct {
		in     string
		want   string // normalised form when accepted
		reason string // substring of the refusal's reason when refused
	}{
		{in: "https://example.com/a?b=c#d", want: "https://example.com/a?b=c#d"},
		{in: "HTTP://Example.COM/Path", want: "http://example.com/Path"},
		{in: "http://example.com:8080/x", want: "http://example.com:8080/x"},
		{in: "https://bücher.example/straße", want: "https://xn--bcher-kva.example/stra%C3%9Fe"},
		{in: "https://ÉCOLE.fr", want: "https://xn--cole-9oa.fr"},
		{in: "http://127.0.0.1:9000/", want: "http://127.0.0.1:9000/"},
		{in: "http://[::1]/x", want: "http://[::1]/x"},
		{in: "", reason: "required"},
		{in: "ftp://example.com/file", reason: "scheme must be http or https"},
		{in: "javascript:alert(1)", reason: "scheme must be http or https"},
		{in: "data:text/html,hi", reason: "scheme must be http or https"},
		{in: "example.com/path", reason: "scheme must be http or https"},
		{in: "http:example.com", reason: "absolute URL"},
		{in: "https:///path", reason: "host is required"},
		{in: "https://", reason: "host is required"},
		{in: "http://bank.com@evil.example", reason: "userinfo"},
		{in: "http://user:pass@example.com/", reason: "userinfo"},
		{in: "http://example.com/\r\nSet-Cookie: x=1", reason: "control character"},
		{in: "http://example.com/a\nb", reason: "control character"},
		{in: "http://example.com/\x00", reason: "control character"},
		{in: "http://example.com/\x7f", reason: "control character"},
		{in: "http://example.com/a b", reason: "space"},
		{in: "http://exa mple.com/", reason: "space"},
		{in: "http://example.com/\u0085", reason: "control character"},
		{in: long, reason: "longer than 2048 bytes"},
		{in: "http://example.com:99999/", reason: "port"},
		{in: "http://example.com:0/", reason: "port"},
		{in: "http://example.com:/", reason: "empty port"},
		{in: "http://exa_mple.com/", reason: "not a valid domain name"},
		{in: "http://-bad-.com/", reason: "not a valid domain name"},
		{in: "http://[fe80::1%25eth0]/", reason: "zone"},
		{in: "http://\xff.com/", reason: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := events.NormalizeURL(tt.in, 0)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("NormalizeURL(%q) = %v, want %q", tt.in, err, tt.want)
				}
				if got != tt.want {
					t.Fatalf("NormalizeURL(%q) = %q, want %q", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("NormalizeURL(%q) = %q, want refusal %q", tt.in, got, tt.reason)
			}
			var e *events.Error
			if !errors.As(err, &e) || e.Kind != events.Invalid || e.Field != "url" {
				t.Fatalf("NormalizeURL(%q) error = %#v, want Invalid on field url", tt.in, err)
			}
			if !strings.Contains(e.Message, tt.reason) {
				t.Fatalf("NormalizeURL(%q) reason = %q, want it to mention %q", tt.in, e.Message, tt.reason)
			}
		})
	}
}

func TestNormalizeURLMaxLen(t *testing.T) {
	u := "https://example.com/" + strings.Repeat("x", 80)
	if _, err := events.NormalizeURL(u, 100); err != nil {
		t.Fatalf("100-byte URL under a 100 cap refused: %v", err)
	}
	if _, err := events.NormalizeURL(u+"y", 100); err == nil {
		t.Fatal("101-byte URL under a 100 cap accepted")
	}
}

func TestValidateAlias(t *testing.T) {
	tests := []struct {
		alias  string
		reason string
	}{
		{alias: "launch"},
		{alias: "Spring-Sale_2026"},
		{alias: "abc"},
		{alias: "a" + strings.Repeat("b", 63)},
		{alias: "ab", reason: "3 to 64 characters"},
		{alias: "a" + strings.Repeat("b", 64), reason: "3 to 64 characters"},
		{alias: "1abcdefg", reason: "start with a letter"},
		{alias: "_abc", reason: "start with a letter"},
		{alias: "-abc", reason: "start with a letter"},
		{alias: "ab.cd", reason: "only letters, digits"},
		{alias: "ab/cd", reason: "only letters, digits"},
		{alias: "ab cd", reason: "only letters, digits"},
		{alias: "ab*", reason: "only letters, digits"},
		{alias: "ab>", reason: "only letters, digits"},
		{alias: "café", reason: "only letters, digits"},
		{alias: "api", reason: "reserved"},
		{alias: "API", reason: "reserved"},
		{alias: "healthz", reason: "reserved"},
		{alias: "readyz", reason: "reserved"},
		{alias: "metrics", reason: "reserved"},
		{alias: "Status", reason: "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.alias, func(t *testing.T) {
			err := events.ValidateAlias(tt.alias)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ValidateAlias(%q) = %v, want ok", tt.alias, err)
				}
				return
			}
			var e *events.Error
			if !errors.As(err, &e) || e.Field != "alias" || !strings.Contains(e.Message, tt.reason) {
				t.Fatalf("ValidateAlias(%q) = %v, want refusal on alias mentioning %q", tt.alias, err, tt.reason)
			}
		})
	}
}

func TestGeneratedCodesNeverLookLikeAliases(t *testing.T) {
	seen := map[string]bool{}
	for d := byte('0'); d <= '9'; d++ {
		for i := 0; i < 2000; i++ {
			c := events.NewCode(d)
			if c[0] != d || !events.IsGenerated(c) {
				t.Fatalf("NewCode(%c) = %q: not a generated code of that region", d, c)
			}
			if events.ValidateAlias(c) == nil {
				t.Fatalf("generated code %q passes alias validation", c)
			}
			if err := events.ValidateCode(c); err != nil {
				t.Fatalf("generated code %q refused as a code: %v", c, err)
			}
			if seen[c] {
				t.Fatalf("duplicate generated code %q", c)
			}
			seen[c] = true
		}
	}
	if events.IsGenerated("launch12") {
		t.Fatal("an alias-shaped string is taken for a generated code")
	}
}

func TestValidateRegion(t *testing.T) {
	for _, ok := range []string{"us-east", "eu-west", "ap-south", "r1"} {
		if err := events.ValidateRegion(ok); err != nil {
			t.Errorf("ValidateRegion(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "US-EAST", "us.east", "us east", "1us", "us_east", strings.Repeat("a", 33)} {
		if events.ValidateRegion(bad) == nil {
			t.Errorf("ValidateRegion(%q) accepted", bad)
		}
	}
}
