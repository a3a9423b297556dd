package load

import (
	"math"
	"math/bits"
)

// The latency histogram is log-linear in the style of HdrHistogram: values
// (nanoseconds) below 2^subBits are counted exactly; above that, every power
// of two [2^k, 2^(k+1)) is split into 2^subBits equal-width buckets, so a
// bucket is at most 1/128 of its lower bound wide. A quantile reports the
// midpoint of its bucket, which is within 1/256 (< 0.4%) of every value in
// that bucket; the maximum is tracked exactly. Values at or above 2^maxBits ns
// (about 18 minutes) fall into the last bucket.
const (
	subBits    = 7
	subCount   = 1 << subBits
	maxBits    = 40
	numBuckets = (maxBits - subBits + 1) * subCount
)

// histogram is a fixed-size log-linear latency histogram. The zero value is
// not usable; use newHistogram.
type histogram struct {
	counts []uint64
	n      uint64
	max    int64
	lo, hi int // touched bucket range [lo, hi]; lo > hi when empty
}

func newHistogram() *histogram {
	return &histogram{counts: make([]uint64, numBuckets), lo: numBuckets, hi: -1}
}

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	idx := (e+1)*subCount + int(uint64(v)>>uint(e)) - subCount
	if idx >= numBuckets {
		return numBuckets - 1
	}
	return idx
}

// bucketValue returns the representative (midpoint) value of bucket idx.
func bucketValue(idx int) int64 {
	if idx < subCount {
		return int64(idx)
	}
	e := idx/subCount - 1
	sub := int64(idx%subCount + subCount)
	low := sub << uint(e)
	return low + (int64(1)<<uint(e))/2
}

func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	h.counts[i]++
	h.n++
	if v > h.max {
		h.max = v
	}
	if i < h.lo {
		h.lo = i
	}
	if i > h.hi {
		h.hi = i
	}
}

func (h *histogram) merge(o *histogram) {
	for i := o.lo; i <= o.hi; i++ {
		h.counts[i] += o.counts[i]
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
	if o.lo < h.lo {
		h.lo = o.lo
	}
	if o.hi > h.hi {
		h.hi = o.hi
	}
}

func (h *histogram) reset() {
	if h.lo <= h.hi {
		clear(h.counts[h.lo : h.hi+1])
	}
	h.n, h.max, h.lo, h.hi = 0, 0, numBuckets, -1
}

// quantile returns the value at quantile q in [0, 1] (0 when empty). It is
// never larger than the exact maximum.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return h.max
	}
	var cum uint64
	for i := h.lo; i <= h.hi; i++ {
		cum += h.counts[i]
		if cum >= rank {
			v := bucketValue(i)
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}
