package check

import (
	"strings"
	"testing"

	"shortener/chaos"
	"shortener/chaos/load"
)

// Every checker fails when it was given nothing to judge: no operations,
// no acknowledged create, no region read at the end.
func TestChecksFailOnNothing(t *testing.T) {
	created := hist(
		op(load.OpCreate, "us-east", 0, 0.1, 201, "1abc", "https://e.com/1"),
		op(load.OpRedirect, "us-east", 1, 1.1, 302, "1abc", "https://e.com/1"),
		op(load.OpAlias, "us-east", 2, 2.1, 201, "promo", "https://e.com/p"),
	)
	read := final(both, map[string]string{"1abc": "https://e.com/1", "promo": "https://e.com/p"})
	aliasOnly := hist(op(load.OpAlias, "us-east", 0, 0.1, 201, "promo", "https://e.com/p"))
	emptyReads := Final{"eu-west": {}, "us-east": {}}
	unknownClaim := hist(op(load.OpAlias, "us-east", 0, 3, 503, "promo", "https://e.com/p"))
	cases := []struct {
		name  string
		check chaos.Check
		ok    bool
	}{
		{"acked: a create acknowledged and read", Acked(created, read), true},
		{"acked: no operations", Acked(hist(), read), false},
		{"acked: only an alias acknowledged, no create", Acked(aliasOnly, read), false},
		{"acked: no region read", Acked(created, Final{}), false},
		{"phantoms: redirects and reads", Phantoms(created, read), true},
		{"phantoms: no operations, nothing read", Phantoms(hist(), Final{}), false},
		{"phantoms: redirects, no region read", Phantoms(created, Final{}), false},
		{"phantoms: regions read no code", Phantoms(created, emptyReads), false},
		{"aliases: a claim and its owner read", Aliases(created, read, nil), true},
		{"aliases: no claims", Aliases(hist(), read, nil), false},
		{"aliases: no region read", Aliases(unknownClaim, Final{}, nil), false},
		{"availability: no operations", Availability(hist(), nil, 0.9999), false},
		{"availability: every operation excluded", Availability(created, []chaos.Window{{Region: "us-east", From: at(-1), To: at(9)}}, 0.9999), false},
		{"converged: no region", Converged(nil), false},
		{"converged: one region", Converged(map[string]string{"us-east": "x"}), false},
		{"rpo: no region lost", RPO(nil), false},
	}
	for _, tc := range cases {
		if tc.check.OK != tc.ok {
			t.Errorf("%s: OK = %v, want %v (%s; %v)", tc.name, tc.check.OK, tc.ok, tc.check.Measured, tc.check.Details)
		}
	}
}

// The RPO check holds every survivor of a lost region to the bound it
// reported, and fails when there was no bound to hold it to or nothing was
// measured.
func TestRPO(t *testing.T) {
	known := func(region string, missing int, bound uint64) Survivor {
		return Survivor{Region: region, Checked: 40, Missing: missing, Known: true, Bound: bound, BoundSeconds: 0.4, ReportedAt: at(9)}
	}
	lost := func(acked int, s ...Survivor) Lost {
		return Lost{Step: 3, Region: "us-east", At: at(10), Acked: acked, Survivors: s}
	}
	cases := []struct {
		name string
		lost []Lost
		ok   bool
		says string
	}{
		{"within the bound", []Lost{lost(40, known("eu-west", 2, 5), known("ap-south", 0, 5))}, true, "2 survivor measurements against a known bound"},
		{"above the bound", []Lost{lost(40, known("eu-west", 6, 5), known("ap-south", 0, 5))}, false, "ABOVE"},
		{"no region lost", nil, false, "nothing was measured"},
		{"a survivor's bound unknown", []Lost{lost(40, known("eu-west", 0, 5), Survivor{Region: "ap-south", Checked: 40})}, false, "no known bound"},
		{"nothing acknowledged before the loss", []Lost{lost(0, known("eu-west", 0, 5))}, false, "nothing to measure"},
		{"no survivor measured", []Lost{lost(40)}, false, "no other region"},
		{"the history unreadable", []Lost{{Step: 3, Region: "us-east", Err: "history unreadable: EOF"}}, false, "unreadable"},
		{"probes unanswered", []Lost{lost(40, Survivor{Region: "eu-west", Checked: 40, Unanswered: 3, Known: true, Bound: 5})}, false, "3 of 40 probes unanswered"},
		{"probe failed", []Lost{lost(40, Survivor{Region: "eu-west", ProbeErr: "connection refused", Known: true, Bound: 5})}, false, "probe failed"},
	}
	for _, tc := range cases {
		c := RPO(tc.lost)
		text := c.Measured + " " + strings.Join(c.Details, " ")
		if c.OK != tc.ok || !strings.Contains(text, tc.says) {
			t.Errorf("%s: OK = %v, want %v; want %q in %q", tc.name, c.OK, tc.ok, tc.says, text)
		}
	}
}
