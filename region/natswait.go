package region

import (
	"time"
	_ "unsafe" // go:linkname
)

// mirrorRequestWait is how long an embedded server waits for the answer to
// a mirror's consumer-create request before it gives up and retries (after
// a further 10 s backoff). nats-server waits 30 s, and there is no option
// for it.
//
// The answer is lost in one case that matters: a region that restarts
// sends its mirrors' requests at once, over its own freshly dialled
// gateways, but the answers come back over the peers' gateways to it,
// which they redial up to ~2 s later (their reconnect delay). The
// restarted region then waited 30 s + 10 s before its mirrors moved, and
// was ready ~42 s after its start. With 5 s it is ready in about 17 s (see
// docs/decisions.md, "Mirrors"). A request that really takes longer than
// 5 s is retried, not lost: the server cancels the attempt and the
// orphaned consumer expires after its inactivity threshold (10 s).
//
// The variable is nats-server's own (server.srcConsumerWaitTime, which its
// tests set the same way); a nats-server release that renames it fails the
// build here, loudly, rather than silently bringing the 42 s back.
const mirrorRequestWait = 5 * time.Second

//go:linkname natsSrcConsumerWaitTime github.com/nats-io/nats-server/v2/server.srcConsumerWaitTime
var natsSrcConsumerWaitTime time.Duration

func init() { natsSrcConsumerWaitTime = mirrorRequestWait }
