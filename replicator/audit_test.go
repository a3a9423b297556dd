package replicator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
	"shortener/replicator"
)

// auditLog writes n creates to us-east's stream, and an update and a
// delete of the first code, and returns the stream's records as stored.
func auditLog(ctx context.Context, t *testing.T, c *replicator.Conn, n int) []events.Record {
	t.Helper()
	if err := replicator.EnsureStream(ctx, c, "us-east"); err != nil {
		t.Fatal(err)
	}
	log := replicator.NewLog(c, "us-east", nil)
	for i := 0; i < n; i++ {
		if _, err := log.Append(ctx, created(t, fmt.Sprintf("code%04d", i)), true); err != nil {
			t.Fatal(err)
		}
	}
	u := "https://b.example/"
	up, _ := events.New(events.TypeLinkUpdated, "code0000", "us-east", "k", time.Now(), events.LinkUpdated{URL: &u})
	del, _ := events.New(events.TypeLinkDeleted, "code0000", "us-east", "k", time.Now(), events.LinkDeleted{})
	for _, e := range []events.Envelope{up, del} {
		if _, err := log.Append(ctx, e, false); err != nil {
			t.Fatal(err)
		}
	}
	var recs []events.Record
	err := replicator.Read(ctx, c, replicator.StreamName("us-east"), replicator.ReadOptions{Batch: 7}, func(rs []events.Record) error {
		recs = append(recs, rs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// mirrorOf creates a real JetStream mirror of us-east's stream named as
// region here's copy (no placement: the test has one server) and waits
// until it holds last.
func mirrorOf(ctx context.Context, t *testing.T, js jetstream.JetStream, here string, last uint64) string {
	t.Helper()
	cfg := replicator.MirrorConfig("us-east", here)
	cfg.Placement = nil
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := s.Info(ctx)
		if err == nil && info.State.LastSeq == last {
			return cfg.Name
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror %s never reached #%d: %+v %v", cfg.Name, last, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuditReadDiscoverAndCompareCopies(t *testing.T) {
	c, js := startJS(t, "us-east")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := auditLog(ctx, t, c, 40)
	if len(recs) != 42 {
		t.Fatalf("read %d records, want 42", len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Stream != "LINKS_US_EAST" {
			t.Fatalf("record %d: %s #%d", i, r.Stream, r.Seq)
		}
	}
	// A bounded read, and a read of one code's subject.
	var some []uint64
	_ = replicator.Read(ctx, c, "LINKS_US_EAST", replicator.ReadOptions{From: 5, To: 9}, func(rs []events.Record) error {
		for _, r := range rs {
			some = append(some, r.Seq)
		}
		return nil
	})
	if fmt.Sprint(some) != "[5 6 7 8 9]" {
		t.Fatalf("read 5..9: %v", some)
	}
	var ofCode []uint64
	err := replicator.Read(ctx, c, "LINKS_US_EAST", replicator.ReadOptions{Subject: replicator.Subject("us-east", "code0000")}, func(rs []events.Record) error {
		for _, r := range rs {
			ofCode = append(ofCode, r.Seq)
		}
		return nil
	})
	if err != nil || fmt.Sprint(ofCode) != "[1 41 42]" {
		t.Fatalf("events of code0000: %v, %v; want [1 41 42]", ofCode, err)
	}

	mirror := mirrorOf(ctx, t, js, "eu-west", 42)
	log, err := replicator.DiscoverLog(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(log); got != "[{LINKS_US_EAST_AT_EU_WEST us-east eu-west true 1 42} {LINKS_US_EAST us-east us-east false 1 42}]" {
		t.Fatalf("discovered %s", got)
	}
	rep, err := replicator.CompareCopies(ctx, c, "LINKS_US_EAST", mirror, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Equal() || rep.Common != 42 || rep.Ranges != 6 {
		t.Fatalf("a real mirror: %+v, want equal over 6 ranges up to #42", rep)
	}

	// A copy whose record #27 was re-published differently: found, and
	// the first differing sequence named.
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "LINKS_US_EAST_AT_AP_SOUTH_FORGED", Subjects: []string{"forged.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		data := r.Data
		if r.Seq == 27 {
			data = []byte(strings.Replace(string(data), "https://a.example/", "https://evil.example/", 1))
		}
		if _, err := js.Publish(ctx, fmt.Sprintf("forged.%d", r.Seq), data); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = replicator.CompareCopies(ctx, c, "LINKS_US_EAST", "LINKS_US_EAST_AT_AP_SOUTH_FORGED", 8)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Equal() || rep.FirstDiff != 27 || rep.RangesDiffer != 1 {
		t.Fatalf("tampered copy: %+v, want the first difference at #27 in one range", rep)
	}
	if !strings.Contains(rep.MirrorEvent, "evil.example") || !strings.Contains(rep.OriginEvent, "https://a.example/") || !strings.Contains(rep.OriginEvent, "code0026") {
		t.Fatalf("the report does not show what differs: origin %q, copy %q", rep.OriginEvent, rep.MirrorEvent)
	}
}
