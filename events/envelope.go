package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SchemaVersion is the envelope schema this code writes. Decode accepts every
// version up to it.
const SchemaVersion = 1

// Type names an event type. Types are wire formats: add, never rename.
type Type string

// The event types.
const (
	TypeLinkCreated     Type = "LinkCreated"
	TypeLinkUpdated     Type = "LinkUpdated"
	TypeLinkDeleted     Type = "LinkDeleted"
	TypeRegionHeartbeat Type = "RegionHeartbeat"
)

// Envelope is one event as stored in a region's stream, in JSON so that an
// auditor can read the log without this code.
type Envelope struct {
	ID      string          `json:"id"`              // UUIDv7, unique across regions; the stream's Nats-Msg-Id
	Type    Type            `json:"type"`            // what happened
	Schema  int             `json:"schema"`          // envelope schema version
	Code    string          `json:"code,omitempty"`  // the link's code; empty for heartbeats
	Origin  string          `json:"origin"`          // the region that took the write
	Time    time.Time       `json:"time"`            // producer time; orders the fold
	Actor   string          `json:"actor,omitempty"` // the API key id that asked for it
	Payload json.RawMessage `json:"payload,omitempty"`
}

// LinkCreated is the payload of a TypeLinkCreated event.
type LinkCreated struct {
	URL            string     `json:"url"`
	Alias          bool       `json:"alias,omitempty"` // a custom alias, not a generated code
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	RedirectStatus int        `json:"redirect_status"`
}

