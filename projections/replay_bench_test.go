package projections_test

import (
	"fmt"
	"testing"
	"time"

	"shortener/events"
	"shortener/projections"
)

// benchRecords are n LinkCreated events as `shortener bench replay` writes
// them: one stream, a fresh generated code each.
func benchRecords(b *testing.B, n int) []events.Record {
	recs := make([]events.Record, n)
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := range recs {
		code := events.NewCode('1')
		e, err := events.New(events.TypeLinkCreated, code, "us-east", "bench", at.Add(time.Duration(i)*time.Microsecond),
			events.LinkCreated{URL: "https://example.com/bench/" + code, RedirectStatus: 302})
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = events.Record{Stream: "LINKS_US_EAST", Seq: uint64(i + 1), Data: e.Encode()}
	}
	return recs
}

// BenchmarkReplay times an audit replay of in-memory records (no NATS):
// decode, fold, Pebble, Finish (flush, reopen).
func BenchmarkReplay(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		recs := benchRecords(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var applying, finishing time.Duration
			for b.Loop() {
				r, err := projections.NewReplay(b.TempDir(), projections.ReplayOptions{Expect: len(recs)})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for i := 0; i < len(recs); i += 1024 {
					if err := r.Apply(recs[i:min(i+1024, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				applying += time.Since(start)
				start = time.Now()
				s, err := r.Finish()
				if err != nil {
					b.Fatal(err)
				}
				finishing += time.Since(start)
				s.Close()
			}
			b.ReportMetric(applying.Seconds()/float64(b.N), "s-apply")
			b.ReportMetric(finishing.Seconds()/float64(b.N), "s-finish")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkStoreApply times a live projection's Apply of LinkCreated
// events in batches of 512 (the projector's), synced as regions run it.
func BenchmarkStoreApply(b *testing.B) {
	recs := benchRecords(b, 50_000)
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			for b.Loop() {
				s, err := projections.Open(b.TempDir(), projections.Options{SyncWrites: sync})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(recs); i += 512 {
					if _, err := s.Apply(recs[i:min(i+512, len(recs))]); err != nil {
						b.Fatal(err)
					}
				}
				s.Close()
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
