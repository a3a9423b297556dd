package events

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends l's JSON form to b: byte for byte what json.Marshal(l)
// writes (a projection's link rows are digested, so the form is a wire
// format), without reflection. When json.Marshal would fail (a time outside
// RFC 3339's years) it returns json.Marshal's result and error.
// FuzzLinkAppendJSON checks the equivalence.
func (l Link) AppendJSON(b []byte) ([]byte, error) {
	out, ok := l.appendJSON(b)
	if !ok {
		v, err := json.Marshal(l)
		return append(b, v...), err
	}
	return out, nil
}

func (l Link) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	tm := func(b []byte, key string, t time.Time) []byte {
		b = append(b, key...)
		b = append(b, '"')
		if out, err := t.AppendText(b); err == nil {
			b = out
		} else {
			ok = false
		}
		return append(b, '"')
	}
	b = append(b, `{"code":`...)
	b = appendJSONString(b, l.Code)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, l.URL)
	b = append(b, `,"redirect_status":`...)
	b = strconv.AppendInt(b, int64(l.RedirectStatus), 10)
	if l.Alias {
		b = append(b, `,"alias":true`...)
	}
	b = append(b, `,"origin":`...)
	b = appendJSONString(b, l.Origin)
	if l.Actor != "" {
		b = append(b, `,"actor":`...)
		b = appendJSONString(b, l.Actor)
	}
	b = tm(b, `,"created_at":`, l.CreatedAt)
	b = tm(b, `,"updated_at":`, l.UpdatedAt)
	if l.ExpiresAt != nil {
		b = tm(b, `,"expires_at":`, *l.ExpiresAt)
	}
	if l.Deleted {
		b = append(b, `,"deleted":true`...)
	}
	if l.DeletedAt != nil {
		b = tm(b, `,"deleted_at":`, *l.DeletedAt)
	}
	b = tm(b, `,"last_time":`, l.LastTime)
	b = append(b, `,"last_id":`...)
	b = appendJSONString(b, l.LastID)
	b = append(b, `,"events":`...)
	b = strconv.AppendInt(b, int64(l.Events), 10)
	return append(b, '}'), ok
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does (HTML escaping on):
// <, > and & as \u003c..., U+2028 and U+2029 escaped, invalid UTF-8 as
// \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + size
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
