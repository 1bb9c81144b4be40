package bleu

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// SacreBLEUVersion is the sacreBLEU release whose behaviour this package
// reproduces; the parity tests' expected values came from it. It appears at
// the end of the signatures.
const SacreBLEUVersion = "2.6.0"

// MaxOrder is the largest word n-gram order counted by BLEU.
const MaxOrder = 4

// BLEUSignature is the sacreBLEU signature of the BLEU configuration that
// [CorpusBLEU] implements.
const BLEUSignature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" + SacreBLEUVersion

// ErrLengthMismatch is returned (wrapped) when the hypothesis and reference
// lists differ in length.
var ErrLengthMismatch = errors.New("bleu: number of hypotheses and references differ")

// Score is a corpus BLEU score together with its sufficient statistics, in
// the shape of sacreBLEU's BLEUScore.
type Score struct {
	// Score is the BLEU score on a 0-100 scale.
	Score float64
	// Counts[n-1] is the number of clipped matching n-grams.
	Counts [MaxOrder]int
	// Totals[n-1] is the number of n-grams in the hypotheses.
	Totals [MaxOrder]int
	// Precisions[n-1] is the (smoothed) n-gram precision, 0-100.
	Precisions [MaxOrder]float64
	// BP is the brevity penalty.
	BP float64
	// SysLen is the total number of hypothesis tokens.
	SysLen int
	// RefLen is the total number of reference tokens.
	RefLen int
	// Signature is sacreBLEU's reproducibility signature.
	Signature string
}

// Ratio is the hypothesis-to-reference length ratio (0 when RefLen is 0).
func (s Score) Ratio() float64 {
	if s.RefLen == 0 {
		return 0
	}
	return float64(s.SysLen) / float64(s.RefLen)
}

// String formats s as sacreBLEU prints a BLEU score, for example
// "BLEU = 26.70 60.1/33.0/20.3/12.6 (BP = 1.000 ratio = 1.010 hyp_len = 101 ref_len = 100)".
func (s Score) String() string {
	var b strings.Builder
	b.WriteString("BLEU = ")
	b.WriteString(strconv.FormatFloat(s.Score, 'f', 2, 64))
	b.WriteByte(' ')
	for i, p := range s.Precisions {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(strconv.FormatFloat(p, 'f', 1, 64))
	}
	fmt.Fprintf(&b, " (BP = %s ratio = %s hyp_len = %d ref_len = %d)",
		strconv.FormatFloat(s.BP, 'f', 3, 64),
		strconv.FormatFloat(s.Ratio(), 'f', 3, 64),
		s.SysLen, s.RefLen)
	return b.String()
}

// bleuStats are the sufficient statistics of BLEU for one segment or a
// whole corpus.
type bleuStats struct {
	sysLen, refLen int
	correct, total [MaxOrder]int
}

func (a *bleuStats) add(b bleuStats) {
	a.sysLen += b.sysLen
	a.refLen += b.refLen
	for i := range a.correct {
		a.correct[i] += b.correct[i]
		a.total[i] += b.total[i]
	}
}

// ngramCounts counts the n-grams of orders 1..MaxOrder of a tokenised
// segment; counts[n-1] maps an n-gram (its tokens joined by single spaces)
// to its count. It also returns the number of tokens.
func ngramCounts(tokenized string) (counts [MaxOrder]map[string]int, n int) {
	toks := pyFields(tokenized)
	// Byte offsets of each token inside the joined string, so that an
	// n-gram key is a substring instead of a fresh allocation.
	joined := strings.Join(toks, " ")
	starts := make([]int, len(toks)+1)
	off := 0
	for i, t := range toks {
		starts[i] = off
		off += len(t) + 1
	}
	starts[len(toks)] = off
	countSpans(counts[:], joined, starts, 1)
	return counts, len(toks)
}

// countSpans fills counts[n-1], for n = 1..len(counts), with the number of
// times each run of n consecutive units of s occurs. Unit i starts at byte
// starts[i] and is followed by sep separator bytes before unit i+1 starts
// at starts[i+1]; a run's key keeps the separators inside it, not the one
// after it. len(starts) is the number of units plus one.
func countSpans(counts []map[string]int, s string, starts []int, sep int) {
	units := len(starts) - 1
	for n := 1; n <= len(counts); n++ {
		m := make(map[string]int, max(units-n+1, 0))
		for i := 0; i+n <= units; i++ {
			m[s[starts[i]:starts[i+n]-sep]]++
		}
		counts[n-1] = m
	}
}

