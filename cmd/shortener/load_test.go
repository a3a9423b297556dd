package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loadHistoryLines writes a small failover history: us-east's clients fail
// from the kill at t0+1s until eu-west serves them at t0+1.8s.
func loadHistoryLines(t0 time.Time) string {
	var b strings.Builder
	op := func(seq int, client, region, kind string, at time.Duration, ok bool, code string) {
		ts := t0.Add(at).UTC().Format(time.RFC3339Nano)
		status := 302
		if kind == "create" {
			status = 201
		}
		if !ok {
			status = 0
		}
		fmt.Fprintf(&b, `{"kind":"op","seq":%d,"op":%q,"target":%q,"intended":%q,"start":%q,"end":%q,"status":%d,"ok":%t,"code":%q,"url":"u","err":"","ack":%t,"addr":"x","region":%q}`+"\n",
			seq, kind, client, ts, ts, ts, status, ok, code, ok && kind == "create", region)
	}
	op(0, "us-east", "us-east", "create", 200*time.Millisecond, true, "k1")
	op(1, "eu-west", "eu-west", "redirect", 300*time.Millisecond, true, "k1")
	op(2, "us-east", "us-east", "create", 900*time.Millisecond, true, "k2")
	op(3, "us-east", "us-east", "redirect", 1200*time.Millisecond, false, "")
	op(4, "us-east", "us-east", "redirect", 1500*time.Millisecond, false, "")
	op(5, "us-east", "eu-west", "redirect", 1800*time.Millisecond, true, "k1")
	op(6, "eu-west", "eu-west", "redirect", 1900*time.Millisecond, true, "k2")
	fmt.Fprintf(&b, `{"kind":"regions","region":"eu-west","url":"http://x/api/v1/regions","start":%q,"end":%q,"status":200,"ok":true,"time":%q,"origins":[{"origin":"us-east","rpo_events":2,"rpo_known":true,"rpo_seconds":0.4,"lag_events":1,"mirror_active":true}]}`+"\n",
		t0.Add(500*time.Millisecond).Format(time.RFC3339Nano), t0.Add(510*time.Millisecond).Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
	return b.String()
}

func TestLoadAnalyze(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	hist := filepath.Join(dir, "h.jsonl")
	if err := os.WriteFile(hist, []byte(loadHistoryLines(t0)), 0o644); err != nil {
		t.Fatal(err)
	}
	// eu-west holds k1 but not k2.
	west := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/k1" {
			w.Header().Set("Location", "https://example.com/")
			w.WriteHeader(http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer west.Close()
	killed := t0.Add(time.Second).Format(time.RFC3339Nano)
	var out, errOut bytes.Buffer
	code := run([]string{"load", "analyze", "--history", hist, "--region", "us-east", "--killed-at", killed,
		"--probe", west.URL, "--max-rto", "1s", "--min-success", "0.9999"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"RTO 800ms", "served by eu-west", "2 ops, 300ms", "creates acknowledged by us-east before the kill: 2",
		"reported RPO for us-east by eu-west", "2 events", "2 checked, 1 present, 1 missing (404, or 429: 0)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	code = run([]string{"load", "analyze", "--history", hist, "--region", "us-east", "--killed-at", killed, "--json", "-"}, &out, &errOut)
	var v struct {
		RTO   int64 `json:"rto_ns"`
		Acked []struct {
			Code string `json:"code"`
		} `json:"acked"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); code != 0 || err != nil || v.RTO != int64(800*time.Millisecond) || len(v.Acked) != 2 {
		t.Errorf("json: exit %d, %v, %+v\n%s", code, err, v, out.String())
	}

	// An RTO over --max-rto fails the command.
	if code := run([]string{"load", "analyze", "--history", hist, "--region", "us-east", "--killed-at", killed, "--max-rto", "500ms"}, &out, &errOut); code != 1 {
		t.Errorf("--max-rto 500ms: exit %d", code)
	}

	// Bad input: exit 2 and one line.
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"op\":\"redirect\",\"target\":\"a\"}\nnot json\n"), 0o644)
	for name, args := range map[string][]string{
		"no region":    {"load", "analyze", "--history", hist, "--killed-at", killed},
		"bad time":     {"load", "analyze", "--history", hist, "--region", "us-east", "--killed-at", "yesterday"},
		"bad up":       {"load", "analyze", "--history", hist, "--region", "us-east", "--killed-at", killed, "--up-at", "soon"},
		"no file":      {"load", "analyze", "--history", filepath.Join(dir, "none"), "--region", "us-east", "--killed-at", killed},
		"bad line":     {"load", "analyze", "--history", bad, "--region", "a", "--killed-at", killed},
		"no clients":   {"load", "analyze", "--history", hist, "--region", "mars", "--killed-at", killed},
		"bad client":   {"load", "--client", "us-east", "--duration", "1s"},
		"both modes":   {"load", "--client", "us-east=127.0.1.10", "--target", "a=http://127.0.0.1:1"},
		"no targets":   {"load", "--duration", "1s"},
		"bad --region": {"load", "--target", "a=http://127.0.0.1:1", "--region", "b"},
	} {
		errOut.Reset()
		code := run(args, &out, &errOut)
		if code != 2 || strings.Count(errOut.String(), "\n") != 1 {
			t.Errorf("%s: exit %d, stderr %q", name, code, errOut.String())
		}
	}
}
