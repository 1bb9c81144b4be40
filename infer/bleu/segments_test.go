package bleu

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"mqa/infer/stats"
)

// testCorpus makes n reference sentences and a hypothesis for each that keeps every word
// with probability keep (the rest are replaced), from a fixed seed.
func testCorpus(n int, keep float64, seed uint64) (hyps, refs []string) {
	words := strings.Fields("the a cat dog sat on mat ran far home red blue big small house tree saw quickly")
	rng := rand.New(rand.NewPCG(seed, 1))
	for range n {
		var ref, hyp []string
		for range 6 + rng.IntN(10) {
			w := words[rng.IntN(len(words))]
			ref = append(ref, w)
			if rng.Float64() < keep {
				hyp = append(hyp, w)
			} else {
				hyp = append(hyp, "xx")
			}
		}
		refs, hyps = append(refs, strings.Join(ref, " ")+" ."), append(hyps, strings.Join(hyp, " ")+" .")
	}
	return hyps, refs
}

// TestSegmentsMatchCorpusScores: scoring a resample from the stored per-segment statistics
// gives what CorpusBLEU and CorpusChrF give on that resample's text, so the bootstrap
// intervals equal intervals computed the slow way, here.
func TestSegmentsMatchCorpusScores(t *testing.T) {
	hyps, refs := testCorpus(40, 0.7, 1)
	seg, err := NewSegments(hyps, refs)
	if err != nil {
		t.Fatal(err)
	}
	r := stats.Resampler{Units: seg.Len(), Resamples: 300, Seed: 3}
	var bleus, chrfs []float64
	r.Each(func(idx []int) {
		h, rf := make([]string, len(idx)), make([]string, len(idx))
		for k, i := range idx {
			h[k], rf[k] = hyps[i], refs[i]
		}
		b, _ := CorpusBLEU(h, rf)
		c, _ := CorpusChrF(h, rf)
		bleus, chrfs = append(bleus, b.Score), append(chrfs, c.Score)
	})
	slices.Sort(bleus)
	slices.Sort(chrfs)
	lo, hi := 300/40, 300-1-300/40
	if got := r.CI(seg.BLEU); got != (stats.Interval{bleus[lo], bleus[hi]}) {
		t.Errorf("BLEU CI %v, want [%v %v]", got, bleus[lo], bleus[hi])
	}
	if got := r.CI(seg.ChrF); got != (stats.Interval{chrfs[lo], chrfs[hi]}) {
		t.Errorf("chrF CI %v, want [%v %v]", got, chrfs[lo], chrfs[hi])
	}
	b, _ := CorpusBLEU(hyps, refs)
	c, _ := CorpusChrF(hyps, refs)
	if seg.BLEU(nil) != b.Score || seg.ChrF(nil) != c.Score {
		t.Errorf("whole set: BLEU %v / chrF %v, want %v / %v", seg.BLEU(nil), seg.ChrF(nil), b.Score, c.Score)
	}
	if _, err := NewSegments(hyps, refs[1:]); err == nil {
		t.Error("no error for 40 hypotheses and 39 references")
	}
}

// TestPairedBootstrapBLEU: identical systems give p = 1 and a difference interval holding
// 0; a system with far fewer errors gives p < 0.05; a fixed seed gives a fixed outcome.
func TestPairedBootstrapBLEU(t *testing.T) {
	worse, refs := testCorpus(60, 0.5, 2)
	better, _ := testCorpus(60, 0.9, 2) // same references (same seed), fewer replaced words
	a, _ := NewSegments(worse, refs)
	a2, _ := NewSegments(slices.Clone(worse), refs)
	b, _ := NewSegments(better, refs)
	r := stats.Resampler{Units: len(refs), Resamples: stats.DefaultResamples, Seed: 12345}
	same := r.PairedTest(a.BLEU, a2.BLEU)
	if same.P != 1 || !same.Diff.Contains(0) {
		t.Errorf("identical systems: %+v", same)
	}
	p := r.PairedTest(a.BLEU, b.BLEU)
	if !(p.P < 0.05) || !(p.Diff[0] > 0) {
		t.Errorf("BLEU %.2f vs %.2f: %+v, want p < 0.05 and an interval above 0", a.BLEU(nil), b.BLEU(nil), p)
	}
	if again := r.PairedTest(a.BLEU, b.BLEU); again != p {
		t.Errorf("same seed, another outcome: %+v vs %+v", again, p)
	}
}
