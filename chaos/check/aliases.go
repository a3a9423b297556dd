package check

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/anishathalye/porcupine"

	"shortener/chaos"
	"shortener/chaos/load"
)

// The alias register as a porcupine model: one set-once register per
// alias. A claim answered 201 takes a free alias for good; a 409 needs it
// taken; a claim of unknown outcome (a timeout, a 503, a dropped
// connection) may or may not have taken it, at any time after it was sent,
// and a claim taken that way may also have been given back later (the
// claims reconciler releases a claim whose event was never written, and a
// claim that could not be recorded is released at once): its hold is
// tentative. The owner read at the end, once the regions converged, is
// the last operation on each alias.

type aliasInput struct {
	read bool   // the read at the end
	url  string // claim: the URL sent
}

type aliasOutput struct {
	outcome string // claim: "won", "lost" or "unknown"; read: ""
	url     string // read: the URL the alias redirects to ("" none)
}

// aliasState is the register of one alias.
type aliasState struct {
	url       string // "" free
	tentative bool   // held by a claim of unknown outcome: may be released
}

func aliasStep(s aliasState, in aliasInput, out aliasOutput) []aliasState {
	// A tentative hold may have been released at any moment before.
	starts := []aliasState{s}
	if s.tentative {
		starts = append(starts, aliasState{})
	}
	var next []aliasState
	for _, st := range starts {
		switch {
		case in.read:
			if st.url == out.url {
				next = append(next, st)
			}
		case out.outcome == "won":
			if st.url == "" {
				next = append(next, aliasState{url: in.url})
			}
		case out.outcome == "lost":
			if st.url != "" {
				next = append(next, st)
			}
		default: // unknown: no effect, or a tentative hold of a free alias
			next = append(next, st)
			if st.url == "" {
				next = append(next, aliasState{url: in.url, tentative: true})
			}
		}
	}
	return next
}

var aliasModel = porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var names []string
		for _, op := range h {
			name := op.Metadata.(string)
			if _, ok := by[name]; !ok {
				names = append(names, name)
			}
			by[name] = append(by[name], op)
		}
		out := make([][]porcupine.Operation, 0, len(names))
		for _, n := range names {
			out = append(out, by[n])
		}
		return out
	},
	Init: func() []any { return []any{aliasState{}} },
	Step: func(state, input, output any) []any {
		var out []any
		for _, s := range aliasStep(state.(aliasState), input.(aliasInput), output.(aliasOutput)) {
			out = append(out, s)
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(aliasState) == b.(aliasState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(aliasInput), output.(aliasOutput)
		if in.read {
			return fmt.Sprintf("read at the end → %q", out.url)
		}
		return fmt.Sprintf("claim %q → %s", in.url, out.outcome)
	},
	DescribeState: func(state any) string {
		s := state.(aliasState)
		switch {
		case s.url == "":
			return "free"
		case s.tentative:
			return "held (tentatively) by " + s.url
		}
		return "owned by " + s.url
	},
}

// Aliases checks the alias claims of h: no alias with two 201s, and every
// alias's claims, with its owner in final (read from any one region: the
// regions are checked equal elsewhere), linearizable against the register.
// When they are not, the porcupine visualization is written to vis (nil:
// not written). It fails with no claims in h or no region in final:
// nothing was tested.
func Aliases(h *load.History, final Final, vis io.Writer) chaos.Check {
	c := chaos.Check{Name: "aliases with more than one winner", Want: "0; claims linearizable"}
	won := map[string]int{}
	var ops []porcupine.Operation
	var end int64
	names := map[string]bool{}
	client := map[string]int{}
	var claims, unknown, nameless int
	for _, o := range h.Ops {
		if o.Op != load.OpAlias {
			continue
		}
		claims++
		if o.Code == "" {
			// The history lost which alias it claimed: nothing it did can
			// be explained, so nothing is judged as if it were complete.
			nameless++
			continue
		}
		names[o.Code] = true
		out := aliasOutput{outcome: "unknown"}
		ret := int64(math.MaxInt64) // an unknown outcome may take effect at any later time
		switch {
		case o.Status == 201:
			out.outcome = "won"
			won[o.Code]++
			ret = o.End.UnixNano()
		case o.Status == 409:
			out.outcome = "lost"
			ret = o.End.UnixNano()
		default:
			unknown++
		}
		if _, ok := client[o.Target]; !ok {
			client[o.Target] = len(client)
		}
		ops = append(ops, porcupine.Operation{ClientId: client[o.Target], Input: aliasInput{url: o.URL}, Output: out,
			Call: o.Start.UnixNano(), Return: ret, Metadata: o.Code})
		end = max(end, o.End.UnixNano())
	}
	var twice int
	for _, name := range sortedKeys(won) {
		if won[name] > 1 {
			twice++
			c.Details = appendDetail(c.Details, fmt.Sprintf("%s: %d claims answered 201", name, won[name]))
		}
	}
	// The read at the end, after every known outcome.
	var ref map[string]string
	for _, r := range sortedKeys(final) {
		ref = final[r]
		break
	}
	readClient := len(client)
	for _, name := range sortedKeys(names) {
		ops = append(ops, porcupine.Operation{ClientId: readClient, Input: aliasInput{read: true},
			Output: aliasOutput{url: ref[name]}, Call: end + 1, Return: end + 2, Metadata: name})
	}
	res, info := porcupine.CheckOperationsVerbose(aliasModel.ToModel(), ops, time.Minute)
	if nameless > 0 {
		c.Details = appendDetail(c.Details, fmt.Sprintf("%d claims without their alias in the history: the load client lost what they asked for", nameless))
	}
	c.OK = twice == 0 && res == porcupine.Ok && claims > 0 && nameless == 0 && len(final) > 0
	c.Measured = fmt.Sprintf("%d with two winners; %d claims of %d aliases (%d won, %d of unknown outcome): %s",
		twice, claims, len(names), len(won), unknown, linearizable(res))
	if res == porcupine.Illegal {
		c.Details = append(c.Details, "not linearizable against a set-once register (see aliases.html)")
		if vis != nil {
			_ = porcupine.Visualize(aliasModel.ToModel(), info, vis)
		}
	}
	if claims == 0 {
		c.Details = append(c.Details, "no alias claims in the history: nothing was tested")
	}
	if len(final) == 0 {
		c.Details = append(c.Details, "no region was read at the end: no owner to check")
	}
	return c
}

func linearizable(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "linearizable"
	case porcupine.Illegal:
		return "NOT linearizable"
	}
	return "linearizability undecided within 1 min"
}
