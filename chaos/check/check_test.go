package check

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"shortener/chaos"
	"shortener/chaos/load"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// op is a shorthand: an operation from start to end (seconds after t0).
func op(kind, target string, start, end float64, status int, code, url string) load.Op {
	ok := status/100 == 3 || status == 201 || (kind == load.OpAlias && status == 409)
	return load.Op{Op: kind, Target: target, Start: at(start), End: at(end), Intended: at(start), Status: status,
		OK: ok, Code: code, URL: url, Ack: status == 201, Region: target}
}

func hist(ops ...load.Op) *load.History {
	for i := range ops {
		ops[i].Seq = int64(i)
	}
	return &load.History{Ops: ops}
}

func final(regions []string, codes map[string]string) Final {
	f := Final{}
	for _, r := range regions {
		f[r] = map[string]string{}
		for c, u := range codes {
			f[r][c] = u
		}
	}
	return f
}

var both = []string{"eu-west", "us-east"}

func TestAcked(t *testing.T) {
	h := hist(
		op(load.OpCreate, "us-east", 0, 0.1, 201, "1abc", "https://e.com/1"),
		op(load.OpCreate, "us-east", 1, 1.1, 201, "1abd", "https://e.com/2"),
		op(load.OpCreate, "us-east", 2, 5, 0, "", "https://e.com/3"), // unknown: not required
	)
	if c := Acked(h, final(both, map[string]string{"1abc": "https://e.com/1", "1abd": "https://e.com/2"})); !c.OK {
		t.Fatalf("all present: %+v", c)
	}
	f := final(both, map[string]string{"1abc": "https://e.com/1", "1abd": "https://e.com/2"})
	f["eu-west"]["1abd"] = ""
	c := Acked(h, f)
	if c.OK || !strings.Contains(c.Measured, "1 of 2 lost") {
		t.Fatalf("one missing in eu-west: %+v", c)
	}
	f["eu-west"]["1abd"] = "https://e.com/other"
	if c := Acked(h, f); c.OK {
		t.Fatalf("one pointing elsewhere: %+v", c)
	}
	if c := Acked(hist(), f); c.OK {
		t.Fatalf("nothing acknowledged must not pass: %+v", c)
	}
}

func TestPhantoms(t *testing.T) {
	h := hist(
		op(load.OpCreate, "us-east", 0, 0.1, 201, "1abc", "https://e.com/1"),
		op(load.OpRedirect, "us-east", 1, 1.1, 302, "1abc", "https://e.com/1"),
		op(load.OpAlias, "eu-west", 1, 4, 503, "promo", "https://e.com/p"), // unknown outcome
		op(load.OpRedirect, "us-east", 5, 5.1, 302, "promo", "https://e.com/p"),
	)
	f := final(both, map[string]string{"1abc": "https://e.com/1", "promo": "https://e.com/p"})
	if c := Phantoms(h, f); !c.OK {
		t.Fatalf("clean history: %+v", c)
	}
	h.Ops[1].URL = "https://e.com/never"
	if c := Phantoms(h, f); c.OK || !strings.Contains(c.Measured, "1 of") {
		t.Fatalf("a redirect to a URL never written: %+v", c)
	}
	h.Ops[1].URL = "https://e.com/1"
	f["us-east"]["9zzz"] = "https://e.com/1"
	if c := Phantoms(h, f); c.OK {
		t.Fatalf("a code never written redirects at the end: %+v", c)
	}
	// A 409 writes nothing: its URL is not a valid target.
	h = hist(
		op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/a"),
		op(load.OpAlias, "eu-west", 0, 0.2, 409, "promo", "https://e.com/b"),
		op(load.OpRedirect, "eu-west", 1, 1.1, 302, "promo", "https://e.com/b"),
	)
	if c := Phantoms(h, Final{}); c.OK {
		t.Fatalf("redirect to the loser's URL: %+v", c)
	}
}

func TestAliases(t *testing.T) {
	cases := []struct {
		name  string
		ops   []load.Op
		owner string
		ok    bool
	}{
		{"one winner, then losers", []load.Op{
			op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/a"),
			op(load.OpAlias, "eu-west", 0.2, 0.3, 409, "promo", "https://e.com/b"),
		}, "https://e.com/a", true},
		{"concurrent: the loser answered first", []load.Op{
			op(load.OpAlias, "us-east", 0, 1, 201, "promo", "https://e.com/a"),
			op(load.OpAlias, "eu-west", 0.1, 0.2, 409, "promo", "https://e.com/b"),
		}, "https://e.com/a", true},
		{"two winners", []load.Op{
			op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/a"),
			op(load.OpAlias, "eu-west", 0.2, 0.3, 201, "promo", "https://e.com/b"),
		}, "https://e.com/b", false},
		{"lost to nobody", []load.Op{
			op(load.OpAlias, "eu-west", 0, 0.1, 409, "promo", "https://e.com/b"),
			op(load.OpAlias, "us-east", 0.2, 0.3, 201, "promo", "https://e.com/a"),
		}, "https://e.com/a", false},
		{"lost to a claim of unknown outcome, later given back", []load.Op{
			op(load.OpAlias, "ap-south", 0, 3, 503, "promo", "https://e.com/c"),
			op(load.OpAlias, "eu-west", 1, 1.1, 409, "promo", "https://e.com/b"),
			op(load.OpAlias, "us-east", 40, 40.1, 201, "promo", "https://e.com/a"),
		}, "https://e.com/a", true},
		{"the end disagrees with the winner", []load.Op{
			op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/a"),
		}, "https://e.com/b", false},
		{"won, and gone at the end", []load.Op{
			op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/a"),
		}, "", false},
		{"unknown outcome that took effect", []load.Op{
			op(load.OpAlias, "us-east", 0, 3, 0, "promo", "https://e.com/a"),
			op(load.OpAlias, "eu-west", 4, 4.1, 409, "promo", "https://e.com/b"),
		}, "https://e.com/a", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var vis bytes.Buffer
			c := Aliases(hist(tc.ops...), final(both, map[string]string{"promo": tc.owner}), &vis)
			if c.OK != tc.ok {
				t.Fatalf("OK = %v, want %v: %+v", c.OK, tc.ok, c)
			}
		})
	}
}