// clippedMatches returns the number of n-grams in hyp and how many of them
// are in ref, each n-gram counted at most as often as ref has it.
func clippedMatches(hyp, ref map[string]int) (total, match int) {
	for g, c := range hyp {
		total += c
		match += min(c, ref[g])
	}
	return total, match
}

// checkLengths reports hypothesis and reference lists of different
// lengths, wrapping [ErrLengthMismatch].
func checkLengths(hyps, refs []string) error {
	if len(hyps) != len(refs) {
		return fmt.Errorf("%w: %d hypotheses, %d references", ErrLengthMismatch, len(hyps), len(refs))
	}
	return nil
}

// segmentBLEUStats computes the statistics of one hypothesis against one
// reference, both raw (untokenised).
func segmentBLEUStats(hyp, ref string) bleuStats {
	refNG, refLen := ngramCounts(Tokenize13a(pyRStrip(ref)))
	hypNG, hypLen := ngramCounts(Tokenize13a(pyRStrip(hyp)))
	st := bleuStats{sysLen: hypLen, refLen: refLen}
	for o := range MaxOrder {
		st.total[o], st.correct[o] = clippedMatches(hypNG[o], refNG[o])
	}
	return st
}

// myLog is sacreBLEU's floored logarithm: log(0) is -9999999999.
func myLog(x float64) float64 {
	if x == 0 {
		return -9999999999
	}
	return math.Log(x)
}

// pySum adds xs the way Python 3.12+'s built-in sum() adds floats
// (Neumaier compensated summation, starting from the integer 0).
func pySum(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	f, c := xs[0], 0.0
	for _, x := range xs[1:] {
		t := f + x
		if math.Abs(f) >= math.Abs(x) {
			c += float64(f-t) + x
		} else {
			c += float64(x-t) + f
		}
		f = t
	}
	if c != 0 && !math.IsInf(c, 0) && !math.IsNaN(c) {
		f += c
	}
	return f
}

// computeBLEU turns corpus statistics into a score, mirroring
// sacreBLEU's BLEU.compute_bleu with smooth_method="exp" and
// effective_order=False.
func computeBLEU(st bleuStats) Score {
	s := Score{
		Counts:    st.correct,
		Totals:    st.total,
		SysLen:    st.sysLen,
		RefLen:    st.refLen,
		BP:        1,
		Signature: BLEUSignature,
	}
	if st.sysLen < st.refLen {
		if st.sysLen > 0 {
			s.BP = math.Exp(1 - float64(st.refLen)/float64(st.sysLen))
		} else {
			s.BP = 0
		}
	}
	anyMatch := false
	for _, c := range st.correct {
		if c != 0 {
			anyMatch = true
		}
	}
	if !anyMatch {
		// sacreBLEU stops early with score 0 and all precisions 0.
		return s
	}
	smooth := 1.0
	for n := range MaxOrder {
		if st.total[n] == 0 {
			break
		}
		if st.correct[n] == 0 {
			smooth *= 2
			s.Precisions[n] = 100 / (smooth * float64(st.total[n]))
		} else {
			s.Precisions[n] = 100 * float64(st.correct[n]) / float64(st.total[n])
		}
	}
	logs := make([]float64, MaxOrder)
	for i, p := range s.Precisions {
		logs[i] = myLog(p)
	}
	s.Score = s.BP * math.Exp(pySum(logs)/MaxOrder)
	return s
}

// CorpusBLEU computes corpus-level BLEU of hyps against refs (one
// reference per hypothesis), with sacreBLEU 2.x defaults: 13a
// tokenisation, mixed case, n-grams up to 4, exp smoothing, no effective
// order. Each segment has its trailing whitespace stripped before
// tokenisation, as sacreBLEU does.
//
// An empty corpus scores 0. Differing list lengths are an error wrapping
// [ErrLengthMismatch].
func CorpusBLEU(hyps, refs []string) (Score, error) {
	if err := checkLengths(hyps, refs); err != nil {
		return Score{Signature: BLEUSignature}, err
	}
	var total bleuStats
	for i := range hyps {
		total.add(segmentBLEUStats(hyps[i], refs[i]))
	}
	return computeBLEU(total), nil
}
