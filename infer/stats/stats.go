// Package stats holds the statistics that say whether a measured difference is more than
// noise: bootstrap confidence intervals over test sentences or documents, the paired
// bootstrap test that sacreBLEU runs with --paired-bs, mean and standard deviation over
// seeds, and median with range over repeated timings.
package stats

import (
	"math"
	"math/rand/v2"
	"slices"
)

// DefaultResamples is the number of bootstrap resamples, as in sacreBLEU's --paired-bs.
const DefaultResamples = 1000

// Interval is a two-sided 95 % interval [low, high]; in JSON an array of two numbers.
type Interval [2]float64

// Contains reports whether x lies in the interval.
func (iv Interval) Contains(x float64) bool { return iv[0] <= x && x <= iv[1] }

// Score scores a resample of a test set: idx holds the indices of the units (sentences,
// documents) drawn, with repetitions.
type Score func(idx []int) float64

// Resampler draws the same bootstrap resamples of Units units every time it is run, from
// Seed: two systems scored with one Resampler are scored on the same resamples (a paired
// test), and the same seed gives the same intervals.
type Resampler struct {
	Units, Resamples int
	Seed             uint64
}

// Each calls f with every resample in turn (idx is reused between calls).
func (r Resampler) Each(f func(idx []int)) {
	rng := rand.New(rand.NewPCG(r.Seed, 0x9e3779b97f4a7c15))
	idx := make([]int, r.Units)
	for range r.Resamples {
		for i := range idx {
			idx[i] = rng.IntN(r.Units)
		}
		f(idx)
	}
}

// Scores scores every resample with score.
func (r Resampler) Scores(score Score) []float64 {
	out := make([]float64, 0, r.Resamples)
	r.Each(func(idx []int) { out = append(out, score(idx)) })
	return out
}

// CI is the 95 % percentile interval of score over the resamples.
func (r Resampler) CI(score Score) Interval { return Percentile95(r.Scores(score)) }

// Percentile95 is the interval from the 2.5th to the 97.5th percentile of xs, picked as
// sacreBLEU does: after sorting, the element n/40 from either end. Empty xs gives NaNs.
func Percentile95(xs []float64) Interval {
	if len(xs) == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	lo := len(s) / 40
	return Interval{s[lo], s[len(s)-1-lo]}
}

// Paired is the outcome of a paired bootstrap test of a system against a baseline.
type Paired struct {
	// Diff is the 95 % interval of the system's score minus the baseline's over the resamples.
	Diff Interval `json:"diff_ci95"`
	// P is the p-value of the null hypothesis that the systems score the same.
	P float64 `json:"p"`
}

// PairedTest is the paired bootstrap resampling test of sacreBLEU's --paired-bs (after
// Koehn 2004 and Moses' bootstrap-hypothesis-difference-significance.pl): both systems are
// scored on the same resamples; the absolute differences, centred on their mean, estimate
// how far the difference strays by chance, and p is the share of them, plus one, at least as
// large as the observed difference |sys − base| on the whole test set, over resamples plus
// one. One departure: sacreBLEU counts the centred differences strictly larger, which gives
// p = 1/(n+1) for two identical systems; counting those at least as large gives them p = 1,
// and only differs from sacreBLEU where a centred difference equals the observed one exactly.
func (r Resampler) PairedTest(base, sys Score) Paired {
	b, s := r.Scores(base), r.Scores(sys)
	diffs, abs := make([]float64, len(b)), make([]float64, len(b))
	mean := 0.0
	for i := range b {
		diffs[i] = s[i] - b[i]
		abs[i] = math.Abs(diffs[i])
		mean += abs[i]
	}
	mean /= float64(len(abs))
	observed := math.Abs(sys(nil) - base(nil))
	c := 0
	for _, a := range abs {
		if a-mean >= observed {
			c++
		}
	}
	return Paired{Diff: Percentile95(diffs), P: float64(c+1) / float64(len(abs)+1)}
}

// RatioScore scores a resample by the sum of num over the units drawn divided by the sum of
// den (for example nats over tokens per sentence: the ln-perplexity); idx nil means every unit.
func RatioScore(num, den []float64) Score {
	return func(idx []int) float64 {
		var n, d float64
		if idx == nil {
			for i := range num {
				n, d = n+num[i], d+den[i]
			}
		} else {
			for _, i := range idx {
				n, d = n+num[i], d+den[i]
			}
		}
		return n / d
	}
}

// MeanStd is the mean and the sample standard deviation (n − 1 in the denominator; 0 for a
// single value) of xs.
func MeanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) == 1 {
		return mean, 0
	}
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs)-1))
}

// MedianRange is the median (the mean of the middle two for an even count), the minimum and
// the maximum of xs.
func MedianRange(xs []float64) (median, lo, hi float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}