// LinkUpdated is the payload of a TypeLinkUpdated event. Nil fields are left
// as they are; ClearExpiry removes an expiry.
type LinkUpdated struct {
	URL            *string    `json:"url,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	ClearExpiry    bool       `json:"clear_expiry,omitempty"`
	RedirectStatus *int       `json:"redirect_status,omitempty"`
}

// LinkDeleted is the payload of a TypeLinkDeleted event.
type LinkDeleted struct{}

// RegionHeartbeat is the payload of a TypeRegionHeartbeat event, published
// by every region once a second so that lag can be measured in time.
type RegionHeartbeat struct{}

// New builds an envelope with a fresh ID and the given payload encoded.
func New(typ Type, code, origin, actor string, at time.Time, payload any) (Envelope, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, Wrap(Internal, err, "encode payload")
	}
	e := Envelope{
		ID:      NewID(at),
		Type:    typ,
		Schema:  SchemaVersion,
		Code:    code,
		Origin:  origin,
		Time:    at.UTC(),
		Actor:   actor,
		Payload: raw,
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// Encode returns the envelope's JSON form.
func (e Envelope) Encode() []byte {
	b, err := json.Marshal(e)
	if err != nil {
		// Every field is a plain value or already valid JSON.
		panic("events: encode envelope: " + err.Error())
	}
	return b
}

// Decode parses and validates one stored event. It returns an Invalid error
// for anything that is not a well-formed event of a known schema, and never
// panics. The form Encode writes is parsed in one pass, payload included;
// anything else goes through encoding/json, with the same result.
func Decode(data []byte) (Envelope, error) { return DecodeUpTo(data, SchemaVersion) }

// DecodeUpTo is Decode for a reader that understands envelope schemas up to
// maxSchema (SchemaVersion when maxSchema <= 0): what a newer binary would
// accept. An event of a later schema, or of a type this code does not
// know, gives an *UnsupportedError (an Invalid error too): a well-formed
// head that a newer binary may understand, which a projection must not
// skip (it stops the stream there instead).
func DecodeUpTo(data []byte, maxSchema int) (Envelope, error) {
	if maxSchema <= 0 {
		maxSchema = SchemaVersion
	}
	e, p, ok := decodeEnvelopeFast(data)
	if !ok || e.Schema > SchemaVersion {
		// The fast path parses only the payloads of this schema.
		return decodeJSON(data, maxSchema)
	}
	if err := e.validateHead(maxSchema); err != nil {
		return Envelope{}, err
	}
	if e.isLink() {
		if err := e.checkPayload(p); err != nil {
			return Envelope{}, err
		}
	}
	return e, nil
}

// decodeJSON is Decode through encoding/json alone: the reference the fast
// path is fuzzed against.
func decodeJSON(data []byte, maxSchema int) (Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, &Error{Kind: Invalid, Field: "event", Message: "not a JSON event", Err: err}
	}
	if dec.More() {
		return Envelope{}, FieldError("event", "trailing data after the event")
	}
	if err := e.validateHead(maxSchema); err != nil || !e.isLink() {
		return e.orEmpty(err)
	}
	if _, err := e.decodePayload(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func (e Envelope) orEmpty(err error) (Envelope, error) {
	if err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// UnsupportedError is the error of an event this code does not understand:
// a schema later than it reads, or an unknown type. Decoding it is not
// wrong, only too early: a newer binary folds it.
type UnsupportedError struct {
	Schema int
	Type   Type
	Err    *Error // the Invalid error naming the field
}

func (u *UnsupportedError) Error() string { return u.Err.Error() }

// Unwrap gives the Invalid *Error, so that KindOf says Invalid.
func (u *UnsupportedError) Unwrap() error { return u.Err }

// IsUnsupported reports whether err is (or wraps) an *UnsupportedError.
func IsUnsupported(err error) bool {
	var u *UnsupportedError
	return errors.As(err, &u)
}

// Validate checks the envelope and decodes its payload. It returns an
// Invalid error naming the first field at fault.
func (e Envelope) Validate() error {
	if err := e.validateHead(SchemaVersion); err != nil || !e.isLink() {
		return err
	}
	_, err := e.decodePayload()
	return err
}

// validateHead checks everything but the payload, for a reader of schemas
// up to maxSchema.
func (e Envelope) validateHead(maxSchema int) error {
	if !validID(e.ID) {
		return FieldError("id", "not a UUID")
	}
	if e.Schema < 1 {
		return FieldError("schema", fmt.Sprintf("unsupported schema version %d", e.Schema))
	}
	if e.Schema > maxSchema {
		return &UnsupportedError{Schema: e.Schema, Type: e.Type,
			Err: FieldError("schema", fmt.Sprintf("schema version %d is newer than this binary reads (%d)", e.Schema, maxSchema))}
	}
	if err := ValidateRegion(e.Origin); err != nil {
		return FieldError("origin", err.(*Error).Message)
	}
	if e.Time.IsZero() {
		return FieldError("time", "missing")
	}
	switch e.Type {
	case TypeRegionHeartbeat:
		if e.Code != "" {
			return FieldError("code", "a heartbeat has no code")
		}
		return nil
	case TypeLinkCreated, TypeLinkUpdated, TypeLinkDeleted:
		return ValidateCode(e.Code)
	case "":
		return FieldError("type", "missing")
	default:
		return &UnsupportedError{Schema: e.Schema, Type: e.Type,
			Err: FieldError("type", fmt.Sprintf("unknown event type %q", e.Type))}
	}
}

// isLink reports whether e is a link event, whose payload is checked.
func (e Envelope) isLink() bool {
	return e.Type == TypeLinkCreated || e.Type == TypeLinkUpdated || e.Type == TypeLinkDeleted
}

// payload is the typed payload of a link event: the member for e.Type.
type payload struct {
	created LinkCreated
	updated LinkUpdated
}

// decodePayload returns the typed payload of a link event, and the zero
// payload for any other type.
func (e Envelope) decodePayload() (payload, error) {
	var p payload
	switch e.Type {
	case TypeLinkCreated, TypeLinkUpdated:
		var ok bool
		if p, ok = parsePayloadFast(e.Payload, e.Type); !ok {
			p = payload{}
			var err error
			if e.Type == TypeLinkCreated {
				err = json.Unmarshal(e.Payload, &p.created)
			} else {
				err = json.Unmarshal(e.Payload, &p.updated)
			}
			if err != nil {
				return payload{}, &Error{Kind: Invalid, Field: "payload", Message: "malformed " + string(e.Type), Err: err}
			}
		}
	case TypeLinkDeleted:
		if len(e.Payload) > 0 {
			if _, ok := parsePayloadFast(e.Payload, e.Type); !ok {
				var d LinkDeleted
				if err := json.Unmarshal(e.Payload, &d); err != nil {
					return payload{}, &Error{Kind: Invalid, Field: "payload", Message: "malformed " + string(e.Type), Err: err}
				}
			}
		}
	default:
		return payload{}, nil
	}
	return p, e.checkPayload(p)
}

// checkPayload validates a link event's decoded payload.
func (e Envelope) checkPayload(p payload) error {
	switch e.Type {
	case TypeLinkCreated:
		if p.created.URL == "" {
			return FieldError("payload.url", "missing")
		}
		if !ValidRedirectStatus(p.created.RedirectStatus) {
			return FieldError("payload.redirect_status", "must be 301, 302, 307 or 308")
		}
	case TypeLinkUpdated:
		if p.updated.URL != nil && *p.updated.URL == "" {
			return FieldError("payload.url", "empty")
		}
		if p.updated.RedirectStatus != nil && !ValidRedirectStatus(*p.updated.RedirectStatus) {
			return FieldError("payload.redirect_status", "must be 301, 302, 307 or 308")
		}
	}
	return nil
}

// ValidRedirectStatus reports whether s is a redirect status a link may use.
func ValidRedirectStatus(s int) bool {
	return s == 301 || s == 302 || s == 307 || s == 308
}

// DefaultRedirectStatus is the status a link redirects with unless told
// otherwise.
const DefaultRedirectStatus = 302

// Record is an event's bytes as stored at one position of one stream: what a
// projection consumes. Seq is the stream sequence, which a mirror shares
// with its origin.
type Record struct {
	Stream    string
	Seq       uint64
	Subject   string // the subject it was published on: links.<region>.<code> or links.<region>._hb
	Data      []byte
	Signature string // its SignatureHeader
}
