package events

import (
	"fmt"
	"slices"
	"strings"
)

// An event is checked before it is folded: decoding checks its form, Check
// checks that it belongs where it was found. Anyone who could write to a
// stream could otherwise make every region serve what they wrote (another
// region's origin, a code that is not its subject's, a create of another
// region's generated code, a URL the API would refuse). A refused event is
// never folded: the projection skips it (its sequence still counts as
// applied, so it never blocks the stream) and counts it by Reason.

// Reason names why an event was refused at the fold. Reasons are a metric
// label: the set is fixed (Reasons).
type Reason string

// The reasons an event is refused at the fold.
const (
	// ReasonMalformed: not a well-formed event (Decode refused it).
	ReasonMalformed Reason = "malformed"
	// ReasonOrigin: the envelope's origin is not the region whose stream
	// holds it.
	ReasonOrigin Reason = "origin"
	// ReasonSubject: the subject is not one of the stream's region, or not
	// the event's (links.<region>.<code>, links.<region>._hb).
	ReasonSubject Reason = "subject"
	// ReasonCodeOwner: a create of a generated code whose digit is not the
	// digit of the region that wrote it.
	ReasonCodeOwner Reason = "code_owner"
	// ReasonURL: a URL the API would refuse, or not in its stored form.
	ReasonURL Reason = "url"
)

// Reasons is every Reason, in a fixed order (reports and metrics use it).
var Reasons = []Reason{ReasonMalformed, ReasonOrigin, ReasonSubject, ReasonCodeOwner, ReasonURL, ReasonSignature}

// FoldMaxURLLen is the longest URL the fold accepts, in bytes. The API's cap
// is per-region configuration (at most this), but the fold must accept the
// same events in every region whatever their configuration, or their
// digests would differ: one fixed cap, the largest any region may be
// configured with.
const FoldMaxURLLen = 32 << 10

// DefaultDigits is the digit of each default region (the dev cluster's):
// the first character of the codes it generates.
var DefaultDigits = map[string]byte{"us-east": '1', "eu-west": '2', "ap-south": '3'}

// Rejection is the error of an event refused at the fold.
type Rejection struct {
	Reason  Reason
	Message string
}

func (r *Rejection) Error() string { return string(r.Reason) + ": " + r.Message }

