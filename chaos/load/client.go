package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"time"
)

// The lean client sends redirects (GET /{code}) over HTTP/1.1 keep-alive
// connections that each worker owns, one per target, without net/http: the
// request is written from a reused buffer and the response parsed from a
// reused bufio.Reader, so the hot path allocates nothing (except the
// Location string when the history is on) and involves no goroutine other
// than the worker. Any error closes the connection; the next operation
// redials. Like net/http's Transport, a request that fails on a reused
// connection before any byte of the response arrived (the server closed an
// idle keep-alive connection) is retried once on a fresh connection.

const (
	// rawReadBuf is the size of a lean connection's read buffer.
	rawReadBuf = 4096
	// maxHeaderBytes bounds the status line and headers of one response
	// (including interim 1xx responses).
	maxHeaderBytes = 1 << 20
	// maxInterim bounds the interim (1xx) responses before the final one.
	maxInterim = 8
	// maxChunkLine bounds a chunk-size line.
	maxChunkLine = 4096
	userAgent    = "shortener-load"
)

var (
	errMalformed   = errors.New("malformed response")
	errHeaderLarge = errors.New("response header too large")
	// aLongTimeAgo is a deadline in the past: it aborts pending I/O.
	aLongTimeAgo = time.Unix(1, 0)
)

// rawConn is one worker's connection to one target.
type rawConn struct {
	c    net.Conn // nil when closed
	br   *bufio.Reader
	stop func() bool // unregisters the cancellation hook
	used bool        // a response has been read on c
	ep   *endpoint   // where c goes
}

func (rc *rawConn) close() {
	if rc.c == nil {
		return
	}
	rc.stop()
	rc.c.Close()
	rc.c = nil
}

// initRaw prepares t for the lean client; u is its parsed base URL.
func (t *target) initRaw(u *url.URL, localAddr string) {
	if localAddr != "" {
		t.local = &net.TCPAddr{IP: net.ParseIP(localAddr)}
	}
	t.reqPrefix = "GET " + (&url.URL{Path: t.path}).EscapedPath() + "/"
	t.reqSuffix = " HTTP/1.1\r\nHost: " + t.host + "\r\nUser-Agent: " + userAgent + "\r\n\r\n"
}

// appendCode appends code escaped as net/http escapes a URL path.
func appendCode(b []byte, code string) []byte {
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return append(b, (&url.URL{Path: code}).EscapedPath()...)
		}
	}
	return append(b, code...)
}

// dial opens rc's connection to ep for t; I/O on it is aborted when the
// worker's context ends.
func (w *worker) dial(rc *rawConn, t *target, ep *endpoint, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	if t.local != nil {
		d.LocalAddr = t.local
	}
	c, err := d.DialContext(w.ctx, "tcp", ep.addr)
	if err != nil {
		return err
	}
	rc.c, rc.ep = c, ep
	if rc.br == nil {
		rc.br = bufio.NewReaderSize(c, rawReadBuf)
	} else {
		rc.br.Reset(c)
	}
	rc.stop = context.AfterFunc(w.ctx, func() { c.SetDeadline(aLongTimeAgo) })
	rc.used = false
	return nil
}

// rawRoundTrip writes req on the worker's connection to target ti at ep and
// reads the response (see respParser.readResponse for capture). A
// connection to another endpoint (the DNS answer moved) is closed first.
func (w *worker) rawRoundTrip(ti int32, t *target, ep *endpoint, req []byte, deadline time.Time, capture bool) (respHead, error) {
	rc := &w.conns[ti]
	for retried := false; ; retried = true {
		if rc.c != nil && (rc.br.Buffered() > 0 || rc.ep != ep) {
			rc.close() // unsolicited bytes: the connection's state is unknown
		}
		if rc.c == nil {
			if err := w.dial(rc, t, ep, deadline); err != nil {
				return respHead{}, err
			}
		}
		reused := rc.used
		w.p.started = false
		err := rc.c.SetDeadline(deadline)
		if err == nil {
			select {
			case <-w.done:
				// The cancellation hook may have run before SetDeadline.
				err = context.Canceled
			default:
				_, err = rc.c.Write(req)
			}
		}
		if err == nil {
			var h respHead
			if h, err = w.p.readResponse(rc.br, capture); err == nil {
				if h.close {
					rc.close()
				} else {
					rc.used = true
				}
				return h, nil
			}
		}
		rc.close()
		if retried || !reused || w.p.started || !retryable(err) {
			return respHead{}, err
		}
	}
}

// retryable reports whether a request that failed on a reused connection
// before any response byte arrived may be sent again on a new one.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// isRedirect reports whether status is a redirect counted as success.
func isRedirect(status int) bool {
	return status == 301 || status == 302 || status == 307 || status == 308
}

// respHead is what the lean client keeps of a response.
type respHead struct {
	status int
	close  bool // the connection cannot be reused
	json   bool // Content-Type mentions json
}

// respParser reads HTTP/1.x responses. Its buffers are reused; loc and body
// are valid until the next readResponse.
type respParser struct {
	line    []byte // a header line longer than the read buffer
	loc     []byte // Location of the last response
	body    []byte // captured body of the last response
	started bool   // a byte of the current response was received
}

