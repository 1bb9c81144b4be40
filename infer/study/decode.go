package study

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"mqa/checkpoints"
	"mqa/data"
	"mqa/infer"
	"mqa/infer/bleu"
	"mqa/infer/stats"
	"mqa/train"
	"mqa/train/rundata"
)

// translationQualityAndSpeed translates the test pairs (testPairs) greedily and with beam 4
// (α = 0.6), writes the translations into the run directory out (hypothesesFile), and scores
// BLEU and chrF with bootstrap intervals; then it times encoder and decoder per output token (and the decoder per
// sequence-step) on one large batch of the first test sentences and on a few sentences at
// batch 1, each timing repeated r.timingReps times.
func (r *Spec) translationQualityAndSpeed(ctx context.Context, b infer.Backend, d *rundata.Data, out string, kr *KindResult, sets *scoredSets) error {
	pairs := r.testPairs(d)
	sources, refs := make([][]int, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		sources[i], refs[i] = d.SrcTok.Encode(p.Src), p.Tgt
	}
	kr.BLEULines = len(pairs)
	for _, mode := range []struct {
		name string
		beam int
	}{{"greedy", 1}, {"beam4", 4}} {
		bar := train.NewProgress(rundata.Progress(r.Quiet), len(sources), "translate "+mode.name, "sentences")
		hyps, _, err := translateTimed(ctx, b, d.Tok, sources, mode.beam, r.DecodeBatch, false, bar.Add)
		bar.Finish()
		if err != nil {
			return err
		}
		if err := writeLines(filepath.Join(out, hypothesesFile(mode.name)), hyps); err != nil {
			return err
		}
		seg, err := bleu.NewSegments(hyps, refs)
		if err != nil {
			return err
		}
		var bl, ch *stats.Interval
		if seg.Len() >= MinUnits {
			rs := r.resampler(seg.Len())
			b, c := rs.CI(seg.BLEU), rs.CI(seg.ChrF)
			bl, ch = &b, &c
		}
		if mode.beam == 1 {
			kr.BLEUGreedy, kr.ChrFGreedy, kr.BLEUGreedyCI, kr.ChrFGreedyCI, sets.greedy = seg.BLEU(nil), seg.ChrF(nil), bl, ch, seg
		} else {
			kr.BLEUBeam4, kr.ChrFBeam4, kr.BLEUCI, kr.ChrFCI, sets.beam = seg.BLEU(nil), seg.ChrF(nil), bl, ch, seg
		}
		for _, batch := range []int{r.DecodeBatch, smallBatch} {
			n := batch
			if batch == smallBatch {
				n = 8
			}
			t, err := r.timeTranslation(ctx, b, d, sources[:min(len(sources), n)], mode.beam, batch)
			if err != nil {
				return err
			}
			t.Mode = mode.name
			kr.Decode = append(kr.Decode, t)
		}
	}
	return nil
}

// hypothesesFile names the file of a model's test translations of a decoding mode (greedy
// or beam4) in its run directory: one a line, in the order of the test set.
func hypothesesFile(mode string) string { return "test." + mode + ".txt" }

// Files beside the report that hold the test sources and references the translations were
// scored against, one a line, so that another tool (sacreBLEU) can score the hypotheses
// files again (writeReferences).
const (
	testSourcesFile    = "translate-test.src.txt"
	testReferencesFile = "translate-test.ref.txt"
)

// testPairs are the test pairs that translation quality is measured on: the first
// -bleu-lines of the test set.
func (r *Spec) testPairs(d *rundata.Data) []data.Pair {
	if r.BLEULines > 0 && len(d.TestPairs) > r.BLEULines {
		return d.TestPairs[:r.BLEULines]
	}
	return d.TestPairs
}

// writeReferences writes the sources and references of the test pairs beside the report.
func (r *Spec) writeReferences(d *rundata.Data) error {
	pairs := r.testPairs(d)
	srcs, refs := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		srcs[i], refs[i] = p.Src, p.Tgt
	}
	if err := writeLines(filepath.Join(r.Out, testSourcesFile), srcs); err != nil {
		return err
	}
	return writeLines(filepath.Join(r.Out, testReferencesFile), refs)
}

// writeLines writes one line per string (each a line already: a source or reference read
// from a line, or a translation made one by infer.OneLine).
func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return checkpoints.WriteFileAtomic(path, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, b.String()); return err })
}

// timeTranslation times translating sources at a batch size r.timingReps times.
func (r *Spec) timeTranslation(ctx context.Context, b infer.Backend, d *rundata.Data, sources [][]int, beam, batch int) (DecodeTiming, error) {
	r.logf("[compare] timing beam %d at batch %d on %d sentences, %d times\n", beam, batch, len(sources), r.TimingReps)
	runs := make([]DecodeTiming, r.TimingReps)
	for i := range runs {
		var err error
		if _, runs[i], err = translateTimed(ctx, b, d.Tok, sources, beam, batch, r.warmUp() && i == 0, func(int) {}); err != nil {
			return DecodeTiming{}, err
		}
	}
	return repeated(runs), nil
}

// warmUp says whether each decoding shape is run once before it is timed: on the GPU the
// first use of a batch shape builds its programs and captures its CUDA graph (tens of
// milliseconds), which would otherwise be timed as decoding. On the CPU nothing comparable
// happens, and decoding twice would double the comparison's longest part.
func (r *Spec) warmUp() bool { return r.DecodeDevice == "cuda" }

