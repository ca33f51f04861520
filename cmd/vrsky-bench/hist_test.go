package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 60e9} {
		i := bucketOf(v)
		hi := bucketHigh(i)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("value %d also fits the previous bucket (high %d)", v, bucketHigh(i-1))
		}
		if err := float64(hi-v) / float64(max(v, 1)); err > 1.0/histSub {
			t.Errorf("value %d reported as %d: error %.4f over 1/%d", v, hi, err, histSub)
		}
	}
}

func TestQuantile(t *testing.T) {
	uniform := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Microsecond
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{3 * time.Millisecond}, 0.99, 3 * time.Millisecond},
		{"p50 of 1..1000µs", uniform(1000), 0.50, 500 * time.Microsecond},
		{"p90 of 1..1000µs", uniform(1000), 0.90, 900 * time.Microsecond},
		{"p99 of 1..1000µs", uniform(1000), 0.99, 990 * time.Microsecond},
		{"p100 is the max", uniform(1000), 1, 1000 * time.Microsecond},
		{"p0 is the min", uniform(1000), 0, 1 * time.Microsecond},
		{"outlier tail", append(uniform(99), 5*time.Second), 0.99, 99 * time.Microsecond},
		{"outlier max", append(uniform(99), 5*time.Second), 1, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Split the samples over two histograms to exercise Merge.
			var a, b hist
			for i, s := range tc.samples {
				if i%2 == 0 {
					a.Record(s)
				} else {
					b.Record(s)
				}
			}
			a.Merge(&b)
			if a.Count() != uint64(len(tc.samples)) {
				t.Fatalf("count %d, want %d", a.Count(), len(tc.samples))
			}
			got := a.Quantile(tc.q)
			diff := float64(got-tc.want) / float64(max(tc.want, 1))
			if diff < 0 || diff > 1.0/histSub {
				t.Errorf("Quantile(%v) = %v, want %v (within +1/%d)", tc.q, got, tc.want, histSub)
			}
		})
	}
}

func TestQuantileMatchesSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hist
	var max time.Duration
	for range 100000 {
		d := time.Duration(r.ExpFloat64() * float64(2*time.Millisecond))
		h.Record(d)
		if d > max {
			max = d
		}
	}
	if h.Max() != max {
		t.Errorf("Max %v, want %v", h.Max(), max)
	}
	// Exponential with mean 2ms: p50 = 2ms·ln2, p99 = 2ms·ln100.
	for q, want := range map[float64]time.Duration{0.5: 1386 * time.Microsecond, 0.99: 9210 * time.Microsecond} {
		got := h.Quantile(q)
		if d := float64(got-want) / float64(want); d < -0.03 || d > 0.03 {
			t.Errorf("Quantile(%v) = %v, want about %v", q, got, want)
		}
	}
}

func TestMedianOf(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := slices.Clone(tc.in)
		if got := medianOf(in); got != tc.want {
			t.Errorf("medianOf(%v) = %v, want %v", tc.in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("medianOf reordered its input: %v", in)
		}
	}
}
