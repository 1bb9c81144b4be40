package study

import (
	"math"

	"mqa/infer/bleu"
	"mqa/infer/stats"
	"mqa/models"
	"mqa/train"
	"mqa/train/rundata"
)

// units are the summed NLL (nats) and the target tokens of each unit of an evaluation set
// that the bootstrap resamples: a sentence (translation) or a document (LM). Words and
// Complete are set for documents: a document is complete when every one of its tokens was
// scored (not so for the one that -eval-batches cuts).
type units struct {
	NLL, Tokens []float64
	Words       []int
	Complete    []bool
	Kind        string // "sentences", "documents" or "windows"
}

// ok reports whether there are enough units for a bootstrap interval.
func (u units) ok() bool { return len(u.NLL) >= MinUnits }

// sentenceUnits sums the token NLLs of each row (sentence) of translation batches.
func sentenceUnits(batches []train.Batch, nll [][]float64) units {
	u := units{Kind: "sentences"}
	for k, b := range batches {
		n := b.Shape.TgtLen
		for row := range b.Shape.Batch {
			sum, tokens := 0.0, 0
			for i := row * n; i < (row+1)*n; i++ {
				if b.Targets[i] != models.PadID {
					sum += nll[k][i]
					tokens++
				}
			}
			u.NLL, u.Tokens = append(u.NLL, sum), append(u.Tokens, float64(tokens))
		}
	}
	return u
}

// documentUnits sums the token NLLs of LM evaluation batches (consecutive windows of the
// joined documents, see lmEvalBatches) per document. The stream's first token is never a
// target, so the first document has one target fewer than tokens.
func documentUnits(batches []train.Batch, nll [][]float64, docs []rundata.DocSize) units {
	u := units{Kind: "documents"}
	doc, pos, end := 0, 1, 0 // pos: the stream position of the next target; end: where doc ends
	if len(docs) > 0 {
		end = docs[0].Tokens
	}
	sum, scored := 0.0, 0
	flush := func() {
		if scored == 0 {
			return
		}
		want := docs[doc].Tokens
		if doc == 0 {
			want--
		}
		u.NLL, u.Tokens = append(u.NLL, sum), append(u.Tokens, float64(scored))
		u.Words, u.Complete = append(u.Words, docs[doc].Words), append(u.Complete, scored == want)
		sum, scored = 0, 0
	}
	for k, b := range batches {
		for i, target := range b.Targets {
			if target == models.PadID {
				continue
			}
			for pos >= end && doc < len(docs)-1 {
				flush()
				doc++
				end += docs[doc].Tokens
			}
			sum += nll[k][i]
			scored++
			pos++
		}
	}
	if len(docs) > 0 {
		flush()
	}
	return u
}

// lnPPL is the mean NLL per token over every unit: the ln-perplexity.
func (u units) lnPPL() float64 { return stats.RatioScore(u.NLL, u.Tokens)(nil) }

// wordPPL is the perplexity per word over the complete documents (false without any).
func (u units) wordPPL() (float64, bool) {
	nll, words := 0.0, 0
	for i, ok := range u.Complete {
		if ok {
			nll += u.NLL[i]
			words += u.Words[i]
		}
	}
	if words == 0 {
		return 0, false
	}
	return math.Exp(nll / float64(words)), true
}

// scoredSets is what a model's paired comparison with MHA needs: its per-unit NLLs and its
// per-sentence BLEU/chrF statistics.
type scoredSets struct {
	valid, test  units
	greedy, beam *bleu.Segments
}

// resampler draws the bootstrap resamples of a set of n units for the comparison's seed.
func (r *Spec) resampler(n int) stats.Resampler {
	return stats.Resampler{Units: n, Resamples: stats.DefaultResamples, Seed: r.Seed}
}

// pairWith fills the paired bootstrap results of kr against its baseline base (see
// baselineIndex), scored on the same sentences or documents.
func (r *Spec) pairWith(kr *KindResult, s, base scoredSets) {
	if s.valid.ok() {
		p := r.resampler(len(s.valid.NLL)).PairedTest(stats.RatioScore(base.valid.NLL, base.valid.Tokens), stats.RatioScore(s.valid.NLL, s.valid.Tokens))
		kr.LnPPLDiffCI = &p.Diff
	}
	if s.test.ok() {
		p := r.resampler(len(s.test.NLL)).PairedTest(stats.RatioScore(base.test.NLL, base.test.Tokens), stats.RatioScore(s.test.NLL, s.test.Tokens))
		kr.TestLnPPLDiffCI = &p.Diff
	}
	if s.beam != nil && base.beam != nil && s.beam.Len() >= MinUnits {
		rs := r.resampler(s.beam.Len())
		b, c := rs.PairedTest(base.beam.BLEU, s.beam.BLEU), rs.PairedTest(base.beam.ChrF, s.beam.ChrF)
		kr.PairedPBLEU, kr.BLEUDiffCI, kr.PairedPChrF, kr.ChrFDiffCI = &b.P, &b.Diff, &c.P, &c.Diff
	}
}

// pairAll runs the paired tests of every row of one task whose baseline is done; sets[i]
// belongs to rows[i].
func (r *Spec) pairAll(rows []KindResult, sets []scoredSets) {
	for i := range rows {
		if j := baselineIndex(rows, i); j >= 0 {
			rows[i].Baseline = rows[j].Attention
			r.pairWith(&rows[i], sets[i], sets[j])
		}
	}
}

// baselineIndex is the row of rows (one task) that rows[i] is compared against, -1 for none:
// for an uptrained model the MHA model of the same seed continued from the same checkpoint
// for as many steps (so that the comparison is of the pooling, not of the extra training),
// for the other models the MHA model of the same seed, and none for that one. Results from
// before the continued model existed fall back to MHA.
func baselineIndex(rows []KindResult, i int) int {
	r := rows[i]
	if r.Attention == "mha" {
		return -1
	}
	want := "mha"
	if r.UptrainedFrom != nil && r.Attention != continuedLabel(r.Steps) {
		want = continuedLabel(r.Steps)
	}
	found := -1
	for j, b := range rows {
		switch {
		case b.Task != r.Task || b.Seed != r.Seed:
		case b.Attention == want:
			return j
		case b.Attention == "mha":
			found = j
		}
	}
	return found
}

// ci is the bootstrap interval of the ln-perplexity of u, nil with too few units.
func (r *Spec) lnPPLCI(u units) *stats.Interval {
	if !u.ok() {
		return nil
	}
	iv := r.resampler(len(u.NLL)).CI(stats.RatioScore(u.NLL, u.Tokens))
	return &iv
}