// translateTimed translates sources in batches and times the encoder and the decoder (with
// warm, each batch first runs its encoder and two decode steps untimed: the same shapes, so
// the programs and the captured graph exist when the timed pass starts); done is told how many
// sentences each batch finished. A cancelled ctx stops it before its next batch.
func translateTimed(ctx context.Context, b infer.Backend, tok *data.Tokenizer, sources [][]int, beam, batch int, warm bool, done func(int)) ([]string, DecodeTiming, error) {
	cfg := b.Config()
	t := DecodeTiming{Batch: batch, Sequences: len(sources)}
	hyps := make([]string, 0, len(sources))
	var enc, dec time.Duration
	rowSteps := 0
	translate := func(chunk [][]int, maxLen int) (out []infer.Hypothesis, encT, decT time.Duration, steps int, err error) {
		t0 := time.Now()
		s, err := b.Translation(chunk, beam, cfg.MaxLen)
		if err != nil {
			return nil, 0, 0, 0, err
		}
		t1 := time.Now()
		counted, count := countSteps(s)
		out, err = infer.BeamSearch(counted, len(chunk), infer.Beam{Size: beam, Alpha: 0.6, MaxLen: maxLen, BOS: data.BOSID, EOS: data.EOSID})
		return out, t1.Sub(t0), time.Since(t1), count.n, err
	}
	for lo := 0; lo < len(sources); lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, t, err
		}
		chunk := sources[lo:min(lo+batch, len(sources))]
		if warm {
			if _, _, _, _, err := translate(chunk, min(2, cfg.MaxLen)); err != nil {
				return nil, t, err
			}
		}
		out, encT, decT, steps, err := translate(chunk, cfg.MaxLen)
		if err != nil {
			return nil, t, err
		}
		enc += encT
		dec += decT
		t.DecoderSteps += steps
		rowSteps += steps * len(chunk) * beam
		for _, h := range out {
			hyps = append(hyps, infer.OneLine(tok.Decode(h.Tokens)))
			t.OutputTokens += len(h.Tokens) + 1 // with its EOS
		}
		done(len(chunk))
	}
	t.EncoderUS = enc.Seconds() / float64(t.OutputTokens) * 1e6
	t.DecoderUS = dec.Seconds() / float64(t.OutputTokens) * 1e6
	if rowSteps > 0 {
		t.RowStepUS = dec.Seconds() / float64(rowSteps) * 1e6
	}
	return hyps, t, nil
}

// stepCount counts the decode steps of a Stepper (its Step calls and, through
// rankedStepCount, its StepTopK calls).
type stepCount struct {
	infer.Stepper
	n int
}

func (c *stepCount) Step(tokens []int) ([]float32, error) {
	c.n++
	return c.Stepper.Step(tokens)
}

// rankedStepCount keeps a Ranker a Ranker while counting its steps.
type rankedStepCount struct{ *stepCount }

func (c rankedStepCount) StepTopK(tokens []int, k int) ([]int, []float32, error) {
	c.n++
	return c.Stepper.(infer.Ranker).StepTopK(tokens, k)
}

// countSteps wraps s so that its decode steps are counted, keeping it a Ranker if it is one.
func countSteps(s infer.Stepper) (infer.Stepper, *stepCount) {
	c := &stepCount{Stepper: s}
	if _, ok := s.(infer.Ranker); ok {
		return rankedStepCount{c}, c
	}
	return c, c
}

// lmSpeed times greedy continuation of test-text prompts with the cached decoder, at
// batch 1 and at the large batch. A cancelled ctx stops it before its next run.
func (r *Spec) lmSpeed(ctx context.Context, b infer.Backend, d *rundata.Data, kr *KindResult) error {
	cfg := b.Config()
	const promptLen = 8
	newTokens := cfg.MaxLen - promptLen
	if len(d.TestBatches) == 0 {
		return fmt.Errorf("no test text to prompt with")
	}
	first := d.TestBatches[0]
	for _, batch := range []int{smallBatch, r.DecodeBatch} {
		prompts := make([][]int, batch)
		for i := range prompts {
			row := i % first.Shape.Batch
			start := row * first.Shape.TgtLen
			prompts[i] = first.Tokens[start : start+promptLen]
		}
		if r.warmUp() { // build the shape's programs and capture its graph untimed
			s, err := b.LM(batch, cfg.MaxLen)
			if err != nil {
				return err
			}
			if _, err := infer.Generate(s, prompts, 2, -1, infer.Sampling{}); err != nil {
				return err
			}
		}
		r.logf("[compare] timing cached LM decoding at batch %d, %d times\n", batch, r.TimingReps)
		runs := make([]DecodeTiming, r.TimingReps)
		for i := range runs {
			if err := ctx.Err(); err != nil {
				return err
			}
			s, err := b.LM(batch, cfg.MaxLen)
			if err != nil {
				return err
			}
			t0 := time.Now()
			// EOS −1 never matches, so every row generates newTokens tokens.
			out, err := infer.Generate(s, prompts, newTokens, -1, infer.Sampling{})
			if err != nil {
				return err
			}
			dt := time.Since(t0)
			t := DecodeTiming{Mode: "greedy", Batch: batch, Sequences: batch}
			for _, o := range out {
				t.OutputTokens += len(o)
			}
			t.DecoderUS = dt.Seconds() / float64(t.OutputTokens) * 1e6
			runs[i] = t
		}
		kr.Decode = append(kr.Decode, repeated(runs))
	}
	return nil
}

// smallBatch is the batch of the small decoding-speed measurement (the report's batch-1 columns).
const smallBatch = 1
