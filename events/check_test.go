package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"shortener/events"
)

func mustNew(t testing.TB, typ events.Type, code, origin string, payload any) events.Envelope {
	t.Helper()
	e, err := events.New(typ, code, origin, "k", time.Unix(1e9, 0), payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestCheck(t *testing.T) {
	created := func(code, origin, url string) events.Envelope {
		return mustNew(t, events.TypeLinkCreated, code, origin, events.LinkCreated{URL: url, RedirectStatus: 302})
	}
	updated := func(code, origin, url string) events.Envelope {
		return mustNew(t, events.TypeLinkUpdated, code, origin, events.LinkUpdated{URL: &url})
	}
	deleted := mustNew(t, events.TypeLinkDeleted, "1abcdefg", "eu-west", events.LinkDeleted{})
	beat := mustNew(t, events.TypeRegionHeartbeat, "", "us-east", events.RegionHeartbeat{})
	ok := created("1abcdefg", "us-east", "https://example.com/a")
	digits := map[string]byte{"us-east": '1', "eu-west": '2', "x-at-y": '4', "x": '5'}
	tests := []struct {
		name            string
		e               events.Envelope
		stream, subject string
		want            events.Reason // "" for accepted
	}{
		{"own create in own stream", ok, "LINKS_US_EAST", "links.us-east.1abcdefg", ""},
		{"own create in a mirror", ok, "LINKS_US_EAST_AT_EU_WEST", "links.us-east.1abcdefg", ""},
		{"alias created anywhere", created("spring-sale", "eu-west", "https://example.com/"), "LINKS_EU_WEST", "links.eu-west.spring-sale", ""},
		{"heartbeat", beat, "LINKS_US_EAST_AT_EU_WEST", "links.us-east._hb", ""},
		{"delete of another region's code (failover)", deleted, "LINKS_EU_WEST", "links.eu-west.1abcdefg", ""},
		{"update of another region's code (failover)", updated("1abcdefg", "eu-west", "https://example.com/b"), "LINKS_EU_WEST", "links.eu-west.1abcdefg", ""},
		{"update without a URL", mustNew(t, events.TypeLinkUpdated, "1abcdefg", "us-east", events.LinkUpdated{ClearExpiry: true}), "LINKS_US_EAST", "links.us-east.1abcdefg", ""},

		{"origin of another region", created("spring-sale", "eu-west", "https://example.com/"), "LINKS_US_EAST", "links.us-east.spring-sale", events.ReasonOrigin},
		{"origin of another region in a mirror", created("spring-sale", "eu-west", "https://example.com/"), "LINKS_US_EAST_AT_EU_WEST", "links.us-east.spring-sale", events.ReasonOrigin},
		{"heartbeat of another region", beat, "LINKS_EU_WEST", "links.eu-west._hb", events.ReasonOrigin},
		{"code is not the subject's", ok, "LINKS_US_EAST", "links.us-east.1zzzzzzz", events.ReasonSubject},
		{"link event on the heartbeat subject", ok, "LINKS_US_EAST", "links.us-east._hb", events.ReasonSubject},
		{"heartbeat on a code's subject", beat, "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonSubject},
		{"subject of another stream", ok, "LINKS_EU_WEST", "links.us-east.1abcdefg", events.ReasonSubject},
		{"no subject", ok, "LINKS_US_EAST", "", events.ReasonSubject},
		{"subject with a deeper token", ok, "LINKS_US_EAST", "links.us-east.1abcdefg.x", events.ReasonSubject},
		{"stream name of a region with _AT_ in it", created("spring-sale", "x", "https://example.com/"), "LINKS_X_AT_Y", "links.x-at-y.spring-sale", events.ReasonOrigin},
		{"region x-at-y in its own stream", created("spring-sale", "x-at-y", "https://example.com/"), "LINKS_X_AT_Y", "links.x-at-y.spring-sale", ""},
		{"another region's generated code created", created("2abcdefg", "us-east", "https://example.com/"), "LINKS_US_EAST", "links.us-east.2abcdefg", events.ReasonCodeOwner},
		{"a generated code of no region", created("9abcdefg", "us-east", "https://example.com/"), "LINKS_US_EAST", "links.us-east.9abcdefg", events.ReasonCodeOwner},
		{"a region without a digit creates", created("4abcdefg", "ap-south", "https://example.com/"), "LINKS_AP_SOUTH", "links.ap-south.4abcdefg", events.ReasonCodeOwner},
		{"javascript: URL", created("1abcdefg", "us-east", "javascript:alert(1)"), "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonURL},
		{"URL not in stored form", created("1abcdefg", "us-east", "HTTPS://Example.COM/a"), "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonURL},
		{"URL with userinfo", created("1abcdefg", "us-east", "http://bank.com@evil.example/"), "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonURL},
		{"URL over the fold's cap", created("1abcdefg", "us-east", "https://example.com/"+strings.Repeat("a", events.FoldMaxURLLen)), "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonURL},
		{"updated to a javascript: URL", updated("1abcdefg", "us-east", "javascript:x"), "LINKS_US_EAST", "links.us-east.1abcdefg", events.ReasonURL},
	}
	rules := events.Rules{Digits: digits}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rej := rules.Check(tt.e, tt.stream, tt.subject)
			switch {
			case tt.want == "" && rej != nil:
				t.Fatalf("refused: %v", rej)
			case tt.want != "" && rej == nil:
				t.Fatalf("accepted, want refused for %s", tt.want)
			case rej != nil && rej.Reason != tt.want:
				t.Fatalf("refused for %v, want %s", rej, tt.want)
			}
			if rej != nil {
				var r *events.Rejection
				if !errors.As(error(rej), &r) || !strings.HasPrefix(rej.Error(), string(tt.want)+": ") {
					t.Fatalf("error %q", rej.Error())
				}
			}
		})
	}
	// Nil digits are the default table: us-east owns '1'.
	if rej := (events.Rules{}).Check(ok, "LINKS_US_EAST", "links.us-east.1abcdefg"); rej != nil {
		t.Fatalf("default digits: %v", rej)
	}
}

func TestParseDigits(t *testing.T) {
	got, err := events.ParseDigits("us-east=1, eu-west=2,ap-south=3")
	if err != nil || len(got) != 3 || got["eu-west"] != '2' {
		t.Fatalf("ParseDigits = %v, %v", got, err)
	}
	if s := events.FormatDigits(got); s != "ap-south=3,eu-west=2,us-east=1" {
		t.Fatalf("FormatDigits = %q", s)
	}
	for _, bad := range []string{"us-east=1,eu-west=1", "us-east=1,us-east=2", "us-east=a", "us-east", "US=1", "us-east=12"} {
		if _, err := events.ParseDigits(bad); err == nil {
			t.Errorf("ParseDigits(%q) accepted", bad)
		}
	}
	m := events.MergeDigits(events.DefaultDigits, "eu-west", '1')
	if len(m) != 2 || m["eu-west"] != '1' || m["ap-south"] != '3' {
		t.Fatalf("MergeDigits = %v", m)
	}
	if err := events.ValidateDigits(map[string]byte{"a": '1', "b": '1'}); err == nil {
		t.Fatal("ValidateDigits accepted a digit twice")
	}
}

// FuzzCheck: Check never panics, refuses only with a known reason, and
// accepts an event only where its subject, stream, origin, owner and URL
// agree.
func FuzzCheck(f *testing.F) {
	e := mustNew(f, events.TypeLinkCreated, "1abcdefg", "us-east", events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	f.Add(e.Encode(), "LINKS_US_EAST", "links.us-east.1abcdefg")
	f.Add(e.Encode(), "LINKS_US_EAST_AT_EU_WEST", "links.us-east.1abcdefg")
	f.Add(e.Encode(), "LINKS_EU_WEST", "links.eu-west.1abcdefg")
	f.Add([]byte(`{"id":"0190f1e2-0000-7000-8000-000000000000","type":"LinkUpdated","schema":1,"code":"abc","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"javascript:x"}}`), "LINKS_EU_WEST", "links.eu-west.abc")
	f.Add([]byte(`{"id":"0190f1e2-0000-7000-8000-000000000000","type":"RegionHeartbeat","schema":1,"origin":"eu-west","time":"2026-01-01T00:00:00Z"}`), "LINKS_EU_WEST", "links.eu-west._hb")
	f.Fuzz(func(t *testing.T, data []byte, stream, subject string) {
		e, err := events.Decode(data)
		if err != nil {
			return
		}
		rej := events.Rules{}.Check(e, stream, subject)
		if rej != nil {
			known := false
			for _, r := range events.Reasons {
				known = known || r == rej.Reason
			}
			if !known {
				t.Fatalf("unknown reason %q", rej.Reason)
			}
			return
		}
		if events.LogStream(e.Origin) != stream && !strings.HasPrefix(stream, events.LogStream(e.Origin)+"_AT_") {
			t.Fatalf("accepted origin %s in stream %s", e.Origin, stream)
		}
		want := events.LinkSubject(e.Origin, e.Code)
		if e.Type == events.TypeRegionHeartbeat {
			want = events.HeartbeatSubject(e.Origin)
		}
		if subject != want {
			t.Fatalf("accepted %s %q on subject %q", e.Type, e.Code, subject)
		}
		if e.Type == events.TypeLinkCreated && events.IsGenerated(e.Code) && events.DefaultDigits[e.Origin] != e.Code[0] {
			t.Fatalf("accepted a create of %s by %s", e.Code, e.Origin)
		}
		var p struct {
			URL *string `json:"url"`
		}
		if e.Type != events.TypeRegionHeartbeat && e.Type != events.TypeLinkDeleted && json.Unmarshal(e.Payload, &p) == nil && p.URL != nil {
			if n, err := events.NormalizeURL(*p.URL, events.FoldMaxURLLen); err != nil || n != *p.URL {
				t.Fatalf("accepted URL %q", *p.URL)
			}
		}
	})
}
