package load

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReadHistory(t *testing.T) {
	in := `{"seq":1,"op":"redirect","target":"a","intended":"2026-01-01T00:00:01Z","start":"2026-01-01T00:00:01Z","end":"2026-01-01T00:00:01.5Z","status":302,"ok":true,"code":"c","url":"https://x/","err":""}

{"kind":"op","seq":0,"op":"create","target":"a","intended":"2026-01-01T00:00:00Z","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00.1Z","status":201,"ok":true,"code":"c","url":"https://x/","err":"","ack":true,"addr":"127.0.1.1:8080","region":"us-east"}
{"kind":"dns","target":"a","time":"2026-01-01T00:00:00Z","addr":"127.0.1.1:8080","region":"us-east","ttl":1,"changed":true,"err":""}
{"kind":"regions","region":"eu-west","url":"http://127.0.2.1:8080/api/v1/regions","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00.01Z","status":200,"ok":true,"err":"","time":"2026-01-01T00:00:00Z","origins":[{"origin":"us-east","rpo_events":3,"rpo_known":true,"rpo_seconds":0.5,"lag_events":1,"mirror_active":true}]}
{"kind":"future","x":1}
`
	h, err := ReadHistory(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != 2 || h.Ops[0].Seq != 0 || !h.Ops[0].Ack || h.Ops[0].Region != "us-east" || h.Ops[1].Op != "redirect" ||
		!h.Ops[1].End.Equal(time.Date(2026, 1, 1, 0, 0, 1, 5e8, time.UTC)) {
		t.Errorf("ops %+v", h.Ops)
	}
	if len(h.DNS) != 1 || h.DNS[0].TTL != 1 || !h.DNS[0].Changed {
		t.Errorf("dns %+v", h.DNS)
	}
	o, ok := h.Regions[0].Origin("us-east")
	if len(h.Regions) != 1 || !ok || o.RPOEvents != 3 || !o.RPOKnown || o.LagEvents != 1 || o.RPOSeconds != 0.5 {
		t.Errorf("regions %+v", h.Regions)
	}
	if h.RegionOfURL("http://127.0.2.1:8080/") != "eu-west" {
		t.Error("RegionOfURL")
	}
	for _, bad := range []string{
		"{",
		`{"op":"delete","target":"a"}`,
		`{"op":"create"}`,
		`{"kind":"regions"}`,
		`{"kind":"dns"}`,
		`{"op":"create","target":"a","start":"yesterday"}`,
		`[1]`,
	} {
		if _, err := ReadHistory(strings.NewReader(in + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 7") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := ReadHistory(strings.NewReader(strings.Repeat("x", maxHistoryLine+1))); err == nil {
		t.Error("no error for an endless line")
	}
}

// TestHistoryRoundTrip reads back what Run wrote.
func TestHistoryRoundTrip(t *testing.T) {
	rs := startFakeRegions(t, 1)
	var hist bytes.Buffer
	rep := run(t, Config{Targets: []Target{{Name: "us-east", BaseURL: rs[0].url()}}, Regions: regionsOf(rs),
		Rate: 100, Duration: 500 * time.Millisecond, Workers: 4, CreateRatio: 0.3, APIKey: "k", History: &hist})
	h, err := ReadHistory(&hist)
	if err != nil {
		t.Fatal(err)
	}
	checkHistoryFields(t, h, rep)
	if len(h.Regions) == 0 || len(h.DNS) != 0 {
		t.Errorf("%d regions records, %d dns records", len(h.Regions), len(h.DNS))
	}
}

func FuzzReadHistory(f *testing.F) {
	f.Add([]byte(`{"kind":"op","seq":0,"op":"create","target":"a","intended":"2026-01-01T00:00:00Z","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:00.1Z","status":201,"ok":true,"code":"c","url":"u","err":"","ack":true,"addr":"127.0.1.1:8080","region":"us-east"}`))
	f.Add([]byte(`{"kind":"dns","target":"a","time":"2026-01-01T00:00:00Z","addr":"a","region":"r","ttl":1,"changed":true,"err":""}`))
	f.Add([]byte(`{"kind":"regions","region":"r","origins":[{"origin":"o","rpo_events":1}]}` + "\n" + `{"op":"redirect","target":"t"}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadHistory(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, o := range h.Ops {
			if o.Target == "" || (o.Op != "redirect" && o.Op != "create") {
				t.Fatalf("accepted %+v", o)
			}
		}
		if len(h.Ops) > 0 {
			// The analysis takes any history the reader accepts.
			fr, err := Failover(h, h.Ops[0].Target, time.Unix(1, 0), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			fr.WriteText(&bytes.Buffer{})
		}
	})
}
