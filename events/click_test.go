package events_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

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
	f.Add("curl/8", "", events.AppendClickBatch(nil, events.ClickBatch{ID: "b", Region: "ap-south", Time: time.Unix(1, 2),
		Clicks: []events.Click{{Code: "3abcdefg", UnixMs: -5, Referrer: "x.example", Agent: events.AgentBot, Bot: true}, {Code: "3abcdefh", UnixMs: 7}}}))
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
			// Whatever decodes survives the binary form, which regions
			// publish (a JSON batch's strings may not be valid UTF-8 only
			// if json replaced them: it always does).
			again, err := events.DecodeClickBatch(events.AppendClickBatch(nil, b))
			if err != nil {
				t.Fatalf("re-encoded batch refused: %v (%+v)", err, b)
			}
			// Times outside Unix nanoseconds (years 1678 to 2261) do not
			// survive; a region's clock never writes one.
			if y := b.Time.Year(); y > 1677 && y < 2262 && !again.Time.Equal(b.Time) {
				t.Fatalf("time %v re-encoded as %v", b.Time, again.Time)
			}
			if len(again.Clicks) != len(b.Clicks) {
				t.Fatalf("%d clicks re-encoded as %d", len(b.Clicks), len(again.Clicks))
			}
			for i, w := range b.Clicks {
				g := again.Clicks[i]
				if w.Code != g.Code || w.UnixMs != g.UnixMs || w.Bot != g.Bot || (len(w.Referrer) <= 1024 && w.Referrer != g.Referrer) {
					t.Fatalf("click %d: %+v re-encoded as %+v", i, w, g)
				}
			}
		}
	})
}

// TestClickBatchBinary: a batch survives the binary form (bots, every
// agent class, times going back and forth, an empty referrer), is smaller
// than its JSON, and bad or truncated forms are refused with an error;
// JSON batches (what regions published before) still decode.
func TestClickBatchBinary(t *testing.T) {
	at := time.Date(2026, 12, 6, 3, 0, 0, 123456789, time.UTC)
	b := events.ClickBatch{ID: "0193a1b2-0000-7000-8000-000000000001", Region: "eu-west", Time: at}
	agents := []string{events.AgentBrowser, events.AgentMobile, events.AgentCLI, events.AgentBot, events.AgentOther}
	for i := range 50 {
		b.Clicks = append(b.Clicks, events.Click{Code: fmt.Sprintf("2abc%04d", i), UnixMs: at.UnixMilli() + int64((i%7)*1000-3000),
			Referrer: []string{"", "news.example.com"}[i%2], Agent: agents[i%5], Bot: i%5 == 3})
	}
	bin := events.AppendClickBatch(nil, b)
	js, _ := json.Marshal(b)
	got, err := events.DecodeClickBatch(bin)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("binary round trip: %v\n got %+v\nwant %+v", err, got, b)
	}
	if len(bin)*2 > len(js) {
		t.Errorf("binary %d bytes against JSON %d: want less than half", len(bin), len(js))
	}
	if got, err := events.DecodeClickBatch(js); err != nil || !reflect.DeepEqual(got, b) {
		t.Fatalf("JSON batch: %v", err)
	}
	// An agent class nobody knows is written as other.
	odd := events.ClickBatch{ID: "x", Region: "us-east", Time: at, Clicks: []events.Click{{Code: "1abcdefg", Agent: "toaster"}}}
	if got, err := events.DecodeClickBatch(events.AppendClickBatch(nil, odd)); err != nil || got.Clicks[0].Agent != events.AgentOther {
		t.Fatalf("unknown agent: %+v, %v", got, err)
	}
	for n := 1; n < len(bin); n += 7 {
		if _, err := events.DecodeClickBatch(bin[:n]); err == nil {
			t.Fatalf("a batch cut at %d of %d bytes decoded", n, len(bin))
		}
	}
	for name, bad := range map[string][]byte{
		"trailing bytes":   append(slices.Clone(bin), 0),
		"agent class 9":    append(events.AppendClickBatch(nil, odd)[:len(events.AppendClickBatch(nil, odd))-1], 9),
		"huge click count": {0xC1, 1, 'x', 1, 'y', 0, 0xff, 0xff, 0x7f},
		"bad code":         events.AppendClickBatch(nil, events.ClickBatch{ID: "x", Region: "y", Time: at, Clicks: []events.Click{{Code: "no/slash"}}}),
		"no id":            events.AppendClickBatch(nil, events.ClickBatch{Region: "y", Time: at}),
	} {
		if _, err := events.DecodeClickBatch(bad); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
