package bleu

// Segments holds the sufficient statistics of BLEU and chrF of every segment of one system,
// computed once, so that any resample of the test set (a bootstrap) is scored by adding them
// up instead of tokenising again.
type Segments struct {
	bleu []bleuStats
	chrf []chrfStats
}

// NewSegments computes the per-segment statistics of hyps against refs (one reference each).
// Differing list lengths are an error wrapping [ErrLengthMismatch].
func NewSegments(hyps, refs []string) (*Segments, error) {
	if err := checkLengths(hyps, refs); err != nil {
		return nil, err
	}
	s := &Segments{bleu: make([]bleuStats, len(hyps)), chrf: make([]chrfStats, len(hyps))}
	for i := range hyps {
		s.bleu[i] = segmentBLEUStats(hyps[i], refs[i])
		s.chrf[i] = segmentChrFStats(hyps[i], refs[i])
	}
	return s, nil
}

// Len is the number of segments.
func (s *Segments) Len() int { return len(s.bleu) }

// each calls f with every segment index of idx, or of all segments when idx is nil.
func (s *Segments) each(idx []int, f func(i int)) {
	if idx == nil {
		for i := range s.bleu {
			f(i)
		}
		return
	}
	for _, i := range idx {
		f(i)
	}
}

// BLEU is the corpus BLEU (0-100) of the segments idx, repetitions counted (nil: all), as
// [CorpusBLEU] would score that list of segments.
func (s *Segments) BLEU(idx []int) float64 {
	var total bleuStats
	s.each(idx, func(i int) { total.add(s.bleu[i]) })
	return computeBLEU(total).Score
}

// ChrF is the corpus chrF (0-100) of the segments idx, repetitions counted (nil: all), as
// [CorpusChrF] would score that list of segments.
func (s *Segments) ChrF(idx []int) float64 {
	var total chrfStats
	s.each(idx, func(i int) {
		for o := range total {
			for k := range 3 {
				total[o][k] += s.chrf[i][o][k]
			}
		}
	})
	return chrfFromStats(total)
}
