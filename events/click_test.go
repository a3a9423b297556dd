package events_test

import (
	"strings"
	"testing"

	"shortener/events"
)

func TestClassifyAgent(t *testing.T) {
	for _, tc := range []struct {
		ua    string
		class string
		bot   bool
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", events.AgentBrowser, false},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", events.AgentMobile, false},
		{"Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile Safari/537.36", events.AgentMobile, false},
		{"curl/8.5.0", events.AgentCLI, false},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", events.AgentBot, true},
		{"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", events.AgentBot, true},
		{"facebookexternalhit/1.1", events.AgentBot, true},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36", events.AgentBot, true},
		{"Go-http-client/1.1", events.AgentBot, true},
		{"", events.AgentBot, true},
		{"SomethingElse/1.0", events.AgentOther, false},
	} {
		class, bot := events.ClassifyAgent(tc.ua)
		if class != tc.class || bot != tc.bot {
			t.Errorf("ClassifyAgent(%q) = %s, %t; want %s, %t", tc.ua, class, bot, tc.class, tc.bot)
		}
	}
}

func TestReferrerHost(t *testing.T) {
	for ref, want := range map[string]string{
		"https://News.Example.com/a/b?q=secret": "news.example.com",
		"http://example.org:8080/":              "example.org",
		"":                                      "",
		"android-app://com.slack":               "",
		"not a url":                             "",
		"/relative/path":                        "",
		"https://" + strings.Repeat("a", 300):   "",
	} {
		if got := events.ReferrerHost(ref); got != want {
			t.Errorf("ReferrerHost(%q) = %q, want %q", ref, got, want)
		}
	}
}

func FuzzClickInput(f *testing.F) {
	f.Add("Mozilla/5.0", "https://example.com/x", []byte(`{"id":"a","region":"us-east","time":"2026-11-22T00:00:00Z","clicks":[{"c":"1abcdefg","t":1,"ua":"browser"}]}`))
	f.Add("", "::", []byte(`{"clicks":[{}]}`))
	f.Fuzz(func(t *testing.T, ua, ref string, batch []byte) {
		class, bot := events.ClassifyAgent(ua)
		if class == "" || (bot && class != events.AgentBot) {
			t.Fatalf("ClassifyAgent(%q) = %q, %t", ua, class, bot)
		}
		if h := events.ReferrerHost(ref); strings.ContainsAny(h, "/?#@") {
			t.Fatalf("ReferrerHost(%q) = %q: more than a host", ref, h)
		}
		if b, err := events.DecodeClickBatch(batch); err == nil {
			if b.ID == "" || b.Region == "" || len(b.Clicks) > events.MaxClickBatch {
				t.Fatalf("accepted an invalid batch: %+v", b)
			}
		}
	})
}
