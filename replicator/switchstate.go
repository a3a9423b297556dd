package replicator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SwitchBucket is the KV bucket, in cluster "global", through which the
// instances of the DNS switch share the operator's drains and overrides.
const SwitchBucket = "SWITCH"

// SwitchKey is the bucket's one key: the whole state in one value, so that
// a change is one compare-and-set.
const SwitchKey = "state"

// maxSwitchState bounds a state as read from the bucket.
const maxSwitchState = 64 << 10

// SwitchShared is what the switch's instances share: the drained regions
// and, per client home region, the region its clients are sent to.
type SwitchShared struct {
	Drained   []string          `json:"drained"`
	Overrides map[string]string `json:"overrides"`
}

// DecodeSwitchShared reads a state as stored: one JSON object with exactly
// SwitchShared's fields. Region names are not checked here: the switch
// keeps only the names it serves.
func DecodeSwitchShared(data []byte) (SwitchShared, error) {
	if len(data) > maxSwitchState {
		return SwitchShared{}, fmt.Errorf("switch state of %d bytes, more than %d", len(data), maxSwitchState)
	}
	var st SwitchShared
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		return SwitchShared{}, fmt.Errorf("switch state: %w", err)
	}
	if d.More() {
		return SwitchShared{}, errors.New("switch state: data after the object")
	}
	return st, nil
}

// SwitchBucketConfig is the stream of the switch's bucket: as many replicas
// as the global cluster has members, up to 3, one value per key, no rollup
// or purge (a writer could otherwise erase it in one publish).
func SwitchBucketConfig(members int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + SwitchBucket,
		Description:       "the DNS switch's drains and overrides, shared by its instances",
		Subjects:          []string{"$KV." + SwitchBucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          1 << 20,
		MaxMsgSize:        maxSwitchState,
		MaxMsgs:           16,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          min(3, max(1, members)),
		Placement:         &jetstream.Placement{Cluster: "global"},
		DenyDelete:        true,
		DenyPurge:         true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
	}
}

// SwitchStore is the switch's shared state in SwitchBucket.
type SwitchStore struct {
	js      jetstream.JetStream
	members int
	timeout time.Duration

	mu sync.Mutex
	kv jetstream.KeyValue // nil until opened
}

// NewSwitchStore returns the store of a global cluster of members servers.
// It does no I/O.
func NewSwitchStore(c *Conn, members int) *SwitchStore {
	return &SwitchStore{js: c.js, members: members, timeout: 2 * time.Second}
}

// ErrSwitchStateUnavailable wraps every error of a change that could not be
// made: no quorum in the global cluster, or no route to it.
var ErrSwitchStateUnavailable = errors.New("the switch's shared state (KV bucket " + SwitchBucket + " in the global cluster) does not answer")

// bucket returns the bucket, opening (or creating) it the first time: two
// callers may both open it, which is harmless; the lock is not held across
// the requests.
func (s *SwitchStore) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	kv := s.kv
	s.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	kv, err := s.js.KeyValue(ctx, SwitchBucket)
	if err != nil {
		if _, cerr := s.js.CreateStream(ctx, SwitchBucketConfig(s.members)); cerr != nil && !errors.Is(cerr, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, cerr
		}
		if kv, err = s.js.KeyValue(ctx, SwitchBucket); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.kv = kv
	s.mu.Unlock()
	return kv, nil
}

// Change reads the state, applies fn to it and writes it back only if no
// other instance wrote in between (compare-and-set on the revision), again
// on a conflict, all within 2 s. It returns the state stored and its
// revision. fn's error is returned as it is; anything else that stops the
// change wraps ErrSwitchStateUnavailable. A write whose answer did not come
// in time may still have been stored (a replicated bucket can commit it
// later): the caller cannot say "nothing changed", only "not confirmed".
func (s *SwitchStore) Change(ctx context.Context, fn func(*SwitchShared) error) (SwitchShared, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	fail := func(err error) (SwitchShared, uint64, error) {
		return SwitchShared{}, 0, fmt.Errorf("%w: %v", ErrSwitchStateUnavailable, err)
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return fail(err)
	}
	for attempt := 0; ; attempt++ {
		var st SwitchShared
		var rev uint64
		e, err := kv.Get(ctx, SwitchKey)
		switch {
		case err == nil:
			if st, err = DecodeSwitchShared(e.Value()); err != nil {
				return fail(err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
			// Never written, or deleted by hand: start from nothing.
			if e != nil {
				rev = e.Revision()
			}
		default:
			return fail(err)
		}
		if err := fn(&st); err != nil {
			return SwitchShared{}, 0, err
		}
		val, err := json.Marshal(st)
		if err != nil {
			return fail(err)
		}
		var stored uint64
		if rev == 0 {
			stored, err = kv.Create(ctx, SwitchKey, val)
		} else {
			stored, err = kv.Update(ctx, SwitchKey, val, rev)
		}
		if err == nil {
			return st, stored, nil
		}
		// Another instance wrote first (ErrKeyExists for a create;
		// ErrKeyRevisionMismatch, or ErrKeyExists from a single server,
		// for an update): read its state and apply fn again, after a
		// moment, as its write may still be on its way to the replicas.
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fail(err)
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(time.Duration(1+rand.IntN(10*(1+min(attempt, 5)))) * time.Millisecond):
		}
	}
}

// Watch calls fn with the state as it is and then with every state written
// after it, with its revision, until ctx ends; after an error (the bucket
// not there yet, the global cluster out of reach) it starts again after a
// second. A state that does not decode is skipped and reported through bad;
// a deleted or purged key is the empty state (what Change starts from).
func (s *SwitchStore) Watch(ctx context.Context, fn func(SwitchShared, uint64), bad func(error)) error {
	for ctx.Err() == nil {
		err := s.watch(ctx, fn, bad)
		if ctx.Err() != nil {
			break
		}
		bad(fmt.Errorf("watch %s: %w", SwitchBucket, err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *SwitchStore) watch(ctx context.Context, fn func(SwitchShared, uint64), bad func(error)) error {
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kv, err := s.bucket(octx)
	cancel()
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, SwitchKey)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch ended")
			}
			if e == nil { // the values there were have all been delivered
				continue
			}
			if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
				fn(SwitchShared{}, e.Revision())
				continue
			}
			st, err := DecodeSwitchShared(e.Value())
			if err != nil {
				bad(err)
				continue
			}
			fn(st, e.Revision())
		}
	}
}
