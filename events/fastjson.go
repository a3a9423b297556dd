package events

import (
	"time"
	"unicode/utf8"
)

// A fast path for reading events, so that a projection or an audit replay
// parses each stored event once instead of three times through reflection.
//
// It is a strict parser of the JSON that Encode writes and little else: the
// envelope's and payload's own keys, in lower case, each at most once, the
// type before the payload, values of the field's own JSON type. Whenever it
// meets anything else (an unknown key, a duplicate, null, a number with a
// fraction, a surrogate escape, invalid UTF-8, trailing data, a syntax
// error) it gives up (ok false) and the caller uses encoding/json, so every
// error message and every corner of encoding/json's behaviour (case-folded
// keys, last duplicate wins, replacement characters) comes from
// encoding/json itself. When it does not give up, its result equals
// encoding/json's: FuzzDecodeFast checks that on arbitrary input. Times are
// parsed by time.Time.UnmarshalJSON, exactly as encoding/json calls it.

// jsonParser reads JSON from data at off. Every method reports false when
// the input is not something the fast path handles; the parser is then
// abandoned.
type jsonParser struct {
	data []byte
	off  int
}

func (p *jsonParser) ws() {
	for p.off < len(p.data) {
		switch p.data[p.off] {
		case ' ', '\t', '\n', '\r':
			p.off++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (p *jsonParser) peek() byte {
	p.ws()
	if p.off >= len(p.data) {
		return 0
	}
	return p.data[p.off]
}

func (p *jsonParser) consume(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.off++
	return true
}

// rawString returns the bytes between the quotes of the string at off and
// whether they hold a backslash, after checking that the string is valid
// JSON and valid UTF-8 (encoding/json replaces invalid UTF-8; the fast path
// gives up instead).
func (p *jsonParser) rawString() (raw []byte, escaped, ok bool) {
	if p.peek() != '"' {
		return nil, false, false
	}
	start := p.off + 1
	ascii := true
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		switch {
		case c == '"':
			p.off = i + 1
			raw = p.data[start:i]
			if !ascii && !utf8.Valid(raw) {
				return nil, false, false
			}
			return raw, escaped, true
		case c == '\\':
			escaped = true
			i++ // the escaped byte: checked by unescape; a quote here does not end the string
		case c < 0x20:
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, false
}

// str returns the string at off, unescaped.
func (p *jsonParser) str() (string, bool) {
	raw, escaped, ok := p.rawString()
	if !ok {
		return "", false
	}
	if !escaped {
		return string(raw), true
	}
	return unescape(raw)
}

// unescape decodes JSON escapes, giving up on a UTF-16 surrogate (which
// encoding/json pairs or replaces).
func unescape(raw []byte) (string, bool) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+4 >= len(raw) {
				return "", false
			}
			var r rune
			for _, h := range raw[i+1 : i+5] {
				switch {
				case '0' <= h && h <= '9':
					h -= '0'
				case 'a' <= h && h <= 'f':
					h -= 'a' - 10
				case 'A' <= h && h <= 'F':
					h -= 'A' - 10
				default:
					return "", false
				}
				r = r<<4 | rune(h)
			}
			if 0xd800 <= r && r < 0xe000 {
				return "", false
			}
			out = utf8.AppendRune(out, r)
			i += 4
		default:
			return "", false
		}
	}
	return string(out), true
}

// time reads a JSON string into a time the way encoding/json does (it
// hands the quoted literal to time.Time.UnmarshalJSON, escapes and all):
// only a string without escapes that UnmarshalJSON accepts.
func (p *jsonParser) time() (time.Time, bool) {
	start := p.off
	_, escaped, ok := p.rawString()
	if !ok || escaped {
		return time.Time{}, false
	}
	var t time.Time
	if t.UnmarshalJSON(p.data[start:p.off]) != nil {
		return time.Time{}, false
	}
	return t, true
}

// int reads a non-negative integer of at most 9 digits (no fraction, no
// exponent, no sign: the fast path gives those up).
func (p *jsonParser) int() (int, bool) {
	p.ws()
	n, i := 0, p.off
	for ; i < len(p.data) && i-p.off < 10; i++ {
		c := p.data[i]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	digits := i - p.off
	if digits == 0 || digits > 9 || (digits > 1 && p.data[p.off] == '0') {
		return 0, false
	}
	if i < len(p.data) {
		switch p.data[i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	p.off = i
	return n, true
}

func (p *jsonParser) bool() (bool, bool) {
	p.ws()
	rest := p.data[p.off:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		p.off += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		p.off += 5
		return false, true
	}
	return false, false
}

// next moves past the comma or the closing brace after a member: more is
// true after a comma.
func (p *jsonParser) next() (more, ok bool) {
	switch p.peek() {
	case ',':
		p.off++
		return true, true
	case '}':
		p.off++
		return false, true
	}
	return false, false
}

// object calls member for each key of the object at off, after its colon;
// member reads the value. Empty objects call nothing.
func (p *jsonParser) object(member func(key []byte) bool) bool {
	if !p.consume('{') {
		return false
	}
	if p.peek() == '}' {
		p.off++
		return true
	}
	for {
		key, escaped, ok := p.rawString()
		if !ok || escaped || !p.consume(':') || !member(key) {
			return false
		}
		more, ok := p.next()
		if !ok {
			return false
		}
		if !more {
			return true
		}
	}
}

// end reports whether only white space is left.
func (p *jsonParser) end() bool {
	p.ws()
	return p.off == len(p.data)
}

// seen records a key, reporting false for a duplicate.
func seen(mask *uint16, bit uint16) bool {
	if *mask&bit != 0 {
		return false
	}
	*mask |= bit
	return true
}

// decodeEnvelopeFast parses data as Decode's json.Decoder would, with the
// typed payload of a link event parsed in the same pass; ok is false when
// the fast path gives up.
func decodeEnvelopeFast(data []byte) (e Envelope, pl payload, ok bool) {
	p := jsonParser{data: data}
	var keys uint16
	ok = p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "id":
			if ok = seen(&keys, 1<<0); ok {
				e.ID, ok = p.str()
			}
		case "type":
			if ok = seen(&keys, 1<<1); ok {
				var t []byte
				var escaped bool
				t, escaped, ok = p.rawString()
				ok = ok && !escaped
				if ok {
					e.Type = internType(t)
				}
			}
		case "schema":
			if ok = seen(&keys, 1<<2); ok {
				e.Schema, ok = p.int()
			}
		case "code":
			if ok = seen(&keys, 1<<3); ok {
				e.Code, ok = p.str()
			}
		case "origin":
			if ok = seen(&keys, 1<<4); ok {
				e.Origin, ok = p.str()
			}
		case "time":
			if ok = seen(&keys, 1<<5); ok {
				e.Time, ok = p.time()
			}
		case "actor":
			if ok = seen(&keys, 1<<6); ok {
				e.Actor, ok = p.str()
			}
		case "payload":
			// The type decides how to read it, so it must come first.
			if ok = seen(&keys, 1<<7) && keys&(1<<1) != 0; ok {
				p.ws()
				start := p.off
				pl, ok = parsePayload(&p, e.Type)
				if ok {
					e.Payload = append([]byte(nil), data[start:p.off]...)
				}
			}
		}
		return ok
	})
	if !ok || !p.end() {
		return Envelope{}, payload{}, false
	}
	if keys&(1<<7) == 0 && (e.Type == TypeLinkCreated || e.Type == TypeLinkUpdated) {
		// encoding/json fails on the missing payload with its own message.
		return Envelope{}, payload{}, false
	}
	return e, pl, true
}

// internType returns the constant for a known type, without allocating.
func internType(t []byte) Type {
	switch string(t) {
	case string(TypeLinkCreated):
		return TypeLinkCreated
	case string(TypeLinkUpdated):
		return TypeLinkUpdated
	case string(TypeLinkDeleted):
		return TypeLinkDeleted
	case string(TypeRegionHeartbeat):
		return TypeRegionHeartbeat
	}
	return Type(t)
}

// parsePayload reads the payload object of an event of type typ at off. A
// heartbeat's or a delete's payload must be {} (encoding/json would accept
// and ignore any members), an unknown type's is given up.
func parsePayload(p *jsonParser, typ Type) (pl payload, ok bool) {
	var keys uint16
	switch typ {
	case TypeLinkCreated:
		c := &pl.created
		ok = p.object(func(key []byte) bool {
			var ok bool
			switch string(key) {
			case "url":
				if ok = seen(&keys, 1<<0); ok {
					c.URL, ok = p.str()
				}
			case "alias":
				if ok = seen(&keys, 1<<1); ok {
					c.Alias, ok = p.bool()
				}
			case "expires_at":
				if ok = seen(&keys, 1<<2); ok {
					var t time.Time
					if t, ok = p.time(); ok {
						c.ExpiresAt = &t
					}
				}
			case "redirect_status":
				if ok = seen(&keys, 1<<3); ok {
					c.RedirectStatus, ok = p.int()
				}
			}
			return ok
		})
	case TypeLinkUpdated:
		u := &pl.updated
		ok = p.object(func(key []byte) bool {
			var ok bool
			switch string(key) {
			case "url":
				if ok = seen(&keys, 1<<0); ok {
					var s string
					if s, ok = p.str(); ok {
						u.URL = &s
					}
				}
			case "expires_at":
				if ok = seen(&keys, 1<<1); ok {
					var t time.Time
					if t, ok = p.time(); ok {
						u.ExpiresAt = &t
					}
				}
			case "clear_expiry":
				if ok = seen(&keys, 1<<2); ok {
					u.ClearExpiry, ok = p.bool()
				}
			case "redirect_status":
				if ok = seen(&keys, 1<<3); ok {
					var n int
					if n, ok = p.int(); ok {
						u.RedirectStatus = &n
					}
				}
			}
			return ok
		})
	case TypeLinkDeleted, TypeRegionHeartbeat:
		ok = p.object(func([]byte) bool { return false })
	}
	return pl, ok
}

// parsePayloadFast parses a payload on its own, as json.Unmarshal would
// (white space around it allowed, nothing else).
func parsePayloadFast(data []byte, typ Type) (payload, bool) {
	p := jsonParser{data: data}
	pl, ok := parsePayload(&p, typ)
	if !ok || !p.end() {
		return payload{}, false
	}
	return pl, true
}
