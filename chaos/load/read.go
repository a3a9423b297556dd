package load

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The history (Config.History) is JSON lines, one record per line, in no
// particular order (workers hand their records over in batches; sort by
// time). Every time is absolute, RFC 3339 with nanoseconds, UTC. A record's
// "kind" says what it is; a line without "kind" is an "op" (histories
// written before kinds existed).
//
// kind "op": one operation that was sent (missed operations, never sent,
// are only counted in the Report):
//
//	seq       int     the operation's index in the run's schedule (0-based)
//	op        string  "redirect" (GET /{code}, never followed), "create"
//	                  (POST /api/v1/links) or "alias" (a create with a
//	                  custom alias from Config.Aliases)
//	target    string  the Target's name: for DNS targets, the home region of
//	                  the clients it plays
//	intended  time    when the operation was due (open loop; in closed loop
//	                  the send time); latency runs from here to end
//	start     time    when it was sent
//	end       time    when it completed or failed
//	status    int     the HTTP status; 0 for a transport error or timeout
//	ok        bool    a redirect answered 301/302/307/308, a create 201
//	                  with a code, an alias 201 with a code or 409 (taken)
//	code      string  redirect: the code requested; create: the code the
//	                  201 returned ("" otherwise); alias: the alias
//	url       string  redirect: the Location read; create, alias: the long
//	                  URL sent (also when it failed)
//	err       string  why it failed: a short transport error ("timeout",
//	                  "connection refused", ...) or the problem+json title
//	                  and detail; "" when ok (409: "Already taken: ...")
//	ack       bool    the service acknowledged a write: a create or an
//	                  alias answered 201 (always false for redirects)
//	addr      string  the address (host:port) the request was sent to: the
//	                  DNS answer in use when it was sent
//	region    string  the Config.Regions name of addr ("" unknown): which
//	                  region served it
//	cut       bool    (only when true) a write the caller's cancellation
//	                  cut off after it was sent: its outcome is unknown (it
//	                  may have taken effect), and it is no failure of the
//	                  service
//
// kind "dns": one resolve of a DNS target's host:
//
//	target    string  the Target's name
//	time      time    when the answer (or the failure) arrived
//	addr      string  the address in use after it (on a failure, the last
//	                  answer, still in use)
//	region    string  the Config.Regions name of addr
//	ttl       int     the answer's TTL in seconds (0 on failure)
//	changed   bool    the address differs from the one used before (true for
//	                  the first answer)
//	err       string  why the resolve failed; "" when it did not
//
// kind "regions": one poll of a region's GET /api/v1/regions (every
// Config.RegionsInterval per Config.Regions entry):
//
//	region    string  the polled region (Config.Regions name)
//	url       string  the URL polled
//	start     time    when the poll was sent
//	end       time    when its answer (or failure) arrived
//	status    int     the HTTP status, 0 on a transport error
//	ok        bool    200 with a readable body
//	err       string  why not ok
//	time      time    the region's own clock in its answer (absent when
//	                  not ok)
//	origins   array   per origin region, as the polled region sees it
//	                  (absent when not ok):
//	  origin           string  the origin region
//	  local            bool    the origin is the polled region itself
//	  rpo_events       int     events of the origin the region may lack if
//	                           the origin died now (the RPO bound)
//	  rpo_seconds      float   the same bound in seconds of the origin's writes
//	  rpo_known        bool    the bound is meaningful (origin observed and
//	                           mirror seen live)
//	  lag_events       int     origin last sequence - mirror last sequence
//	  lag_seconds      float   age of the newest origin event held here
//	  mirror_active    bool    the mirror is live
//	  origin_reachable bool    the origin answered the last look

// Operation kinds of "op" records.
const (
	OpRedirect = "redirect"
	OpCreate   = "create"
	// OpAlias is a create with a custom alias: status 201 (won), 409 (the
	// alias was taken) or anything else (unknown: it may or may not have
	// taken effect).
	OpAlias = "alias"
)

// Record kinds of the history.
const (
	KindOp      = "op"
	KindDNS     = "dns"
	KindRegions = "regions"
)

// maxHistoryLine bounds one history line for ReadHistory.
const maxHistoryLine = 4 << 20

