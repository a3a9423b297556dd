package replicator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"shortener/events"
)

// AliasBucket is the KV bucket of the alias register, in cluster "global".
const AliasBucket = "ALIASES"

// AliasClaim is the value of a claimed alias: who claimed it, and the event
// that creates the link.
type AliasClaim struct {
	Region  string    `json:"region"`
	EventID string    `json:"event_id"`
	Time    time.Time `json:"time"`
}

// Aliases is the alias register: a KV bucket replicated across the
// members of the stretched cluster "global", one per region, so that
// exactly one claim of an alias wins anywhere, and claims keep working
// while a majority of regions is up.
type Aliases struct {
	js      jetstream.JetStream
	members int
	timeout time.Duration

	mu sync.Mutex
	kv jetstream.KeyValue // nil until Run has found or created the bucket
}

// NewAliases returns the register of a global cluster of members servers.
// It does no I/O: Run opens the bucket.
func NewAliases(c *Conn, members int) *Aliases {
	return &Aliases{js: c.js, members: members, timeout: 2 * time.Second}
}

// AliasesConfig is the stream of the register's bucket: R3 (or as many
// members as the global cluster has, when fewer), file storage, one value
// per key. It is the stream nats.go's CreateKeyValue makes, but for
// rollups and purges: with them a single publish to $KV.ALIASES.x carrying
// "Nats-Rollup: all" would erase every claim, and any writer of the bucket
// (every region's user) could send it. Nothing here purges a key; a
// release is a delete marker.
func AliasesConfig(members int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + AliasBucket,
		Description:       "custom alias -> the claim that won it",
		Subjects:          []string{"$KV." + AliasBucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          min(3, max(1, members)),
		Placement:         &jetstream.Placement{Cluster: "global"},
		AllowRollup:       false,
		DenyDelete:        true,
		DenyPurge:         true,
		Duplicates:        2 * time.Minute,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
	}
}

// Run finds the register's bucket, creating it once JetStream is ready if it
// does not exist, retrying until it succeeds or ctx ends. Until then every
// claim answers Unavailable: a region restarting while the global cluster
// has no quorum still starts and serves everything but new aliases.
func (a *Aliases) Run(ctx context.Context) error {
	wait := 100 * time.Millisecond
	for {
		kv, err := a.open(ctx)
		if err == nil {
			a.mu.Lock()
			a.kv = kv
			a.mu.Unlock()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (a *Aliases) open(ctx context.Context) (jetstream.KeyValue, error) {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	kv, err := a.js.KeyValue(lctx, AliasBucket)
	if err == nil {
		return kv, nil
	}
	if _, err := a.js.CreateStream(lctx, AliasesConfig(a.members)); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, err
	}
	return a.js.KeyValue(lctx, AliasBucket)
}

func (a *Aliases) bucket() jetstream.KeyValue {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kv
}

func unavailable(err error) error {
	return &events.Error{Kind: events.Unavailable, RetryAfter: 2 * time.Second, Err: err,
		Message: "the alias register has no quorum; custom aliases cannot be claimed now, generated codes still work"}
}

// Claim claims alias for c. It returns nil if this claim won, Conflict if the
// alias belongs to another claim, and Unavailable (with Retry-After) when the
// register cannot answer: no quorum in the global cluster, or no route to it.
// A claim whose link exists is never taken back; one whose event was never
// written (the claimant crashed in between) is released by its claimant
// with Release.
func (a *Aliases) Claim(ctx context.Context, alias string, c AliasClaim) error {
	kv := a.bucket()
	if kv == nil {
		return unavailable(errors.New("alias register not open yet"))
	}
	val, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	_, err := kv.Create(ctx, alias, val)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyExists):
		// A retry of our own claim (the first answer was lost) still wins.
		if owner, gerr := a.Owner(ctx, alias); gerr == nil && owner.EventID == c.EventID {
			return nil
		}
		return &events.Error{Kind: events.Conflict, Field: "alias", Message: "this alias is already taken"}
	}
	return unavailable(err)
}

// Release frees alias if, and only if, it is still held by the claim of
// eventID: the claimant found that event was never written. It is a
// compare-and-delete on the entry's revision, so a newer claim is never
// touched. It returns false, nil when the alias is held by another claim or
// free already.
func (a *Aliases) Release(ctx context.Context, alias, eventID string) (bool, error) {
	kv := a.bucket()
	if kv == nil {
		return false, errors.New("alias register not open yet")
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	e, err := kv.Get(ctx, alias)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var c AliasClaim
	if err := json.Unmarshal(e.Value(), &c); err != nil || c.EventID != eventID {
		return false, nil
	}
	if err := kv.Delete(ctx, alias, jetstream.LastRevision(e.Revision())); err != nil {
		return false, err
	}
	return true, nil
}

// Owner returns the claim that holds alias.
func (a *Aliases) Owner(ctx context.Context, alias string) (AliasClaim, error) {
	kv := a.bucket()
	if kv == nil {
		return AliasClaim{}, errors.New("alias register not open yet")
	}
	e, err := kv.Get(ctx, alias)
	if err != nil {
		return AliasClaim{}, err
	}
	var c AliasClaim
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return AliasClaim{}, fmt.Errorf("alias %s: %w", alias, err)
	}
	return c, nil
}

// Available reports whether the register answers now (a cheap status read).
func (a *Aliases) Available(ctx context.Context) bool {
	kv := a.bucket()
	if kv == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	_, err := kv.Status(ctx)
	return err == nil
}
