package events_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"shortener/events"
)

type edSigner struct {
	name string
	key  ed25519.PrivateKey
}

func (s edSigner) PublicKey() string                { return s.name }
func (s edSigner) Sign(data []byte) ([]byte, error) { return ed25519.Sign(s.key, data), nil }

func newSigner(t *testing.T, name string) (edSigner, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return edSigner{name, priv}, pub
}

// Verify accepts only a signature of the exact data by a key of the
// event's origin, and says why it refuses the rest.
func TestVerify(t *testing.T) {
	us, usPub := newSigner(t, "UUS")
	eu, euPub := newSigner(t, "UEU")
	ring, err := events.NewKeyRing(map[string]map[string]ed25519.PublicKey{"us-east": {"UUS": usPub}, "eu-west": {"UEU": euPub}})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(`{"id":"x"}`)
	sig, err := events.Sign(us, data)
	if err != nil {
		t.Fatal(err)
	}
	if rej := ring.Verify("us-east", data, sig); rej != nil {
		t.Fatalf("a valid signature: %v", rej)
	}
	euSig, _ := events.Sign(eu, data)
	forgedName := "UUS:" + strings.SplitN(euSig, ":", 2)[1] // eu-west's signature under us-east's key name
	for name, c := range map[string]struct {
		origin, header string
		data           []byte
		want           string
	}{
		"unsigned":           {"us-east", "", data, "not signed"},
		"no separator":       {"us-east", "UUS", data, "not <key>:<signature>"},
		"another region key": {"us-east", euSig, data, "not a key of us-east"},
		"unknown origin":     {"ap-south", sig, data, "not a key of ap-south"},
		"tampered data":      {"us-east", sig, []byte(`{"id":"y"}`), "does not match"},
		"key name swapped":   {"us-east", forgedName, data, "does not match"},
		"not base64":         {"us-east", "UUS:!!!", data, "not base64url"},
		"truncated":          {"us-east", sig[:len(sig)-4], data, "does not match"},
	} {
		rej := ring.Verify(c.origin, c.data, c.header)
		if rej == nil || rej.Reason != events.ReasonSignature || !strings.Contains(rej.Message, c.want) {
			t.Errorf("%s: %v, want a signature rejection saying %q", name, rej, c.want)
		}
	}
}

// CheckRecord runs the location checks first, then the signature; rules
// without keys check no signature.
func TestCheckRecordSignature(t *testing.T) {
	us, usPub := newSigner(t, "UUS")
	ring, _ := events.NewKeyRing(map[string]map[string]ed25519.PublicKey{"us-east": {"UUS": usPub}})
	e := mustNew(t, events.TypeLinkCreated, "promo", "us-east", events.LinkCreated{URL: "https://example.com/", RedirectStatus: 302})
	rec := events.Record{Stream: events.LogStream("us-east"), Seq: 1, Subject: events.LinkSubject("us-east", "promo"), Data: e.Encode()}
	if rej := (events.Rules{}).CheckRecord(e, rec); rej != nil {
		t.Fatalf("no keys: %v", rej)
	}
	if rej := (events.Rules{Keys: ring}).CheckRecord(e, rec); rej == nil || rej.Reason != events.ReasonSignature {
		t.Fatalf("unsigned with keys: %v", rej)
	}
	rec.Signature, _ = events.Sign(us, rec.Data)
	if rej := (events.Rules{Keys: ring}).CheckRecord(e, rec); rej != nil {
		t.Fatalf("signed: %v", rej)
	}
	rec.Subject = events.LinkSubject("us-east", "other")
	if rej := (events.Rules{Keys: ring}).CheckRecord(e, rec); rej == nil || rej.Reason != events.ReasonSubject {
		t.Fatalf("signed, misplaced: %v, want a subject rejection", rej)
	}
}

// A key ring refuses a key that is not one.
func TestNewKeyRingRefuses(t *testing.T) {
	_, pub := newSigner(t, "U")
	for name, keys := range map[string]map[string]map[string]ed25519.PublicKey{
		"bad region": {"US EAST": {"U": pub}},
		"no key":     {"us-east": {}},
		"short key":  {"us-east": {"U": pub[:10]}},
		"colon name": {"us-east": {"U:1": pub}},
	} {
		if _, err := events.NewKeyRing(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A Remembering signer's signatures verify (remembered), and the memory
// accepts nothing it did not sign: other data under the same signature, the
// same signature under another key name or origin.
func TestRememberingSigner(t *testing.T) {
	us, usPub := newSigner(t, "UUS")
	_, euPub := newSigner(t, "UEU")
	ring, _ := events.NewKeyRing(map[string]map[string]ed25519.PublicKey{"us-east": {"UUS": usPub}, "eu-west": {"UEU": euPub}})
	rs := ring.Remembering(us)
	for i := 0; i < 5000; i++ { // more than the ring remembers: the old ones are verified the long way
		data := []byte(fmt.Sprintf(`{"n":%d}`, i))
		sig, err := events.Sign(rs, data)
		if err != nil {
			t.Fatal(err)
		}
		if rej := ring.Verify("us-east", data, sig); rej != nil {
			t.Fatalf("#%d: %v", i, rej)
		}
		if i%1000 == 0 {
			if rej := ring.Verify("us-east", []byte(`{"n":-1}`), sig); rej == nil {
				t.Fatalf("#%d: a remembered signature accepted for other data", i)
			}
			if rej := ring.Verify("eu-west", data, sig); rej == nil {
				t.Fatalf("#%d: accepted for another origin", i)
			}
			if rej := ring.Verify("eu-west", data, "UEU:"+strings.SplitN(sig, ":", 2)[1]); rej == nil {
				t.Fatalf("#%d: accepted under another key name", i)
			}
		}
	}
}
