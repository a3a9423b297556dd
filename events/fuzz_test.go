package events_test

import (
	"strings"
	"testing"
	"time"

	"shortener/events"
)

func FuzzDecode(f *testing.F) {
	e, _ := events.New(events.TypeLinkCreated, "1abcdefg", "us-east", "k", time.Unix(1e9, 0), events.LinkCreated{URL: "https://a.example/", RedirectStatus: 302})
	f.Add(e.Encode())
	f.Add([]byte(`{"id":"0190f1e2-0000-7000-8000-000000000000","type":"LinkUpdated","schema":1,"code":"abc","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"x"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := events.Decode(data)
		if err != nil {
			if events.KindOf(err) != events.Invalid {
				t.Fatalf("Decode error of kind %q, want invalid: %v", events.KindOf(err), err)
			}
			return
		}
		// A decoded event re-encodes to something that decodes to the same event,
		// and folds without panicking.
		again, err := events.Decode(env.Encode())
		if err != nil || again.ID != env.ID || again.Type != env.Type || again.Code != env.Code {
			t.Fatalf("re-decode: %+v, %v", again, err)
		}
		_ = events.Fold([]events.Envelope{env, again})
	})
}

func FuzzNormalizeURL(f *testing.F) {
	for _, s := range []string{"https://example.com/a?b#c", "http://bank.com@evil.example", "https://bücher.example/", "http://[::1]:80/", "http://x\r\n", "javascript:x", "http://a:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := events.NormalizeURL(raw, 0)
		if err != nil {
			if events.KindOf(err) != events.Invalid {
				t.Fatalf("error of kind %q: %v", events.KindOf(err), err)
			}
			return
		}
		if !strings.HasPrefix(out, "http://") && !strings.HasPrefix(out, "https://") {
			t.Fatalf("accepted %q as %q: not http(s)", raw, out)
		}
		for _, c := range out {
			if c < 0x21 || c == 0x7f {
				t.Fatalf("accepted %q as %q with a control character", raw, out)
			}
		}
		if len(out) > events.DefaultMaxURLLen {
			t.Fatalf("accepted %q as %q, longer than the cap", raw, out)
		}
		// Normalising is idempotent: the stored form is accepted as itself.
		again, err := events.NormalizeURL(out, 0)
		if err != nil || again != out {
			t.Fatalf("NormalizeURL(%q) = %q, but NormalizeURL(%q) = %q, %v", raw, out, out, again, err)
		}
	})
}

func FuzzValidateAlias(f *testing.F) {
	for _, s := range []string{"launch", "api", "1abcdefg", "a-b_c", "ab", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, alias string) {
		if events.ValidateAlias(alias) != nil {
			return
		}
		if events.IsGenerated(alias) {
			t.Fatalf("alias %q accepted though it has the form of a generated code", alias)
		}
		if events.ValidateCode(alias) != nil {
			t.Fatalf("alias %q accepted but refused as a code", alias)
		}
		for _, c := range alias {
			if c == '.' || c == '*' || c == '>' || c <= ' ' || c > 0x7e {
				t.Fatalf("alias %q holds %q, unsafe in a NATS subject", alias, c)
			}
		}
	})
}
