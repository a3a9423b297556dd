package replicator

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn is a JetStream client as the rest of shortener holds it: opaque.
// Regions and tools connect to NATS themselves and hand the connection to
// Connect; every stream, consumer and bucket operation then goes through
// this package's functions, so that only replicator talks JetStream
// (docs/decisions.md, "Only replicator talks JetStream").
type Conn struct {
	js jetstream.JetStream
}

// Connect returns the Conn of nc. It does no I/O; nc stays the caller's to
// close.
func Connect(nc *nats.Conn) (*Conn, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &Conn{js: js}, nil
}

// State returns what JetStream reports of stream's contents now, asked of
// the server that holds it (one STREAM.INFO request).
func (c *Conn) State(ctx context.Context, stream string) (StreamState, error) {
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return StreamState{}, err
	}
	return stateOf(s.CachedInfo().State), nil
}

// stateOf is the StreamState of JetStream's report.
func stateOf(st jetstream.StreamState) StreamState {
	return StreamState{Msgs: st.Msgs, Bytes: st.Bytes, FirstSeq: st.FirstSeq, FirstTime: st.FirstTime,
		LastSeq: st.LastSeq, LastTime: st.LastTime}
}
