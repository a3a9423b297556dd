package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"shortener/events"
)

// Source delivers stored records to a Projector. replicator.Feed is the
// implementation; it is declared here, where it is used.
type Source interface {
	// Next returns at least one and at most max records, waiting for the first.
	Next(ctx context.Context, max int) ([]events.Record, error)
	// Get fetches one record by stream sequence, to fill a gap.
	Get(ctx context.Context, stream string, seq uint64) (events.Record, error)
	// Ack tells the source that everything Next returned is applied, but
	// for the streams held (held(stream) true): stopped, they must be
	// delivered again from their checkpoint after a restart.
	Ack(ctx context.Context, held func(stream string) bool) error
}

// Projector moves records from a Source into a Store, in batches, filling
// any gap in a stream's sequence before applying what follows it.
type Projector struct {
	store  *Store
	source Source
	log    *slog.Logger
	batch  int

	mu      sync.Mutex
	lastErr error
}

// NewProjector returns a Projector. It does no I/O.
func NewProjector(store *Store, source Source, log *slog.Logger) *Projector {
	if log == nil {
		log = slog.Default()
	}
	return &Projector{store: store, source: source, log: log, batch: 512}
}

// Err returns the last error that stopped a batch from being applied, or nil
// once a batch has been applied since. Readiness reports it.
func (p *Projector) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Run applies records until ctx ends. A batch that cannot be applied (the
// disk is full, say) is retried with backoff; it is never dropped.
func (p *Projector) Run(ctx context.Context) error {
	for {
		recs, err := p.source.Next(ctx, p.batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("next records: %w", err)
		}
		wait := 50 * time.Millisecond
		for {
			err = p.apply(ctx, recs)
			p.mu.Lock()
			p.lastErr = err
			p.mu.Unlock()
			if err == nil {
				break
			}
			p.log.Error("projection batch failed; retrying", "err", err, "records", len(recs), "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
		}
		held := func(stream string) bool { _, ok := p.store.HaltedAt(stream); return ok }
		if err := p.source.Ack(ctx, held); err != nil && ctx.Err() == nil {
			// The next ack acknowledges these too (the consumer acks all
			// up to a sequence), and redeliveries are skipped by checkpoint.
			p.log.Warn("ack failed", "err", err)
		}
	}
}

func (p *Projector) apply(ctx context.Context, recs []events.Record) error {
	filled, err := p.fill(ctx, recs)
	if err != nil {
		return err
	}
	_, err = p.store.Apply(filled)
	var gap *GapError
	if errors.As(err, &gap) {
		return fmt.Errorf("unfilled gap (a bug): %w", err)
	}
	return err
}

// fill returns recs in stream order with the records missing between the
// store's checkpoint and each record fetched from the source. The records
// of a stream halted at a record the store does not understand, after that
// record, are left out and nothing is fetched for them: the stream stays
// where it stopped without fetching the same records again and again.
func (p *Projector) fill(ctx context.Context, recs []events.Record) ([]events.Record, error) {
	next := map[string]uint64{}
	out := make([]events.Record, 0, len(recs))
	for _, r := range recs {
		if h, ok := p.store.HaltedAt(r.Stream); ok && r.Seq > h.Seq {
			continue
		}
		want, ok := next[r.Stream]
		if !ok {
			want = p.store.Checkpoint(r.Stream) + 1
		}
		if r.Seq < want {
			continue
		}
		for seq := want; seq < r.Seq; seq++ {
			m, err := p.source.Get(ctx, r.Stream, seq)
			if err != nil {
				return nil, fmt.Errorf("fill gap: %w", err)
			}
			out = append(out, m)
		}
		out = append(out, r)
		next[r.Stream] = r.Seq + 1
	}
	return out, nil
}
