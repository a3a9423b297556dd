package load

import (
	"bufio"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// histRec is one history line before formatting. Times are nanoseconds
// since the run's start. A record with raw set is another kind of record,
// already formatted (one line with its newline).
type histRec struct {
	seq                   int64
	intended, start, end  int64
	status                int
	target                int32
	kind                  opKind
	ok                    bool
	cut                   bool // cut off by the caller's cancellation after it was sent
	code, url, errMessage string
	ep                    *endpoint
	raw                   []byte
}

// historyBatch is how many records a worker buffers before handing them to
// the writer (it also hands them over whenever it goes idle).
const historyBatch = 256

// historyWriter serializes history lines: workers send batches over ch and
// a single goroutine formats and writes them through a bufio.Writer.
type historyWriter struct {
	ch    chan []histRec
	free  chan []histRec
	done  chan struct{}
	bw    *bufio.Writer
	err   error
	start time.Time
	names []string
}

func newHistoryWriter(w io.Writer, start time.Time, names []string) *historyWriter {
	h := &historyWriter{
		ch:    make(chan []histRec, 1024),
		free:  make(chan []histRec, 1024),
		done:  make(chan struct{}),
		bw:    bufio.NewWriterSize(w, 256<<10),
		start: start,
		names: names,
	}
	go h.loop()
	return h
}

// batch returns an empty batch slice, recycled when possible.
func (h *historyWriter) batch() []histRec {
	select {
	case b := <-h.free:
		return b[:0]
	default:
		return make([]histRec, 0, historyBatch)
	}
}

// send hands a batch to the writer goroutine; it blocks when the writer
// falls behind (history is never dropped).
func (h *historyWriter) send(b []histRec) { h.ch <- b }

// close flushes everything and returns the first write error.
func (h *historyWriter) close() error {
	close(h.ch)
	<-h.done
	return h.err
}

func (h *historyWriter) loop() {
	defer close(h.done)
	buf := make([]byte, 0, 1024)
	for b := range h.ch {
		if h.err == nil {
			for i := range b {
				buf = h.appendLine(buf[:0], &b[i])
				if _, err := h.bw.Write(buf); err != nil {
					h.err = err
					break
				}
			}
			// Flush when idle so tailing readers see lines promptly.
			if h.err == nil && len(h.ch) == 0 {
				h.err = h.bw.Flush()
			}
		}
		clear(b) // drop string references
		select {
		case h.free <- b:
		default:
		}
	}
	if h.err == nil {
		h.err = h.bw.Flush()
	}
}

// sendRaw hands one preformatted line to the writer.
func (h *historyWriter) sendRaw(line []byte) { h.ch <- []histRec{{raw: line}} }

func (h *historyWriter) appendLine(b []byte, r *histRec) []byte {
	if r.raw != nil {
		return append(b, r.raw...)
	}
	b = append(b, `{"kind":"op","seq":`...)
	b = strconv.AppendInt(b, r.seq, 10)
	b = append(b, `,"op":"`...)
	b = append(b, r.kind.String()...)
	b = append(b, `","target":`...)
	b = appendJSONString(b, h.names[r.target])
	b = append(b, `,"intended":"`...)
	b = h.start.Add(time.Duration(r.intended)).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","start":"`...)
	b = h.start.Add(time.Duration(r.start)).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","end":"`...)
	b = h.start.Add(time.Duration(r.end)).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, r.ok)
	b = append(b, `,"code":`...)
	b = appendJSONString(b, r.code)
	b = append(b, `,"url":`...)
	b = appendJSONString(b, r.url)
	b = append(b, `,"err":`...)
	b = appendJSONString(b, r.errMessage)
	b = append(b, `,"ack":`...)
	b = strconv.AppendBool(b, r.status == 201 && r.kind != opRedirect)
	var addr, region string
	if r.ep != nil {
		addr, region = r.ep.addr, r.ep.region
	}
	b = append(b, `,"addr":`...)
	b = appendJSONString(b, addr)
	b = append(b, `,"region":`...)
	b = appendJSONString(b, region)
	if r.cut {
		b = append(b, `,"cut":true`...)
	}
	b = append(b, "}\n"...)
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