// readResponse reads one response: interim 1xx responses are skipped, the
// final one's status line and headers are parsed and its body is consumed
// (Content-Length, chunked, or until EOF). The body is kept in p.body (at
// most maxBody bytes) when capture is set, the status is not a redirect and
// the Content-Type mentions json; otherwise it is discarded. Any error
// leaves the stream in an unknown state.
func (p *respParser) readResponse(br *bufio.Reader, capture bool) (respHead, error) {
	if _, err := br.Peek(1); err != nil {
		return respHead{}, err
	}
	p.started = true
	p.body = p.body[:0]
	budget := maxHeaderBytes
	for interim := 0; ; interim++ {
		line, err := p.readLine(br, &budget)
		if err != nil {
			return respHead{}, err
		}
		http11, status, ok := parseStatusLine(line)
		if !ok {
			return respHead{}, errMalformed
		}
		h := respHead{status: status}
		p.loc = p.loc[:0]
		var (
			length             int64 = -1
			chunked, te        bool
			keepAlive, haveLoc bool
		)
		for {
			line, err = p.readLine(br, &budget)
			if err != nil {
				return respHead{}, err
			}
			if len(line) == 0 {
				break
			}
			i := bytes.IndexByte(line, ':')
			if i <= 0 || bytes.IndexByte(line[:i], ' ') >= 0 || bytes.IndexByte(line[:i], '\t') >= 0 {
				return respHead{}, errMalformed // also rejects obsolete line folding
			}
			name, value := line[:i], trimOWS(line[i+1:])
			switch {
			case asciiEqualFold(name, "location"):
				if !haveLoc {
					haveLoc = true
					p.loc = append(p.loc, value...)
				}
			case asciiEqualFold(name, "content-type"):
				h.json = bytes.Contains(value, []byte("json"))
			case asciiEqualFold(name, "connection"):
				for len(value) > 0 {
					var tok []byte
					tok, value, _ = bytes.Cut(value, []byte(","))
					tok = trimOWS(tok)
					if asciiEqualFold(tok, "close") {
						h.close = true
					} else if asciiEqualFold(tok, "keep-alive") {
						keepAlive = true
					}
				}
			case asciiEqualFold(name, "content-length"):
				n, ok := parseLength(value)
				if !ok || length >= 0 && n != length {
					return respHead{}, errMalformed
				}
				length = n
			case asciiEqualFold(name, "transfer-encoding"):
				if !http11 {
					break // HTTP/1.0 has no transfer codings
				}
				if te || !asciiEqualFold(value, "chunked") {
					return respHead{}, errMalformed // only chunked is supported
				}
				te, chunked = true, true
			}
		}
		if status < 200 {
			if status == 101 || interim >= maxInterim {
				return respHead{}, errMalformed
			}
			continue
		}
		if !http11 && !keepAlive {
			h.close = true
		}
		capture = capture && h.json && !isRedirect(status)
		switch {
		case status == 204 || status == 304:
			err = nil
		case chunked:
			err = p.readChunked(br, capture)
		case length >= 0:
			err = p.take(br, length, capture)
		default:
			h.close = true
			err = p.readToEOF(br, capture)
		}
		return h, err
	}
}

// readLine returns the next line without its line ending ("\n" or "\r\n");
// it is valid until the next read. It charges the line to budget.
func (p *respParser) readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		p.line = append(p.line[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(p.line) > *budget {
				return nil, errHeaderLarge
			}
			line, err = br.ReadSlice('\n')
			p.line = append(p.line, line...)
		}
		line = p.line
	}
	if *budget -= len(line); *budget < 0 {
		return nil, errHeaderLarge
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatusLine parses "HTTP/1.x SSS[ reason]" with SSS in 100..599.
func parseStatusLine(line []byte) (http11 bool, status int, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return false, 0, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false, 0, false
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 || status > 599 {
		return false, 0, false
	}
	return line[7] == '1', status, true
}

// parseLength parses a Content-Length value.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// readChunked consumes a chunked body and its trailers.
func (p *respParser) readChunked(br *bufio.Reader, capture bool) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err == bufio.ErrBufferFull && len(line) >= maxChunkLine {
				err = errMalformed
			}
			return err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions are ignored
		}
		line = bytes.TrimRight(line, " \t\r\n")
		if len(line) == 0 || len(line) > 15 {
			return errMalformed
		}
		var size int64
		for _, c := range line {
			switch {
			case '0' <= c && c <= '9':
				c -= '0'
			case 'a' <= c && c <= 'f':
				c -= 'a' - 10
			case 'A' <= c && c <= 'F':
				c -= 'A' - 10
			default:
				return errMalformed
			}
			size = size<<4 | int64(c)
		}
		if size == 0 {
			budget := maxHeaderBytes
			for { // trailers
				line, err := p.readLine(br, &budget)
				if err != nil {
					return err
				}
				if len(line) == 0 {
					return nil
				}
			}
		}
		if err := p.take(br, size, capture); err != nil {
			return err
		}
		crlf, err := br.Peek(2)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return errMalformed
		}
		br.Discard(2)
	}
}

// take consumes n body bytes, keeping up to maxBody of them in p.body when
// capture is set.
func (p *respParser) take(br *bufio.Reader, n int64, capture bool) error {
	if capture && len(p.body) < maxBody {
		k := int(min(n, int64(maxBody-len(p.body))))
		p.body = grow(p.body, k)
		m, err := io.ReadFull(br, p.body[len(p.body):len(p.body)+k])
		p.body = p.body[:len(p.body)+m]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n -= int64(k)
	}
	for n > 0 {
		k := int(min(n, 1<<30))
		m, err := br.Discard(k)
		n -= int64(m)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readToEOF consumes a body delimited by the end of the connection.
func (p *respParser) readToEOF(br *bufio.Reader, capture bool) error {
	if capture {
		for len(p.body) < maxBody {
			p.body = grow(p.body, min(4096, maxBody-len(p.body)))
			m, err := br.Read(p.body[len(p.body):cap(p.body)])
			p.body = p.body[:len(p.body)+m]
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		if _, err := br.Discard(rawReadBuf); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// grow returns b with room for at least n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = append(b[:cap(b)], make([]byte, n)...)[:len(b)]
	}
	return b
}

// trimOWS trims optional whitespace (spaces and tabs) around a header value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case only.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
