package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The binary form of a click batch, what regions publish since
// 2026-12-06 (JSON before: DecodeClickBatch reads both, so click streams
// written before keep counting). A batch of 2,000 clicks is about a third
// of its JSON and costs a fraction of encoding/json's time both ways, on
// the core that serves redirects.
//
//	0xC1                          format (JSON starts with '{')
//	uvarint len, bytes            ID
//	uvarint len, bytes            Region
//	varint                        Time, Unix nanoseconds
//	uvarint                       number of clicks
//	per click:
//	  uvarint len, bytes          Code
//	  varint                      UnixMs minus the previous click's (the first: minus 0)
//	  uvarint len, bytes          Referrer
//	  byte                        agent class (clickAgents index) | 0x80 when a bot
//
// Strings must be valid UTF-8; a decoded batch encodes to a form that
// decodes to the same batch.
const clickBatchBinary = 0xC1

// clickAgents are the agent classes in their binary order.
var clickAgents = [...]string{AgentBrowser, AgentMobile, AgentCLI, AgentBot, AgentOther}

// maxClickString bounds a string field of the binary form (a referrer host
// is at most 253 bytes; codes and ids far less).
const maxClickString = 1024

// AppendClickBatch appends the binary form of b to dst. An agent class
// outside the known ones is encoded as AgentOther; in strings that are not
// valid UTF-8 each run of invalid bytes becomes U+FFFD.
func AppendClickBatch(dst []byte, b ClickBatch) []byte {
	dst = append(dst, clickBatchBinary)
	dst = appendClickString(dst, b.ID)
	dst = appendClickString(dst, b.Region)
	dst = binary.AppendVarint(dst, b.Time.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(b.Clicks)))
	var prev int64
	for _, c := range b.Clicks {
		dst = appendClickString(dst, c.Code)
		dst = binary.AppendVarint(dst, c.UnixMs-prev)
		prev = c.UnixMs
		dst = appendClickString(dst, c.Referrer)
		a := byte(len(clickAgents) - 1)
		for i, name := range clickAgents {
			if name == c.Agent {
				a = byte(i)
				break
			}
		}
		if c.Bot {
			a |= 0x80
		}
		dst = append(dst, a)
	}
	return dst
}

func appendClickString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > maxClickString {
		s = s[:maxClickString]
		for !utf8.ValidString(s) { // do not cut a rune in two
			s = s[:len(s)-1]
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// clickReader reads the binary form; its first error sticks.
type clickReader struct {
	data []byte
	err  error
}

func (r *clickReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("click batch: "+format, args...)
	}
}

// number reads one varint-encoded number with read (binary.Uvarint or
// binary.Varint).
func number[T int64 | uint64](r *clickReader, what string, read func([]byte) (T, int)) T {
	if r.err != nil {
		return 0
	}
	v, n := read(r.data)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.data = r.data[n:]
	return v
}

// str reads a string; when its bytes are those of like, it returns like
// (clicks in a row on one link share their code, without an allocation).
func (r *clickReader) str(what, like string) string {
	n := number(r, what, binary.Uvarint)
	if r.err != nil {
		return ""
	}
	if n > maxClickString || n > uint64(len(r.data)) {
		r.fail("%s: %d bytes, %d left", what, n, len(r.data))
		return ""
	}
	b := r.data[:n]
	r.data = r.data[n:]
	if string(b) == like {
		return like
	}
	if !utf8.Valid(b) {
		r.fail("%s: not UTF-8", what)
		return ""
	}
	return string(b)
}

// decodeClickBatchBinary parses the binary form (its first byte included).
func decodeClickBatchBinary(data []byte) (ClickBatch, error) {
	var b ClickBatch
	r := clickReader{data: data[1:]}
	b.ID = r.str("id", "")
	b.Region = r.str("region", "")
	b.Time = time.Unix(0, number(&r, "time", binary.Varint)).UTC()
	n := number(&r, "click count", binary.Uvarint)
	if r.err == nil && n > MaxClickBatch {
		return ClickBatch{}, fmt.Errorf("click batch: %d clicks, at most %d", n, MaxClickBatch)
	}
	if r.err == nil && n > uint64(len(r.data))/4 { // a click is at least 4 bytes
		r.fail("%d clicks in %d bytes", n, len(r.data))
	}
	if r.err != nil {
		return ClickBatch{}, r.err
	}
	b.Clicks = make([]Click, n)
	var prev int64
	var last Click
	for i := range b.Clicks {
		c := &b.Clicks[i]
		c.Code = r.str("code", last.Code)
		d := number(&r, "time", binary.Varint)
		c.UnixMs = prev + d
		if (d > 0 && c.UnixMs < prev) || (d < 0 && c.UnixMs > prev) {
			r.fail("click %d: time overflows", i)
		}
		prev = c.UnixMs
		c.Referrer = r.str("referrer", last.Referrer)
		if r.err == nil && len(r.data) == 0 {
			r.fail("click %d: no agent", i)
		}
		if r.err != nil {
			return ClickBatch{}, r.err
		}
		a := r.data[0]
		r.data = r.data[1:]
		if int(a&0x7f) >= len(clickAgents) {
			return ClickBatch{}, fmt.Errorf("click batch: click %d: agent class %d", i, a&0x7f)
		}
		c.Agent, c.Bot = clickAgents[a&0x7f], a&0x80 != 0
		last = *c
	}
	if len(r.data) > 0 {
		return ClickBatch{}, errors.New("click batch: trailing bytes")
	}
	return b, nil
}
