package load

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBody bounds how much of a create response body is read and parsed.
const maxBody = 1 << 20

// target is a Target prepared for requests.
type target struct {
	name         string
	scheme, host string
	path         string // base path without trailing slash
	createPath   string
	tr           *http.Transport
	// cur is where requests go now: fixed, or the last DNS answer.
	cur atomic.Pointer[endpoint]
	dns *dnsClient // nil: BaseURL's host is dialled as is

	// Lean client (redirects over plain HTTP unless Config.StdHTTP).
	raw                  bool
	local                *net.TCPAddr // source address, nil to let the kernel choose
	reqPrefix, reqSuffix string       // a redirect request is prefix + code + suffix
}

// baseHostPort returns u's host and port, the scheme's default port when
// u names none.
func baseHostPort(u *url.URL) hostPort {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return hostPort{host: u.Hostname(), port: port}
}

func (r *runner) newTarget(t Target) (*target, error) {
	cfg := &r.cfg
	u, _ := parseBase(t.BaseURL) // validated by normalize
	hp := baseHostPort(u)
	d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if t.LocalAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(t.LocalAddr)}
	}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConnsPerHost: cfg.Workers,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
		DisableCompression:  true,
		DisableKeepAlives:   false,
	}
	tg := &target{
		name:       t.Name,
		scheme:     u.Scheme,
		host:       u.Host,
		path:       u.Path,
		createPath: u.Path + "/api/v1/links",
		tr:         tr,
		raw:        !cfg.StdHTTP && u.Scheme == "http",
	}
	if t.DNS != "" {
		var err error
		if tg.dns, err = newDNSClient(t, hp, cfg.ResolveTimeout); err != nil {
			return nil, err
		}
		// Requests are sent to the resolved address; TLS still checks the
		// name.
		tr.TLSClientConfig = &tls.Config{ServerName: hp.host}
	} else {
		addr := net.JoinHostPort(hp.host, hp.port)
		tg.cur.Store(&endpoint{addr: addr, region: r.regionOf(addr)})
	}
	if tg.raw {
		tg.initRaw(u, t.LocalAddr)
	}
	return tg, nil
}

// regionOf returns the name of the region whose base URL is at addr
// (host:port), or "".
func (r *runner) regionOf(addr string) string {
	return r.regionAddrs[addr]
}

// request builds a request to ep without parsing a URL string; the Host
// header is always the base URL's.
func (t *target) request(ctx context.Context, ep *endpoint, method, path string, h http.Header, body io.ReadCloser, n int) *http.Request {
	host := t.host
	if t.dns != nil {
		host = ep.addr
	}
	req := &http.Request{
		Method:        method,
		URL:           &url.URL{Scheme: t.scheme, Host: host, Path: path},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: int64(n),
		Host:          t.host,
	}
	return req.WithContext(ctx)
}

// sample is one completed operation as recorded by a worker.
type sample struct {
	lat    int64 // ns
	target int32
	status int32
	ok     bool
}

// worker sends operations one at a time. Its samples are guarded by its own
// mutex, which only the collector contends for (once per second).
type worker struct {
	r       *runner
	ctx     context.Context // parent of the worker's request contexts
	done    <-chan struct{} // ctx.Done()
	mu      sync.Mutex
	samples []sample
	spare   []sample // owned by the collector
	hist    []histRec
	getHdr  http.Header
	postHdr http.Header
	rbuf    []byte
	conns   []rawConn // lean client: one connection per target
	wbuf    []byte    // lean client: request buffer
	p       respParser
}

// targetAgg accumulates one target's results in the collector.
type targetAgg struct {
	sec, run                  *histogram
	secSent, secOK, secFailed int64
	sent, ok, failed          int64
	status                    map[int]int64
	missedSeen                int64
	seconds                   []Second
}

