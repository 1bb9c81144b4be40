package study

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mqa/data"
	"mqa/infer"
	"mqa/models"
)

// fixedStepper proposes token 3 until its step after, then EOS (2), for every row.
type fixedStepper struct {
	rows, steps, after int
}

func (s *fixedStepper) Batch() int          { return s.rows }
func (s *fixedStepper) Vocab() int          { return 5 }
func (s *fixedStepper) Capacity() int       { return 50 }
func (s *fixedStepper) Reorder([]int) error { return nil }
func (s *fixedStepper) Step(tokens []int) ([]float32, error) {
	s.steps++
	best := 3
	if s.steps > s.after {
		best = 2
	}
	logits := make([]float32, s.rows*5)
	for r := 0; r < s.rows; r++ {
		logits[r*5+best] = 5
	}
	return logits, nil
}

// rankedFixed is a fixedStepper that is also a Ranker.
type rankedFixed struct{ *fixedStepper }

func (s rankedFixed) StepTopK(tokens []int, k int) ([]int, []float32, error) {
	logits, err := s.Step(tokens)
	if err != nil {
		return nil, nil, err
	}
	ids, logp := infer.TopK(logits, 5, k)
	return ids, logp, nil
}

// countSteps counts every decode step of a search and keeps a Ranker a Ranker.
func TestCountSteps(t *testing.T) {
	for _, ranked := range []bool{false, true} {
		for _, beam := range []int{1, 2} {
			fixed := &fixedStepper{rows: 3 * beam, after: 6}
			var s infer.Stepper = fixed
			if ranked {
				s = rankedFixed{fixed}
			}
			counted, steps := countSteps(s)
			if _, isRanker := counted.(infer.Ranker); isRanker != ranked {
				t.Fatalf("ranked %v: wrapped stepper is a Ranker: %v", ranked, isRanker)
			}
			out, err := infer.BeamSearch(counted, 3, infer.Beam{Size: beam, MaxLen: 20, BOS: 1, EOS: 2})
			if err != nil {
				t.Fatal(err)
			}
			if steps.n != fixed.steps || steps.n != 7 {
				t.Errorf("ranked %v beam %d: counted %d steps, the stepper took %d (want 7)", ranked, beam, steps.n, fixed.steps)
			}
			if len(out) != 3 || len(out[0].Tokens) != 6 {
				t.Errorf("ranked %v beam %d: hypotheses %+v", ranked, beam, out)
			}
		}
	}
}

// countingBackend hands out fixed rankers for translation and counts the Translation calls.
type countingBackend struct{ translations int }

func (b *countingBackend) Config() models.Config {
	cfg, _ := models.Preset("tiny", models.TaskTranslate, 5)
	cfg.MaxLen = 50 // fixedStepper's capacity
	return cfg
}
func (b *countingBackend) LM(int, int) (infer.Stepper, error) { return nil, errors.New("no LM") }
func (b *countingBackend) Translation(sources [][]int, beams, capacity int) (infer.Stepper, error) {
	b.translations++
	return rankedFixed{&fixedStepper{rows: len(sources) * beams, after: 4}}, nil
}

// With warm-up every batch is encoded twice (the first time with two decode steps only) and
// only the second pass is timed: the same hypotheses, steps and output tokens as without it.
func TestTranslateTimedWarmUp(t *testing.T) {
	tok, err := data.TrainBPE([]string{"a b c"}, 260)
	if err != nil {
		t.Fatal(err)
	}
	sources := [][]int{{4}, {5, 6}, {7}, {8, 9, 10}, {11}}
	for _, beam := range []int{1, 4} {
		var want []string
		var wantT DecodeTiming
		for _, warm := range []bool{false, true} {
			b := &countingBackend{}
			done := 0
			hyps, timing, err := translateTimed(context.Background(), b, tok, sources, beam, 2, warm, func(n int) { done += n })
			if err != nil {
				t.Fatal(err)
			}
			calls := 3 // batches of 2, 2 and 1
			if warm {
				calls *= 2
			}
			if b.translations != calls || done != len(sources) {
				t.Errorf("beam %d warm %v: %d Translation calls (want %d), %d sentences reported done", beam, warm, b.translations, calls, done)
			}
			if !warm {
				want, wantT = hyps, timing
				continue
			}
			if !slices.Equal(hyps, want) || timing.DecoderSteps != wantT.DecoderSteps || timing.OutputTokens != wantT.OutputTokens {
				t.Errorf("beam %d: warm-up changed the result: %q %+v, want %q %+v", beam, hyps, timing, want, wantT)
			}
		}
		if beam == 1 && wantT.DecoderSteps != 3*5 {
			t.Errorf("greedy: %d decoder steps, want 5 per batch", wantT.DecoderSteps)
		}
	}
}