func TestAvailability(t *testing.T) {
	h := hist(
		op(load.OpRedirect, "us-east", 0, 0.1, 302, "1abc", "u"),
		op(load.OpRedirect, "us-east", 10, 10.1, 0, "1abc", ""), // inside the window
		op(load.OpRedirect, "eu-west", 10, 10.1, 302, "1abc", "u"),
		op(load.OpAlias, "eu-west", 11, 11.1, 503, "promo", "u"),
	)
	win := []chaos.Window{{Region: "us-east", From: at(9), To: at(12)}}
	if c := Availability(h, win, 0.9999); !c.OK {
		t.Fatalf("only a failure in an excluded window: %+v", c)
	}
	if c := Availability(h, nil, 0.9999); c.OK {
		t.Fatalf("the same failure without the window: %+v", c)
	}
	// A write cut off by the end of the run is no failure of the service,
	// but it is a write of unknown outcome: a redirect to its URL is no
	// phantom.
	cut := op(load.OpCreate, "eu-west", 13, 13.1, 0, "", "https://e.com/c")
	cut.Cut = true
	claim := op(load.OpAlias, "eu-west", 13, 13.1, 0, "late", "https://e.com/late")
	claim.Cut = true
	h = hist(op(load.OpRedirect, "eu-west", 0, 0.1, 302, "1abc", "u"), cut, claim,
		op(load.OpRedirect, "eu-west", 14, 14.1, 302, "late", "https://e.com/late"))
	h.Ops[0].URL = "u"
	if c := Availability(h, nil, 0.9999); !c.OK {
		t.Fatalf("only cut writes failed: %+v", c)
	}
	if c := Phantoms(h, Final{}); !strings.Contains(c.Measured, "1 of 2") {
		t.Fatalf("the cut claim's URL must be a known write (only 1abc's redirect is unexplained here): %+v", c)
	}
}

func TestConverged(t *testing.T) {
	if c := Converged(map[string]string{"a": "x", "b": "x", "c": "x"}); !c.OK {
		t.Fatal(c)
	}
	if c := Converged(map[string]string{"a": "x", "b": "y", "c": "x"}); c.OK {
		t.Fatal(c)
	}
}

// Every checker fails when it is fed nothing: a check that saw no sample
// has tested nothing and must not pass.
func TestNothingFails(t *testing.T) {
	empty := hist()
	// A history without the operations a checker judges (a failed
	// redirect only), and regions that answered nothing at the end.
	failedOnly := hist(op(load.OpRedirect, "us-east", 0, 0.1, 0, "1abc", ""))
	for _, tc := range []struct {
		name string
		c    chaos.Check
	}{
		{"acked: empty history", Acked(empty, Final{})},
		{"acked: no acknowledged write", Acked(failedOnly, final(both, nil))},
		{"phantoms: empty history", Phantoms(empty, Final{})},
		{"phantoms: no redirect answered", Phantoms(failedOnly, final(both, nil))},
		{"aliases: empty history", Aliases(empty, Final{}, nil)},
		{"aliases: no alias claim", Aliases(failedOnly, final(both, nil), nil)},
		{"availability: empty history", Availability(empty, nil, 0.9999)},
		{"availability: every operation in an excluded window", Availability(failedOnly,
			[]chaos.Window{{Region: "us-east", From: at(-1), To: at(1)}}, 0.9999)},
		{"availability: only cut-off operations", Availability(hist(func() load.Op {
			o := op(load.OpRedirect, "us-east", 0, 0.1, 0, "1abc", "")
			o.Cut = true
			return o
		}()), nil, 0.9999)},
		{"converged: no region", Converged(nil)},
		{"converged: one region", Converged(map[string]string{"a": "x"})},
		{"converged: no digest answered", Converged(map[string]string{"a": "", "b": ""})},
	} {
		if tc.c.OK {
			t.Errorf("%s: passed: %+v", tc.name, tc.c)
		}
	}
	if c := Availability(empty, nil, 0); c.OK || strings.HasPrefix(c.Measured, "100") {
		t.Errorf("availability of nothing must not read as 100%%, even with a target of 0: %+v", c)
	}
}
