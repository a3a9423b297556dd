package auditor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"shortener/events"
	"shortener/projections"
	"shortener/replicator"
)

// ExportLine is one record of the log as Export writes it.
type ExportLine struct {
	Stream  string          `json:"stream"`
	Origin  string          `json:"origin"`
	Seq     uint64          `json:"seq"`
	Event   json.RawMessage `json:"event,omitempty"`   // the stored envelope, as stored
	Invalid string          `json:"invalid,omitempty"` // why the record is not a valid event
	Data    string          `json:"data,omitempty"`    // such a record's bytes
}

// Export writes every record of every origin's stream (or, with reg, of
// the copies reg holds) to out as JSON lines, in sequence order, up to u;
// it returns how many it wrote. A record that is not a valid event is
// written with Invalid and Data.
func (a *Auditor) Export(ctx context.Context, out io.Writer, reg string, u projections.Until, skipHeartbeats bool) (int, error) {
	cut := a.originCut()
	if reg != "" {
		if len(a.log.HeldBy(reg)) == 0 {
			return 0, fmt.Errorf("region %s holds no copy of the log", reg)
		}
		cut = a.heldCut(reg)
	}
	srcs, err := a.sourcesFor(cut, u.Seq)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(out, 1<<20)
	enc := json.NewEncoder(w)
	n := 0
	for _, s := range srcs {
		c, _ := a.log.Named(s.Read)
		err := replicator.Read(ctx, a.js, s.Read, replicator.ReadOptions{From: 1, To: s.To}, func(recs []events.Record) error {
			for _, r := range recs {
				line := ExportLine{Stream: s.Stream, Origin: c.Origin, Seq: r.Seq}
				e, err := events.Decode(r.Data)
				switch {
				case err != nil:
					line.Invalid, line.Data = err.Error(), string(r.Data)
				case skipHeartbeats && e.Type == events.TypeRegionHeartbeat:
					continue
				case !u.Time.IsZero() && e.Time.After(u.Time):
					continue
				default:
					line.Event = r.Data
				}
				if err := enc.Encode(line); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, w.Flush()
}