// runner is the state of one Run.
type runner struct {
	cfg        Config
	ctx        context.Context
	done       <-chan struct{} // ctx.Done()
	targets    []*target
	open       bool
	start      time.Time
	dur        int64 // ns
	drainAt    int64 // ns; open-loop ops dequeued later are missed
	ops        chan op
	created    chan createdCode
	missed     []atomic.Int64 // per target
	cut        atomic.Bool    // ctx ended the run early
	workers    []*worker
	history    *historyWriter
	urlPrefix  string
	bodyPrefix []byte // {"url":"<escaped URLPrefix>
	aggs       []*targetAgg
	// regionAddrs maps the host:port of every Config.Regions base URL to
	// the region's name.
	regionAddrs map[string]string
}

func (r *runner) now() int64 { return int64(time.Since(r.start)) }

func (r *runner) cancelled() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Run drives the targets as configured and returns the report when every
// scheduled operation has completed or been counted as missed. If ctx ends
// first, Run stops early and returns the partial report with ctx.Err();
// operations aborted that way count as missed. History write errors are
// returned with the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &runner{
		cfg:       cfg,
		ctx:       ctx,
		done:      ctx.Done(),
		open:      cfg.Rate > 0,
		dur:       int64(cfg.Duration),
		drainAt:   int64(cfg.Duration + cfg.Timeout),
		created:   make(chan createdCode, 4096),
		missed:    make([]atomic.Int64, len(cfg.Targets)),
		urlPrefix: cfg.URLPrefix,
	}
	p := appendJSONString([]byte(`{"url":`), cfg.URLPrefix)
	r.bodyPrefix = p[:len(p)-1]
	if r.open {
		r.ops = make(chan op, cfg.MaxBacklog)
	} else {
		r.ops = make(chan op, cfg.Workers)
	}
	r.regionAddrs = make(map[string]string, len(cfg.Regions))
	for _, rg := range cfg.Regions {
		u, _ := parseBase(rg.BaseURL) // validated by normalize
		hp := baseHostPort(u)
		r.regionAddrs[net.JoinHostPort(hp.host, hp.port)] = rg.Name
	}
	names := make([]string, len(cfg.Targets))
	for i, t := range cfg.Targets {
		tg, err := r.newTarget(t)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, tg)
		names[i] = t.Name
		r.aggs = append(r.aggs, &targetAgg{sec: newHistogram(), run: newHistogram(), status: map[int]int64{}})
	}
	defer func() {
		for _, t := range r.targets {
			t.tr.CloseIdleConnections()
		}
	}()
	// Every DNS target is resolved before the run: a switch that does not
	// answer at all is a configuration error, not a failover.
	var firstDNS []dnsEvent
	var expires []time.Time
	for _, t := range r.targets {
		if t.dns == nil {
			firstDNS, expires = append(firstDNS, dnsEvent{}), append(expires, time.Time{})
			continue
		}
		exp, ev := r.refresh(ctx, t)
		if ev.err != nil {
			return nil, fmt.Errorf("load: target %s: resolve %s at %s: %w", t.name, t.dns.name, t.dns.server, ev.err)
		}
		firstDNS, expires = append(firstDNS, ev), append(expires, exp)
	}
	for range cfg.Workers {
		w := &worker{
			r:       r,
			conns:   make([]rawConn, len(cfg.Targets)),
			samples: make([]sample, 0, 1024),
			spare:   make([]sample, 0, 1024),
			getHdr:  http.Header{},
			postHdr: http.Header{
				"Content-Type": {"application/json"},
				"Accept":       {"application/json, application/problem+json"},
			},
		}
		if cfg.APIKey != "" {
			w.postHdr["X-Api-Key"] = []string{cfg.APIKey}
		}
		r.workers = append(r.workers, w)
	}
	gen := newGenerator(cfg.Seed, cfg.CreateRatio, len(cfg.Targets), cfg.Codes, r.created).withAliases(cfg.AliasRatio, cfg.AliasPrefix, cfg.AliasSpan)

	r.start = time.Now()
	if cfg.History != nil {
		r.history = newHistoryWriter(cfg.History, r.start, names)
	}
	// Background work (re-resolving, polling the regions) lasts until the
	// workers are done, and ends before the history is closed.
	bgCtx, bgCancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	stopBackground := func() { bgCancel(); bg.Wait() }
	defer stopBackground()
	for i, t := range r.targets {
		if t.dns == nil {
			continue
		}
		r.recordDNS(int32(i), firstDNS[i])
		bg.Go(func() { r.resolveLoop(bgCtx, t, int32(i), expires[i]) })
	}
	if r.history != nil && cfg.RegionsInterval > 0 {
		for _, rg := range cfg.Regions {
			bg.Go(func() { r.pollRegion(bgCtx, rg) })
		}
	}
	var wg sync.WaitGroup
	for _, w := range r.workers {
		// A per-worker parent keeps request contexts from contending on
		// ctx's child registry.
		var cancel context.CancelFunc
		w.ctx, cancel = context.WithCancel(ctx)
		w.done = w.ctx.Done()
		defer cancel()
		wg.Go(w.run)
	}
	go r.schedule(gen)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	timer := time.NewTimer(time.Until(r.start.Add(time.Second)))
	defer timer.Stop()
	for sec := 0; ; sec++ {
		select {
		case <-timer.C:
			r.harvest(sec, false)
			timer.Reset(time.Until(r.start.Add(time.Duration(sec+2) * time.Second)))
			continue
		case <-finished:
			r.harvest(sec, true)
		}
		break
	}
	stopBackground()
	rep := r.report(time.Since(r.start))
	if r.history != nil {
		if herr := r.history.close(); herr != nil {
			err = fmt.Errorf("load: writing history: %w", herr)
		}
	}
	if r.cut.Load() {
		err = errors.Join(ctx.Err(), err)
	}
	return rep, err
}

