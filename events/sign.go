package events

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Every event a region writes is signed with the region's own key, and the
// fold accepts an event only with a valid signature by a key of its origin.
// The checks of Check alone do not stop a forgery: NATS lets any user that
// may create a consumer name the consumer's deliver subject, and the server
// then publishes copies of the messages it reads on that subject, whatever
// the user may publish itself (nats-server checks only that the subject does
// not form a cycle). A user who can store a message anywhere (a region in
// its own stream, the bench user in its scratch streams) could so place an
// event of its own making on links.<other>.<code>, in the other region's
// stream, with the right origin and subject. A signature it cannot make
// closes that: what such a copy can still do is place a genuine event where
// Check refuses it (another region's stream, another code's subject) or
// again where it already is (its ID makes it the same event, folded once).
//
// The signature covers the message's data exactly as stored and travels in
// the SignatureHeader of the message, which mirrors, snapshots and the
// lost-disk repair keep. It is an ed25519 signature by the region's NATS
// user nkey: the key its application already holds, whose public half every
// server and tool already has in the users table. (This package needs only
// the standard library: the nkeys are decoded by package secrets.)

// SignatureHeader is the message header that carries an event's signature:
// "<public user nkey>:<signature, base64url without padding>".
const SignatureHeader = "Shortener-Signature"

// ReasonSignature: the event has no signature, or one that is not valid, or
// one by a key that is not its origin's.
const ReasonSignature Reason = "signature"

// A Signer signs the events of one region.
type Signer interface {
	PublicKey() string
	Sign(data []byte) ([]byte, error)
}

// Sign returns the SignatureHeader value of data signed by s.
func Sign(s Signer, data []byte) (string, error) {
	sig, err := s.Sign(data)
	if err != nil {
		return "", Wrap(Internal, err, "sign event")
	}
	return s.PublicKey() + ":" + base64.RawURLEncoding.EncodeToString(sig), nil
}

// KeyRing holds the public keys of every region: the keys whose signatures
// the fold accepts for an event of that origin.
type KeyRing struct {
	keys map[string]map[string]ed25519.PublicKey // region -> key name -> key

	// What a Remembering signer signed lately: a region folds its own
	// events a moment after it signed them, and need not check its own
	// signature (an ed25519 verification costs about twice a signature).
	mu     sync.Mutex
	signed map[string]signedData // raw signature -> what it signed
	order  []string              // signatures, oldest first, at most memoSize
}

type signedData struct {
	key  string // the signer's public key name
	data []byte
}

// memoSize bounds what a KeyRing remembers of its Remembering signers.
const memoSize = 4096

// NewKeyRing builds a KeyRing from each region's public keys (its current
// keys and the retired ones whose events are still in the log), each by the
// name a signature gives it (Signer.PublicKey: the public user nkey; package
// secrets decodes those).
func NewKeyRing(keys map[string]map[string]ed25519.PublicKey) (*KeyRing, error) {
	k := &KeyRing{keys: map[string]map[string]ed25519.PublicKey{}}
	for region, named := range keys {
		if err := ValidateRegion(region); err != nil {
			return nil, fmt.Errorf("key ring: region %q: %v", region, err)
		}
		if len(named) == 0 {
			return nil, fmt.Errorf("key ring: region %s has no key", region)
		}
		m := map[string]ed25519.PublicKey{}
		for name, pub := range named {
			if name == "" || strings.Contains(name, ":") || len(pub) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("key ring: region %s: key %q is not a named ed25519 public key", region, name)
			}
			m[name] = slices.Clone(pub)
		}
		k.keys[region] = m
	}
	return k, nil
}

// Regions returns the regions that have keys, sorted.
func (k *KeyRing) Regions() []string {
	out := make([]string, 0, len(k.keys))
	for r := range k.keys {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Remembering returns s, which must sign with one of the ring's keys, with
// what it signs remembered by the ring (the last few thousand events):
// Verify then accepts exactly those signatures of exactly those bytes
// without checking them again, since they are valid by construction. It
// is what a region's log signs with, and its projection verifies with.
func (k *KeyRing) Remembering(s Signer) Signer { return rememberingSigner{s, k} }

type rememberingSigner struct {
	Signer
	k *KeyRing
}

func (r rememberingSigner) Sign(data []byte) ([]byte, error) {
	sig, err := r.Signer.Sign(data)
	if err == nil {
		r.k.remember(r.PublicKey(), sig, data)
	}
	return sig, err
}

func (k *KeyRing) remember(key string, sig, data []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.signed == nil {
		k.signed = map[string]signedData{}
	}
	if len(k.order) >= memoSize {
		delete(k.signed, k.order[0])
		k.order = k.order[1:]
	}
	k.signed[string(sig)] = signedData{key: key, data: bytes.Clone(data)}
	k.order = append(k.order, string(sig))
}

// signedHere reports whether a Remembering signer of key signed exactly
// data with sig.
func (k *KeyRing) signedHere(key string, sig, data []byte) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, ok := k.signed[string(sig)]
	return ok && d.key == key && bytes.Equal(d.data, data)
}

// Has reports whether pub is one of region's keys.
func (k *KeyRing) Has(region, pub string) bool {
	_, ok := k.keys[region][pub]
	return ok
}

// Verify checks that header (a SignatureHeader value) is a signature of
// data by one of origin's keys. It returns nil or a ReasonSignature
// *Rejection.
func (k *KeyRing) Verify(origin string, data []byte, header string) *Rejection {
	if header == "" {
		return reject(ReasonSignature, "not signed")
	}
	pub, enc, ok := strings.Cut(header, ":")
	if !ok {
		return reject(ReasonSignature, "signature header is not <key>:<signature>")
	}
	key, ok := k.keys[origin][pub]
	if !ok {
		if len(pub) > 64 {
			pub = pub[:64] + "..."
		}
		return reject(ReasonSignature, "signed by %q, not a key of %s", pub, origin)
	}
	sig, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return reject(ReasonSignature, "signature is not base64url")
	}
	if !k.signedHere(pub, sig, data) && !ed25519.Verify(key, data, sig) {
		return reject(ReasonSignature, "signature by %s does not match the event", pub)
	}
	return nil
}
