package load

import (
	"math/rand/v2"
	"strconv"
)

// opKind is the kind of an operation.
type opKind uint8

const (
	opRedirect opKind = iota
	opCreate
	opAlias
)

func (k opKind) String() string {
	switch k {
	case opCreate:
		return OpCreate
	case opAlias:
		return OpAlias
	}
	return OpRedirect
}

// op is one scheduled operation.
type op struct {
	seq      int64
	intended int64  // ns since start; unused in closed loop
	suffix   uint64 // create, alias: random URL suffix
	code     string // redirect: code to request; alias: the alias claimed
	target   int32
	kind     opKind
}

// createdCode carries a code created on a target back to the generator.
type createdCode struct {
	target int32
	code   string
}

// maxCreatedPool bounds how many created codes a target's pool keeps; past
// it, new codes overwrite old ones round-robin.
const maxCreatedPool = 1 << 20

// codePool is one target's redirect pool: the shared configured codes plus
// the codes created on that target.
type codePool struct {
	base    []string
	created []string
	next    int // overwrite position once created is full
}

func (p *codePool) size() int { return len(p.base) + len(p.created) }

func (p *codePool) get(i int) string {
	if i < len(p.base) {
		return p.base[i]
	}
	return p.created[i-len(p.base)]
}

func (p *codePool) add(code string) {
	if len(p.created) < maxCreatedPool {
		p.created = append(p.created, code)
		return
	}
	p.created[p.next] = code
	p.next = (p.next + 1) % maxCreatedPool
}

// generator produces the seeded operation sequence. Operation i goes to
// target i % len(targets); its kind is drawn from the seeded source (one
// draw: below the create ratio a create, below create + alias ratio an
// alias claim, else a redirect), then a redirect draws a code uniformly
// from the target's pool, and creates and claims a URL suffix; an alias
// claim's name follows from its index (withAliases). Without created codes joining
// the pools, the whole sequence is a function of the seed and the
// configuration (the alias names' prefix aside). It is owned by the
// scheduler goroutine.
type generator struct {
	rng     *rand.Rand
	ratio   float64 // creates
	aliasTo float64 // ratio + alias ratio
	// alias claims: operation i claims aliasPrefix + i/aliasSpan
	aliasPrefix string
	aliasSpan   int64
	pools       []codePool
	created     <-chan createdCode
	seq         int64
}

func newGenerator(seed int64, ratio float64, targets int, codes []string, created <-chan createdCode) *generator {
	g := &generator{
		rng:     rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		ratio:   ratio,
		aliasTo: ratio,
		pools:   make([]codePool, targets),
		created: created,
	}
	for i := range g.pools {
		g.pools[i].base = codes
	}
	return g
}

// withAliases makes a share ratio of the operations alias claims: operation
// i claims prefix + (i / span in base 36).
func (g *generator) withAliases(ratio float64, prefix string, span int64) *generator {
	if ratio > 0 {
		g.aliasTo = g.ratio + ratio
		g.aliasPrefix, g.aliasSpan = prefix, span
	}
	return g
}

// absorb moves codes reported by workers into the pools without blocking.
func (g *generator) absorb() {
	if g.created == nil {
		return
	}
	for {
		select {
		case c := <-g.created:
			g.pools[c.target].add(c.code)
		default:
			return
		}
	}
}

// next returns the next operation (intended time not set).
func (g *generator) next() op {
	g.absorb()
	o := op{seq: g.seq, target: int32(g.seq % int64(len(g.pools)))}
	g.seq++
	switch u := g.rng.Float64(); {
	case u < g.ratio:
		o.kind = opCreate
	case u < g.aliasTo:
		o.kind = opAlias
		o.code = g.aliasPrefix + strconv.FormatInt(o.seq/g.aliasSpan, 36)
	default:
		if p := &g.pools[o.target]; p.size() > 0 {
			o.code = p.get(g.rng.IntN(p.size()))
		} else {
			o.kind = opCreate // nothing to redirect to yet
		}
	}
	if o.kind != opRedirect {
		o.suffix = g.rng.Uint64()
	}
	return o
}
