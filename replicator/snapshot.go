package replicator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamState is what JetStream reports of a stream's contents.
type StreamState struct {
	Msgs      uint64    `json:"messages"`
	Bytes     uint64    `json:"bytes"`
	FirstSeq  uint64    `json:"first_seq"`
	FirstTime time.Time `json:"first_ts"`
	LastSeq   uint64    `json:"last_seq"`
	LastTime  time.Time `json:"last_ts"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d/%d)", e.Description, e.Code, e.ErrCode) }

// chunkIdle bounds the wait for the next chunk of a snapshot or for the
// answer to a restore chunk.
const chunkIdle = 30 * time.Second

// Snapshots and restores use JetStream's own API ($JS.API.STREAM.SNAPSHOT
// and RESTORE, the protocol of `nats stream backup`), so a snapshot
// restores into any NATS server; shortener backup and restore go through
// them.

// Snapshot streams a JetStream snapshot of stream (without consumers, the
// message checksums checked first) into w and returns the stream's
// configuration and its state when the snapshot was taken. progress, when
// not nil, is called with the bytes received so far.
func Snapshot(ctx context.Context, nc *nats.Conn, stream string, w io.Writer, progress func(int64)) (json.RawMessage, StreamState, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, StreamState{}, err
	}
	defer sub.Unsubscribe()
	// The window is 8 MiB of 128 KiB chunks: never a slow consumer at the
	// default limits, but say so.
	_ = sub.SetPendingLimits(-1, -1)
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "no_consumers": true, "jsck": true})
	rctx, cancel := context.WithTimeout(ctx, chunkIdle)
	msg, err := nc.RequestWithContext(rctx, "$JS.API.STREAM.SNAPSHOT."+stream, req)
	cancel()
	if err != nil {
		return nil, StreamState{}, fmt.Errorf("snapshot %s: %w", stream, err)
	}
	var resp struct {
		Error  *apiError       `json:"error"`
		Config json.RawMessage `json:"config"`
		State  StreamState     `json:"state"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, StreamState{}, fmt.Errorf("snapshot %s: bad answer: %w", stream, err)
	}
	if resp.Error != nil {
		return nil, StreamState{}, fmt.Errorf("snapshot %s: %w", stream, resp.Error)
	}
	var n int64
	for {
		cctx, cancel := context.WithTimeout(ctx, chunkIdle)
		m, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			return nil, StreamState{}, fmt.Errorf("snapshot %s after %d bytes: %w", stream, n, err)
		}
		if len(m.Data) == 0 {
			// The end, with the outcome in the status line: 204 (or none,
			// for an empty snapshot) is success.
			if st := m.Header.Get("Status"); st != "" && st != "204" {
				return nil, StreamState{}, fmt.Errorf("snapshot %s failed after %d bytes: %s %s", stream, n, st, m.Header.Get("Description"))
			}
			return resp.Config, resp.State, nil
		}
		if _, err := w.Write(m.Data); err != nil {
			return nil, StreamState{}, fmt.Errorf("snapshot %s: write: %w", stream, err)
		}
		n += int64(len(m.Data))
		if progress != nil {
			progress(n)
		}
		if m.Reply != "" { // the ack that opens the window again
			if err := m.Respond(nil); err != nil {
				return nil, StreamState{}, fmt.Errorf("snapshot %s: ack: %w", stream, err)
			}
		}
	}
}

// restoreChunk is the size of the chunks a restore sends.
const restoreChunk = 128 << 10

// Restore creates a stream from a snapshot read from r, with cfg as its
// configuration (its name must be the snapshot's), and returns the
// restored stream's state. It fails if the stream exists. progress, when
// not nil, is called with the bytes sent so far.
func Restore(ctx context.Context, nc *nats.Conn, cfg json.RawMessage, state StreamState, r io.Reader, progress func(int64)) (StreamState, error) {
	var named struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(cfg, &named); err != nil || named.Name == "" {
		return StreamState{}, fmt.Errorf("restore: a stream configuration without a name")
	}
	stream := named.Name
	req, err := json.Marshal(map[string]any{"config": cfg, "state": state})
	if err != nil {
		return StreamState{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, chunkIdle)
	msg, err := nc.RequestWithContext(rctx, "$JS.API.STREAM.RESTORE."+stream, req)
	cancel()
	if err != nil {
		return StreamState{}, fmt.Errorf("restore %s: %w", stream, err)
	}
	var resp struct {
		Error          *apiError `json:"error"`
		DeliverSubject string    `json:"deliver_subject"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return StreamState{}, fmt.Errorf("restore %s: bad answer: %w", stream, err)
	}
	if resp.Error != nil {
		return StreamState{}, fmt.Errorf("restore %s: %w", stream, resp.Error)
	}
	buf := make([]byte, restoreChunk)
	var n int64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			cctx, cancel := context.WithTimeout(ctx, chunkIdle)
			m, err := nc.RequestWithContext(cctx, resp.DeliverSubject, buf[:k])
			cancel()
			if err != nil {
				return StreamState{}, fmt.Errorf("restore %s after %d bytes: %w", stream, n, err)
			}
			if len(m.Data) > 0 { // an error answer; success is empty
				var e struct {
					Error *apiError `json:"error"`
				}
				if json.Unmarshal(m.Data, &e) == nil && e.Error != nil {
					return StreamState{}, fmt.Errorf("restore %s after %d bytes: %w", stream, n, e.Error)
				}
				return StreamState{}, fmt.Errorf("restore %s after %d bytes: %s", stream, n, bytes.TrimSpace(m.Data))
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return StreamState{}, fmt.Errorf("restore %s: read: %w", stream, rerr)
		}
	}
	// An empty message ends the transfer; the answer comes once the server
	// has built the stream.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	m, err := nc.RequestWithContext(fctx, resp.DeliverSubject, nil)
	if err != nil {
		return StreamState{}, fmt.Errorf("restore %s: waiting for the server to finish: %w", stream, err)
	}
	var done struct {
		Error *apiError   `json:"error"`
		State StreamState `json:"state"`
	}
	if err := json.Unmarshal(m.Data, &done); err != nil {
		return StreamState{}, fmt.Errorf("restore %s: bad final answer: %w", stream, err)
	}
	if done.Error != nil {
		return StreamState{}, fmt.Errorf("restore %s: %w", stream, done.Error)
	}
	return done.State, nil
}

// StoredStream is a stream of a NATS deployment, as a backup lists them.
type StoredStream struct {
	Name    string
	Mirror  bool   // a mirror of another stream: a copy, not an origin
	Cluster string // the cluster it is placed in; empty if JetStream does not say
}

// ListStreams lists every stream of the JetStream nc is connected to, in
// the order JetStream gives them.
func ListStreams(ctx context.Context, nc *nats.Conn) ([]StoredStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var out []StoredStream
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		s := StoredStream{Name: info.Config.Name, Mirror: info.Config.Mirror != nil}
		if info.Config.Placement != nil {
			s.Cluster = info.Config.Placement.Cluster
		} else if info.Cluster != nil {
			s.Cluster = info.Cluster.Name
		}
		out = append(out, s)
	}
	return out, lister.Err()
}