// Op is one operation of the history ("op" records).
type Op struct {
	Seq      int64     `json:"seq"`
	Op       string    `json:"op"` // OpRedirect, OpCreate or OpAlias
	Target   string    `json:"target"`
	Intended time.Time `json:"intended"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Status   int       `json:"status"`
	OK       bool      `json:"ok"`
	Code     string    `json:"code"`
	URL      string    `json:"url"`
	Err      string    `json:"err"`
	Ack      bool      `json:"ack"`
	Cut      bool      `json:"cut"` // cut off by the caller's cancellation: unknown outcome, not a failure
	Addr     string    `json:"addr"`
	Region   string    `json:"region"`
}

// DNSRecord is one resolve of a DNS target ("dns" records).
type DNSRecord struct {
	Target  string    `json:"target"`
	Time    time.Time `json:"time"`
	Addr    string    `json:"addr"`
	Region  string    `json:"region"`
	TTL     int64     `json:"ttl"` // seconds
	Changed bool      `json:"changed"`
	Err     string    `json:"err"`
}

// RegionsRecord is one poll of a region's GET /api/v1/regions ("regions"
// records).
type RegionsRecord struct {
	Region  string      `json:"region"`
	URL     string      `json:"url"`
	Start   time.Time   `json:"start"`
	End     time.Time   `json:"end"`
	Status  int         `json:"status"`
	OK      bool        `json:"ok"`
	Err     string      `json:"err"`
	Time    time.Time   `json:"time,omitzero"`
	Origins []OriginRPO `json:"origins,omitempty"`
}

// Origin returns what the record says of origin, and whether it says
// anything.
func (r *RegionsRecord) Origin(origin string) (OriginRPO, bool) {
	for _, o := range r.Origins {
		if o.Origin == origin {
			return o, true
		}
	}
	return OriginRPO{}, false
}

// OriginRPO is the lag and the RPO bound of one origin as a region reports
// them (a subset of replicator.OriginLag).
type OriginRPO struct {
	Origin          string  `json:"origin"`
	Local           bool    `json:"local"`
	RPOEvents       uint64  `json:"rpo_events"`
	RPOSeconds      float64 `json:"rpo_seconds"`
	RPOKnown        bool    `json:"rpo_known"`
	LagEvents       uint64  `json:"lag_events"`
	LagSeconds      float64 `json:"lag_seconds"`
	MirrorActive    bool    `json:"mirror_active"`
	OriginReachable bool    `json:"origin_reachable"`
}

// regionsLine and dnsLine are the wire forms of the non-op records.
type regionsLine struct {
	Kind string `json:"kind"`
	RegionsRecord
}

type dnsLine struct {
	Kind string `json:"kind"`
	DNSRecord
}

// History is a history file read back: each kind of record sorted by time.
type History struct {
	// Ops by intended time, then seq.
	Ops []Op
	// DNS by time.
	DNS []DNSRecord
	// Regions by end time.
	Regions []RegionsRecord
}

// anyLine holds the fields of every kind of record.
type anyLine struct {
	Kind     string      `json:"kind"`
	Seq      int64       `json:"seq"`
	Op       string      `json:"op"`
	Target   string      `json:"target"`
	Intended time.Time   `json:"intended"`
	Start    time.Time   `json:"start"`
	End      time.Time   `json:"end"`
	Time     time.Time   `json:"time"`
	Status   int         `json:"status"`
	OK       bool        `json:"ok"`
	Code     string      `json:"code"`
	URL      string      `json:"url"`
	Err      string      `json:"err"`
	Ack      bool        `json:"ack"`
	Cut      bool        `json:"cut"`
	Addr     string      `json:"addr"`
	Region   string      `json:"region"`
	TTL      int64       `json:"ttl"`
	Changed  bool        `json:"changed"`
	Origins  []OriginRPO `json:"origins"`
}

// ReadHistory reads a history written by Run. Blank lines and records of
// unknown kinds are skipped; a line that is not a JSON object of the known
// fields, an op record without target or with an op other than "redirect",
// "create" or "alias", a regions record without region, or a line longer than
// 4 MiB is an error naming the line.
func ReadHistory(r io.Reader) (*History, error) {
	h := &History{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxHistoryLine)
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var l anyLine
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("history line %d: %w", n, err)
		}
		switch l.Kind {
		case "", KindOp:
			if l.Op != OpRedirect && l.Op != OpCreate && l.Op != OpAlias {
				return nil, fmt.Errorf("history line %d: op %q: want redirect, create or alias", n, l.Op)
			}
			if l.Target == "" {
				return nil, fmt.Errorf("history line %d: op without target", n)
			}
			h.Ops = append(h.Ops, Op{Seq: l.Seq, Op: l.Op, Target: l.Target, Intended: l.Intended, Start: l.Start,
				End: l.End, Status: l.Status, OK: l.OK, Code: l.Code, URL: l.URL, Err: l.Err, Ack: l.Ack,
				Cut: l.Cut, Addr: l.Addr, Region: l.Region})
		case KindDNS:
			if l.Target == "" {
				return nil, fmt.Errorf("history line %d: dns record without target", n)
			}
			h.DNS = append(h.DNS, DNSRecord{Target: l.Target, Time: l.Time, Addr: l.Addr, Region: l.Region,
				TTL: l.TTL, Changed: l.Changed, Err: l.Err})
		case KindRegions:
			if l.Region == "" {
				return nil, fmt.Errorf("history line %d: regions record without region", n)
			}
			h.Regions = append(h.Regions, RegionsRecord{Region: l.Region, URL: l.URL, Start: l.Start, End: l.End,
				Status: l.Status, OK: l.OK, Err: l.Err, Time: l.Time, Origins: l.Origins})
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("history: a line longer than %d bytes", maxHistoryLine)
		}
		return nil, fmt.Errorf("history: %w", err)
	}
	slices.SortStableFunc(h.Ops, func(a, b Op) int {
		return cmp.Or(a.Intended.Compare(b.Intended), cmp.Compare(a.Seq, b.Seq))
	})
	slices.SortStableFunc(h.DNS, func(a, b DNSRecord) int { return a.Time.Compare(b.Time) })
	slices.SortStableFunc(h.Regions, func(a, b RegionsRecord) int { return a.End.Compare(b.End) })
	return h, nil
}