// schedule generates operations and queues them for the workers; it closes
// r.ops when done.
func (r *runner) schedule(g *generator) {
	defer close(r.ops)
	if !r.open {
		for r.now() < r.dur {
			o := g.next()
			select {
			case r.ops <- o:
			case <-r.done:
				r.cut.Store(true)
				return
			}
		}
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	nsPerOp := 1e9 / r.cfg.Rate
	for i := int64(0); ; i++ {
		due := int64(float64(i) * nsPerOp)
		if due >= r.dur {
			return
		}
		if now := r.now(); due > now {
			timer.Reset(time.Duration(due - now))
			select {
			case <-timer.C:
			case <-r.done:
				r.cut.Store(true)
				return
			}
		} else if r.cancelled() {
			r.cut.Store(true)
			return
		}
		o := g.next()
		o.intended = due
		select {
		case r.ops <- o:
		default:
			r.missed[o.target].Add(1) // backlog full
		}
	}
}

func (w *worker) run() {
	for {
		var o op
		var ok bool
		select {
		case o, ok = <-w.r.ops:
		default:
			w.flushHistory() // idle: hand over history before blocking
			o, ok = <-w.r.ops
		}
		if !ok {
			w.flushHistory()
			for i := range w.conns {
				w.conns[i].close()
			}
			return
		}
		w.do(o)
	}
}

func (w *worker) flushHistory() {
	if len(w.hist) == 0 {
		return
	}
	w.r.history.send(w.hist)
	w.hist = w.r.history.batch()
}

func (w *worker) miss(o *op) {
	w.r.missed[o.target].Add(1)
}

// result is the outcome of one sent operation.
type result struct {
	status    int // 0 with err
	ok        bool
	code, loc string // history: the code, and the Location or created URL
	emsg      string // history: why the operation failed (not ok, err nil)
	err       error  // transport or protocol error
}

func (w *worker) do(o op) {
	r := w.r
	start := r.now()
	if r.cancelled() {
		r.cut.Store(true)
		w.miss(&o)
		return
	}
	if r.open {
		if start > r.drainAt {
			w.miss(&o)
			return
		}
	} else if start >= r.dur {
		return // closed loop: queued after the end, never intended
	}
	t := r.targets[o.target]
	ep := t.cur.Load()
	var res result
	if o.kind == opRedirect && t.raw {
		res = w.rawRedirect(o.target, t, ep, o.code, start)
	} else {
		start, res = w.stdDo(t, ep, &o, start)
	}
	end := r.now()
	intended := o.intended
	if !r.open {
		intended = start
	}
	if res.err != nil {
		res.ok = false
		res.emsg = errString(res.err)
		if r.cancelled() {
			r.cut.Store(true)
			w.miss(&o) // aborted by the caller, not by the service
			if o.kind != opRedirect {
				// Sent, so it may have taken effect: the checkers must
				// know the write of unknown outcome.
				w.record(&o, intended, start, end, res, ep, true)
			}
			return
		}
	}
	if r.created != nil && res.status == http.StatusCreated && o.kind != opRedirect {
		select {
		case r.created <- createdCode{target: o.target, code: res.code}:
		default: // generator busy; the pool is a best-effort sample
		}
	}
	w.mu.Lock()
	w.samples = append(w.samples, sample{lat: end - intended, target: o.target, status: int32(res.status), ok: res.ok})
	w.mu.Unlock()
	w.record(&o, intended, start, end, res, ep, false)
}

// record adds o's outcome to the history, when there is one.
func (w *worker) record(o *op, intended, start, end int64, res result, ep *endpoint, cut bool) {
	r := w.r
	if r.history == nil {
		return
	}
	if w.hist == nil {
		w.hist = r.history.batch()
	}
	w.hist = append(w.hist, histRec{
		seq: o.seq, intended: intended, start: start, end: end,
		status: res.status, target: o.target, kind: o.kind, ok: res.ok, cut: cut,
		code: res.code, url: res.loc, errMessage: res.emsg, ep: ep,
	})
	if len(w.hist) >= historyBatch {
		w.flushHistory()
	}
}

// acceptRedirect reports whether a redirect's answer is a success: any
// redirect status, or what Config.AcceptRedirect says.
func (r *runner) acceptRedirect(code string, status int, location []byte) bool {
	if r.cfg.AcceptRedirect != nil {
		return r.cfg.AcceptRedirect(code, status, location)
	}
	return isRedirect(status)
}

// rawRedirect sends a redirect with the lean client; start is the send time
// (ns since the run's start) from which the timeout runs. Any error gives
// status 0.
func (w *worker) rawRedirect(ti int32, t *target, ep *endpoint, code string, start int64) result {
	r := w.r
	req := append(w.wbuf[:0], t.reqPrefix...)
	req = appendCode(req, code)
	req = append(req, t.reqSuffix...)
	w.wbuf = req
	deadline := r.start.Add(time.Duration(start) + r.cfg.Timeout)
	h, err := w.rawRoundTrip(ti, t, ep, req, deadline, r.history != nil)
	if err != nil {
		return result{err: err} // no code, as with net/http
	}
	res := result{status: h.status, code: code}
	res.ok = r.acceptRedirect(code, h.status, w.p.loc)
	if r.history != nil {
		if res.ok {
			res.loc = string(w.p.loc)
		} else if isRedirect(h.status) {
			res.emsg = "unexpected Location"
		} else if res.emsg = "unexpected status"; h.json {
			res.emsg = problemText(w.p.body)
		}
	}
	return res
}

// stdDo sends an operation to ep with net/http. In closed loop it returns
// the actual send time in place of start.
func (w *worker) stdDo(t *target, ep *endpoint, o *op, start int64) (int64, result) {
	r := w.r
	ctx, cancel := context.WithTimeout(w.ctx, r.cfg.Timeout)
	defer cancel()
	var req *http.Request
	var longURL string
	if o.kind == opRedirect {
		req = t.request(ctx, ep, http.MethodGet, t.path+"/"+o.code, w.getHdr, nil, 0)
	} else {
		body := make([]byte, 0, len(r.bodyPrefix)+16)
		body = append(body, r.bodyPrefix...)
		body = strconv.AppendUint(body, o.suffix, 36)
		body = append(body, '"')
		if o.kind == opAlias {
			body = append(body, `,"alias":`...)
			body = appendJSONString(body, o.code)
		}
		body = append(body, '}')
		req = t.request(ctx, ep, http.MethodPost, t.createPath, w.postHdr, io.NopCloser(bytes.NewReader(body)), len(body))
		if r.history != nil {
			longURL = r.urlPrefix + strconv.FormatUint(o.suffix, 36)
		}
	}
	if !r.open {
		start = r.now()
	}

	var res result
	res.loc = longURL
	if o.kind == opAlias {
		// What a claim asked for is known whatever the answer, and must be
		// in the history even when none comes: a claim whose connection
		// dies may still have won (unknown outcome).
		res.code = o.code
	}
	// RoundTrip, not http.Client.Do: it never follows redirects, and
	// Client.Do parses and prepares a follow-up request for every 3xx
	// before CheckRedirect could stop it (about 8% of the client's CPU).
	resp, err := t.tr.RoundTrip(req)
	if err == nil {
		res.status = resp.StatusCode
		switch {
		case o.kind == opRedirect:
			res.code = o.code
			var loc string
			if v := resp.Header["Location"]; len(v) > 0 {
				loc = v[0]
			}
			res.ok = r.acceptRedirect(o.code, res.status, []byte(loc))
			if res.ok {
				res.loc = loc
				_, err = io.Copy(io.Discard, resp.Body)
			} else {
				res.emsg, err = w.problem(resp)
			}
		case res.status == http.StatusCreated:
			var code string
			if code, err = w.readCode(resp.Body); code != "" {
				res.code = code // a claim keeps its alias when the body has none
			}
			res.ok = err == nil
		default:
			// The alias taken by another claim is a definite answer.
			res.ok = o.kind == opAlias && res.status == http.StatusConflict
			res.emsg, err = w.problem(resp)
		}
		resp.Body.Close()
	}
	res.err = err
	return start, res
}

// readCode reads a create response body and returns its "code".
func (w *worker) readCode(body io.Reader) (string, error) {
	b, err := readAll(body, w.rbuf[:0])
	w.rbuf = b
	if err != nil {
		return "", err
	}
	var v struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return "", errors.New("invalid create response")
	}
	if v.Code == "" {
		return "", errors.New("create response without code")
	}
	return v.Code, nil
}