func reject(reason Reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// LogStream is the name of region's stream of link events: LINKS_US_EAST
// for us-east. A mirror of it held in region Y is LogStream(region) +
// "_AT_" + the same form of Y.
func LogStream(region string) string {
	return "LINKS_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
}

// LinkSubject is the subject of events about code written in region.
func LinkSubject(region, code string) string { return "links." + region + "." + code }

// HeartbeatSubject is the subject of region's heartbeats; "_hb" can never
// be a code, which starts with a letter or a digit.
func HeartbeatSubject(region string) string { return "links." + region + "._hb" }

const heartbeatToken = "_hb"

// Rules are the cluster-wide facts an event is checked against. Every
// region of a cluster, and its auditor, must be given the same rules, or
// their projections differ.
type Rules struct {
	// Digits is the digit of every region of the cluster; nil means
	// DefaultDigits.
	Digits map[string]byte
	// Keys are every region's public keys: CheckRecord refuses an event
	// not signed by one of its origin's. Nil checks no signatures: only
	// for a cluster run without credentials (the benchmarks' plaintext
	// baseline) and for tests of the other checks.
	Keys *KeyRing
}

// CheckRecord is Check of e, decoded from r, and then of r's signature
// (unless r.Keys is nil): what a projection and a replay run on every
// record before folding it.
func (r Rules) CheckRecord(e Envelope, rec Record) *Rejection {
	if rej := r.Check(e, rec.Stream, rec.Subject); rej != nil {
		return rej
	}
	if r.Keys != nil {
		return r.Keys.Verify(e.Origin, rec.Data, rec.Signature)
	}
	return nil
}

// Check reports whether e, found in stream under subject, belongs there.
// It returns nil or a *Rejection:
//
//   - ReasonSubject: subject is not links.<region>.<token> for a valid
//     region, stream is neither that region's stream (LogStream) nor a
//     mirror of it (LogStream + "_AT_..."), or token is not e's code ("_hb"
//     for a heartbeat). JetStream stores a message in a stream only under
//     the stream's subjects, and a mirror keeps its origin's subjects, so
//     the subject names the region whose stream holds the event; the
//     stream's name is checked against it. The name alone would not do:
//     upper-casing and '-' to '_' make a region "x-at-y"'s stream
//     LINKS_X_AT_Y, the name of x's mirror in y.
//   - ReasonOrigin: e.Origin is not that region.
//   - ReasonCodeOwner: e creates a generated code (IsGenerated) whose first
//     character is not its origin's digit (a region unknown to the rules
//     owns no digit). Updates and deletes of another region's code are
//     legitimate (a failover moves a region's clients elsewhere); only
//     creates are owned.
//   - ReasonURL: a LinkCreated's URL, or a LinkUpdated's new URL, fails
//     NormalizeURL with FoldMaxURLLen, or is not its normalised form.
//
// e must be a decoded event (Decode); Check does not repeat Decode's
// checks.
func (r Rules) Check(e Envelope, stream, subject string) *Rejection {
	rest, ok := strings.CutPrefix(subject, "links.")
	region, token, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || ValidateRegion(region) != nil || token == "" || strings.Contains(token, ".") {
		return reject(ReasonSubject, "subject %q is not links.<region>.<code>", subject)
	}
	own := LogStream(region)
	if stream != own && !strings.HasPrefix(stream, own+"_AT_") {
		return reject(ReasonSubject, "subject %q is not one of stream %s", subject, stream)
	}
	if e.Origin != region {
		return reject(ReasonOrigin, "origin %q in the stream of %s", e.Origin, region)
	}
	if e.Type == TypeRegionHeartbeat {
		if token != heartbeatToken {
			return reject(ReasonSubject, "a heartbeat on subject %q", subject)
		}
		return nil
	}
	if token != e.Code {
		return reject(ReasonSubject, "code %q on subject %q", e.Code, subject)
	}
	switch e.Type {
	case TypeLinkCreated:
		if IsGenerated(e.Code) {
			digits := r.Digits
			if digits == nil {
				digits = DefaultDigits
			}
			if d, ok := digits[e.Origin]; !ok || d != e.Code[0] {
				return reject(ReasonCodeOwner, "%s created generated code %s, whose digit is not its own", e.Origin, e.Code)
			}
		}
		p, err := e.decodePayload()
		if err != nil {
			return reject(ReasonMalformed, "%v", err)
		}
		return checkURL(p.created.URL)
	case TypeLinkUpdated:
		p, err := e.decodePayload()
		if err != nil {
			return reject(ReasonMalformed, "%v", err)
		}
		if p.updated.URL != nil {
			return checkURL(*p.updated.URL)
		}
	}
	return nil
}

func checkURL(u string) *Rejection {
	norm, err := NormalizeURL(u, FoldMaxURLLen)
	if err != nil {
		return reject(ReasonURL, "%v", err)
	}
	if norm != u {
		return reject(ReasonURL, "not in its stored form (%q)", norm)
	}
	return nil
}

// ParseDigits reads a table of region digits, "us-east=1,eu-west=2": each
// region a valid region name, each digit one of '0' to '9', no region and no
// digit twice.
func ParseDigits(s string) (map[string]byte, error) {
	out := map[string]byte{}
	used := map[byte]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, d, ok := strings.Cut(part, "=")
		if !ok || len(d) != 1 || d[0] < '0' || d[0] > '9' {
			return nil, fmt.Errorf("digits: %q is not <region>=<digit 0-9>", part)
		}
		if err := ValidateRegion(name); err != nil {
			return nil, fmt.Errorf("digits: %q: %v", name, err)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("digits: region %s given twice", name)
		}
		if other, dup := used[d[0]]; dup {
			return nil, fmt.Errorf("digits: %s and %s both have digit %c", other, name, d[0])
		}
		out[name], used[d[0]] = d[0], name
	}
	return out, nil
}

// FormatDigits writes a table of region digits in ParseDigits' form, in
// region order.
func FormatDigits(digits map[string]byte) string {
	names := sortedKeys(digits)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + string(digits[n])
	}
	return strings.Join(parts, ",")
}

// MergeDigits returns base with region's digit set to digit, dropping any
// other region of base that had that digit: the default table merged with
// a region's own --digit.
func MergeDigits(base map[string]byte, region string, digit byte) map[string]byte {
	out := map[string]byte{}
	for n, d := range base {
		if d != digit {
			out[n] = d
		}
	}
	out[region] = digit
	return out
}

// ValidateDigits checks a table of region digits: valid region names,
// digits '0' to '9', no digit twice.
func ValidateDigits(digits map[string]byte) error {
	used := map[byte]string{}
	for _, n := range sortedKeys(digits) {
		d := digits[n]
		if err := ValidateRegion(n); err != nil {
			return fmt.Errorf("digits: %q: %v", n, err)
		}
		if d < '0' || d > '9' {
			return fmt.Errorf("digits: %s has %q, not a digit 0-9", n, d)
		}
		if other, dup := used[d]; dup {
			return fmt.Errorf("digits: %s and %s both have digit %c", other, n, d)
		}
		used[d] = n
	}
	return nil
}

func sortedKeys(m map[string]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
