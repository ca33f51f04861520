package main

import (
	"math"
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is split into
// 2^histSubBits linear buckets, so a recorded value is reported within
// 1/128 (< 0.8%) of itself, like an HDR histogram with 2 significant digits.
const histSubBits = 7

const histSub = 1 << histSubBits

// hist is a log-linear latency histogram of durations in nanoseconds. Its
// zero value is ready to use; it is not safe for concurrent use (give each
// goroutine its own and merge them).
type hist struct {
	counts   []uint64
	n        uint64
	sum      float64
	min, max int64
}

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v int64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1)
	top := v >> shift // in [histSub, 2*histSub)
	return (shift+1)*histSub + int(top-histSub)
}

// bucketHigh is the highest value that falls into bucket i.
func bucketHigh(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	top := int64(i%histSub + histSub)
	return (top+1)<<shift - 1
}

// Record adds one duration (negative durations count as 0).
func (h *hist) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	i := bucketOf(v)
	if i >= len(h.counts) {
		grown := make([]uint64, i+1+histSub)
		copy(grown, h.counts)
		h.counts = grown
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds o's samples to h.
func (h *hist) Merge(o *hist) {
	if o == nil || o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		grown := make([]uint64, len(o.counts))
		copy(grown, h.counts)
		h.counts = grown
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded samples.
func (h *hist) Count() uint64 { return h.n }

// Max is the largest recorded value.
func (h *hist) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average of the recorded values.
func (h *hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value below or at which a fraction q (0..1) of the
// samples fall: the upper bound of the bucket holding the sample of rank
// ceil(q*n), clipped to the recorded min and max. It is 0 when empty.
func (h *hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			v = min(max(v, h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
