package replicator

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SetCatchUp sets how old an event at the head starts a catch-up and how
// often a catch-up fetches, and returns a func restoring them.
func SetCatchUp(age, every time.Duration) func() {
	a, e := catchupAge, catchupEvery
	catchupAge, catchupEvery = age, every
	return func() { catchupAge, catchupEvery = a, e }
}

// CatchUps is how many times the feed's pullers switched to fetching.
func (f *Feed) CatchUps() int64 { return f.catchUps.Load() }

// HandOn gives msgs, in turn, to a puller of stream st that last handed
// on sequence last, and returns what reached the feed ("delivered #N data"
// or "fetched #N data") and the puller's last sequence after them.
func HandOn(ctx context.Context, st jetstream.Stream, last uint64, msgs ...jetstream.Msg) ([]string, uint64, error) {
	name := st.CachedInfo().Config.Name
	p := &puller{f: newFeed(nil, "test"), stream: st, name: name, last: last}
	for _, m := range msgs {
		if _, ok := p.handOn(ctx, m); !ok {
			return nil, p.last, ctx.Err()
		}
	}
	var got []string
	for len(p.f.msgs) > 0 {
		d := <-p.f.msgs
		if d.m == nil {
			got = append(got, fmt.Sprintf("fetched #%d %s", d.rec.Seq, d.rec.Data))
			continue
		}
		md, err := d.m.Metadata()
		if err != nil {
			return nil, p.last, err
		}
		got = append(got, fmt.Sprintf("delivered #%d %s", md.Sequence.Stream, d.m.Data()))
	}
	return got, p.last, nil
}
