package stats

import (
	"math"
	"slices"
	"testing"
)

func TestPercentile95(t *testing.T) {
	xs := make([]float64, 1000)
	for i := range xs {
		xs[i] = float64(1000 - i) // 1000 … 1, unsorted on purpose
	}
	// Sorted 1 … 1000: sacreBLEU's bounds are the elements 1000/40 = 25 from either end.
	if got := Percentile95(xs); got != (Interval{26, 975}) {
		t.Errorf("Percentile95 = %v, want [26 975]", got)
	}
	if xs[0] != 1000 {
		t.Error("Percentile95 sorted its argument")
	}
}

func TestMeanStdAndMedianRange(t *testing.T) {
	mean, std := MeanStd([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if mean != 5 || math.Abs(std-math.Sqrt(32.0/7)) > 1e-12 {
		t.Errorf("MeanStd = %v ± %v, want 5 ± %v", mean, std, math.Sqrt(32.0/7))
	}
	if m, s := MeanStd([]float64{3}); m != 3 || s != 0 {
		t.Errorf("MeanStd of one value = %v ± %v", m, s)
	}
	for _, tc := range []struct {
		xs            []float64
		med, min, max float64
	}{{[]float64{5, 1, 9, 3, 7}, 5, 1, 9}, {[]float64{4, 1, 3, 2}, 2.5, 1, 4}} {
		if med, lo, hi := MedianRange(tc.xs); med != tc.med || lo != tc.min || hi != tc.max {
			t.Errorf("MedianRange(%v) = %v %v %v", tc.xs, med, lo, hi)
		}
	}
}

// TestRatioCI checks the interval of a ratio (nats over tokens) against one computed here
// from the same resamples with plain loops.
func TestRatioCI(t *testing.T) {
	nll := []float64{10, 3, 7, 22, 5, 9, 14, 1}
	tokens := []float64{4, 2, 3, 8, 2, 5, 6, 1}
	r := Resampler{Units: len(nll), Resamples: 400, Seed: 7}
	var want []float64
	r.Each(func(idx []int) {
		var n, d float64
		for _, i := range idx {
			n += nll[i]
			d += tokens[i]
		}
		want = append(want, n/d)
	})
	slices.Sort(want)
	got := r.CI(RatioScore(nll, tokens))
	if got != (Interval{want[10], want[389]}) {
		t.Errorf("CI = %v, want [%v %v]", got, want[10], want[389])
	}
	if all := RatioScore(nll, tokens)(nil); all != 71.0/31 || !got.Contains(all) {
		t.Errorf("whole-set ratio %v (want 71/31) outside %v", all, got)
	}
}

func TestResamplerSeed(t *testing.T) {
	score := func(idx []int) float64 { return float64(idx[0]*100 + idx[1]) }
	a := Resampler{Units: 50, Resamples: 20, Seed: 1}.Scores(score)
	b := Resampler{Units: 50, Resamples: 20, Seed: 1}.Scores(score)
	c := Resampler{Units: 50, Resamples: 20, Seed: 2}.Scores(score)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Errorf("seed 1 twice: %v, %v; seed 2: %v", a[:3], b[:3], c[:3])
	}
}

func TestPairedTest(t *testing.T) {
	per := []float64{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4}
	mean := func(xs []float64) Score {
		return func(idx []int) float64 {
			if idx == nil {
				m, _ := MeanStd(xs)
				return m
			}
			s := 0.0
			for _, i := range idx {
				s += xs[i]
			}
			return s / float64(len(idx))
		}
	}
	r := Resampler{Units: len(per), Resamples: DefaultResamples, Seed: 12345}
	same := r.PairedTest(mean(per), mean(slices.Clone(per)))
	if same.P != 1 || same.Diff != (Interval{0, 0}) || !same.Diff.Contains(0) {
		t.Errorf("identical systems: %+v, want p = 1 and the interval [0 0]", same)
	}
	better := make([]float64, len(per))
	for i, x := range per {
		better[i] = x + 2 + 0.1*float64(i%3) // better on every unit
	}
	p := r.PairedTest(mean(per), mean(better))
	if !(p.P < 0.05) || p.Diff.Contains(0) || !(p.Diff[0] > 1.9) || !(p.Diff[1] < 2.3) {
		t.Errorf("a system better on every unit: %+v, want p < 0.05 and a difference near +2.1", p)
	}
	// Noise: a system that is better on some units and worse on others by the same amounts.
	noisy := make([]float64, len(per))
	for i, x := range per {
		noisy[i] = x + float64(1-2*(i%2))
	}
	if n := r.PairedTest(mean(per), mean(noisy)); n.P < 0.2 || !n.Diff.Contains(0) {
		t.Errorf("a system differing only by ±1 noise: %+v, want a large p and an interval containing 0", n)
	}
}
