package bleu

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ChrF parameters: sacreBLEU's CHRF defaults.
const (
	// ChrFCharOrder is the largest character n-gram order.
	ChrFCharOrder = 6
	// ChrFBeta weighs recall ChrFBeta times as much as precision.
	ChrFBeta = 2
)

// ChrFSignature is the sacreBLEU signature of the chrF configuration that
// [CorpusChrF] implements.
const ChrFSignature = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:" + SacreBLEUVersion

// ChrFScore is a corpus chrF score.
type ChrFScore struct {
	// Score is chrF on a 0-100 scale.
	Score float64
	// Signature is sacreBLEU's reproducibility signature.
	Signature string
}

// String formats s as sacreBLEU prints it, for example "chrF2 = 55.12".
func (s ChrFScore) String() string {
	return "chrF" + strconv.Itoa(ChrFBeta) + " = " + strconv.FormatFloat(s.Score, 'f', 2, 64)
}

// chrfStats holds, per character order, the hypothesis n-gram count, the
// reference n-gram count and the matched count.
type chrfStats [ChrFCharOrder][3]int

// charNgrams counts the character n-grams of orders 1..ChrFCharOrder of
// line after all whitespace has been removed. Keys are substrings of the
// input, so invalid UTF-8 bytes stay distinct from each other.
func charNgrams(line string) [ChrFCharOrder]map[string]int {
	s := strings.Join(pyFields(line), "")
	// Offsets of each character (code point; an invalid byte counts as
	// one character) plus the end.
	offs := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		offs = append(offs, i)
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	offs = append(offs, len(s))
	var out [ChrFCharOrder]map[string]int
	countSpans(out[:], s, offs, 0)
	return out
}

// segmentChrFStats mirrors sacreBLEU's CHRF._get_match_statistics for one
// hypothesis and one reference.
func segmentChrFStats(hyp, ref string) chrfStats {
	h, r := charNgrams(hyp), charNgrams(ref)
	var st chrfStats
	for o := range ChrFCharOrder {
		hypCount, match := clippedMatches(h[o], r[o])
		refCount := 0
		for _, c := range r[o] {
			refCount += c
		}
		// sacreBLEU does not count hypothesis n-grams of an order for
		// which the reference has none.
		if len(r[o]) == 0 {
			hypCount = 0
		}
		st[o] = [3]int{hypCount, refCount, match}
	}
	return st
}

// chrfFromStats mirrors CHRF._compute_f_score with eps_smoothing=False
// (sacreBLEU's default): precision and recall are averaged over the orders
// where both hypothesis and reference have n-grams, then combined into an
// F-beta score.
func chrfFromStats(st chrfStats) float64 {
	const factor = float64(ChrFBeta * ChrFBeta)
	avgPrec, avgRec := 0.0, 0.0
	effOrder := 0
	for _, o := range st {
		nHyp, nRef, nMatch := o[0], o[1], o[2]
		if nHyp > 0 && nRef > 0 {
			avgPrec += float64(nMatch) / float64(nHyp)
			avgRec += float64(nMatch) / float64(nRef)
			effOrder++
		}
	}
	if effOrder == 0 {
		return 0
	}
	avgPrec /= float64(effOrder)
	avgRec /= float64(effOrder)
	if avgPrec+avgRec == 0 {
		return 0
	}
	score := float64((1+factor)*avgPrec) * avgRec
	score /= float64(factor*avgPrec) + avgRec
	return 100 * score
}

// CorpusChrF computes corpus-level chrF of hyps against refs (one
// reference per hypothesis) with sacreBLEU's defaults: character n-grams
// up to 6, no word n-grams, beta 2, whitespace removed, mixed case and
// effective-order averaging. Statistics are summed over the corpus before
// the score is computed.
//
// An empty corpus scores 0. Differing list lengths are an error wrapping
// [ErrLengthMismatch].
func CorpusChrF(hyps, refs []string) (ChrFScore, error) {
	if err := checkLengths(hyps, refs); err != nil {
		return ChrFScore{Signature: ChrFSignature}, err
	}
	var total chrfStats
	for i := range hyps {
		st := segmentChrFStats(hyps[i], refs[i])
		for o := range total {
			for k := range 3 {
				total[o][k] += st[o][k]
			}
		}
	}
	return ChrFScore{Score: chrfFromStats(total), Signature: ChrFSignature}, nil
}
