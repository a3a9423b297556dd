package replicator

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// A durable mirror is made again when it cannot resume from its consumer:
// it starts past #1 (nats-server skipped ahead), has a hole, or holds less
// than its consumer has delivered and had acknowledged.
func TestMirrorDamage(t *testing.T) {
	for _, c := range []struct {
		name     string
		st       jetstream.StreamState
		ackFloor uint64
		damaged  bool
	}{
		{"empty, new consumer", jetstream.StreamState{}, 0, false},
		{"whole", jetstream.StreamState{Msgs: 26, FirstSeq: 1, LastSeq: 26}, 26, false},
		{"ahead of its consumer's ack floor", jetstream.StreamState{Msgs: 20, FirstSeq: 1, LastSeq: 20}, 12, false},
		{"origin unreachable", jetstream.StreamState{Msgs: 20, FirstSeq: 1, LastSeq: 20}, 0, false},
		{"empty, made again by the meta layer", jetstream.StreamState{}, 26, true},
		{"skipped to the consumer's floor", jetstream.StreamState{Msgs: 0, FirstSeq: 27, LastSeq: 26}, 26, true},
		{"skipped, then copied on", jetstream.StreamState{Msgs: 4, FirstSeq: 27, LastSeq: 30}, 0, true},
		{"a hole", jetstream.StreamState{Msgs: 20, FirstSeq: 1, LastSeq: 30, NumDeleted: 10}, 30, true},
		{"lost its tail", jetstream.StreamState{Msgs: 20, FirstSeq: 1, LastSeq: 20}, 26, true},
	} {
		if got := damage(c.st, c.ackFloor); (got != "") != c.damaged {
			t.Errorf("%s: damage(%+v, %d) = %q, want damaged %v", c.name, c.st, c.ackFloor, got, c.damaged)
		}
	}
}