// problem consumes an unsuccessful response and returns a short description:
// the title/detail of an application/problem+json body when the history is
// on, "unexpected status" otherwise. The error is a body read error.
func (w *worker) problem(resp *http.Response) (string, error) {
	if w.r.history == nil || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		_, err := io.Copy(io.Discard, resp.Body)
		return "unexpected status", err
	}
	b, err := readAll(resp.Body, w.rbuf[:0])
	w.rbuf = b
	if err != nil {
		return "", err
	}
	return problemText(b), nil
}

// problemText returns "title: detail" of a problem+json body, or
// "unexpected status" when b is not one.
func problemText(b []byte) string {
	var v struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &v) != nil || (v.Title == "" && v.Detail == "") {
		return "unexpected status"
	}
	s := v.Title
	if v.Detail != "" {
		if s != "" {
			s += ": "
		}
		s += v.Detail
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// readAll reads r into b (up to maxBody bytes) and drains the rest.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for len(b) < maxBody {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	_, err := io.Copy(io.Discard, r)
	return b, err
}

// errString returns a short description of a transport error.
func errString(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// harvest collects the workers' samples of second sec into the per-target
// aggregates, appends a Second per target and writes the progress line.
// On the final call an empty trailing second is not recorded.
func (r *runner) harvest(sec int, final bool) {
	for _, w := range r.workers {
		w.mu.Lock()
		s := w.samples
		w.samples = w.spare
		w.mu.Unlock()
		for i := range s {
			x := &s[i]
			a := r.aggs[x.target]
			a.sec.record(x.lat)
			a.secSent++
			if x.ok {
				a.secOK++
			} else {
				a.secFailed++
			}
			a.status[int(x.status)]++
		}
		w.spare = s[:0]
	}
	var sent, okN, missed int64
	dm := make([]int64, len(r.aggs))
	for i, a := range r.aggs {
		m := r.missed[i].Load()
		dm[i] = m - a.missedSeen
		a.missedSeen = m
		sent += a.secSent
		okN += a.secOK
		missed += dm[i]
	}
	if !final || sec == 0 || sent > 0 || missed > 0 {
		var line []byte
		for i, a := range r.aggs {
			ep := r.targets[i].cur.Load()
			sc := Second{
				T: sec, Sent: a.secSent, OK: a.secOK, Failed: a.secFailed, Missed: dm[i],
				P50:  time.Duration(a.sec.quantile(0.50)),
				P99:  time.Duration(a.sec.quantile(0.99)),
				P999: time.Duration(a.sec.quantile(0.999)),
				Addr: ep.addr, Region: ep.region,
			}
			a.seconds = append(a.seconds, sc)
			if r.cfg.Progress != nil {
				line = r.appendProgress(line, r.targets[i], &sc)
			}
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress.Write(line)
		}
	}
	for _, a := range r.aggs {
		a.run.merge(a.sec)
		a.sec.reset()
		a.sent += a.secSent
		a.ok += a.secOK
		a.failed += a.secFailed
		a.secSent, a.secOK, a.secFailed = 0, 0, 0
	}
}

// appendProgress appends the progress line of one target's second:
//
//	3s us-east→eu-west   127.0.2.1:8080  ops=200 ok=100.00% p50=1.2ms p99=3.1ms missed=0
func (r *runner) appendProgress(b []byte, t *target, s *Second) []byte {
	b = fmt.Appendf(b, "%4ds %-20s %-21s ops=%d ok=%.2f%% p50=%s p99=%s missed=%d\n",
		s.T, servedLabel(t.name, s.Region), s.Addr, s.Sent, 100*s.SuccessRate(),
		fmtDur(s.P50), fmtDur(s.P99), s.Missed)
	return b
}

// servedLabel is "client→region" when the region serving the target's
// clients is known and not its own name, else the target's name.
func servedLabel(name, region string) string {
	if region == "" || region == name {
		return name
	}
	return name + "→" + region
}

// report builds the final report from the aggregates.
func (r *runner) report(elapsed time.Duration) *Report {
	rep := &Report{
		Start:    r.start,
		Duration: elapsed,
		Targets:  make(map[string]*TargetReport, len(r.aggs)),
		Total:    Summary{ByStatus: map[int]int64{}},
	}
	total := newHistogram()
	for i, a := range r.aggs {
		s := Summary{Sent: a.sent, OK: a.ok, Failed: a.failed, Missed: r.missed[i].Load(), ByStatus: a.status}
		fillSummary(&s, a.run, elapsed)
		t := r.targets[i]
		tr := &TargetReport{Summary: s, Seconds: a.seconds}
		if ep := t.cur.Load(); ep != nil {
			tr.Addr, tr.Region = ep.addr, ep.region
		}
		if t.dns != nil {
			st := t.dns.stats()
			tr.DNS = &st
		}
		rep.Targets[t.name] = tr
		total.merge(a.run)
		rep.Total.Sent += s.Sent
		rep.Total.OK += s.OK
		rep.Total.Failed += s.Failed
		rep.Total.Missed += s.Missed
		for k, v := range s.ByStatus {
			rep.Total.ByStatus[k] += v
		}
	}
	fillSummary(&rep.Total, total, elapsed)
	return rep
}

func fillSummary(s *Summary, h *histogram, elapsed time.Duration) {
	if elapsed > 0 {
		s.Throughput = float64(s.Sent) / elapsed.Seconds()
	}
	s.P50 = time.Duration(h.quantile(0.50))
	s.P90 = time.Duration(h.quantile(0.90))
	s.P99 = time.Duration(h.quantile(0.99))
	s.P999 = time.Duration(h.quantile(0.999))
	s.Max = time.Duration(h.max)
}
