package infer

import (
	"math/rand/v2"
	"testing"

	"mqa/models"
)

// TestCachedEqualsFull runs the cached decode step and the full recomputation side by side
// on the same tokens for 56 steps, over a batch of three sequences of different prompt or
// source lengths (one of which finishes early), and compares the logits at every step.
func TestCachedEqualsFull(t *testing.T) {
	const steps = 56
	cases := []struct {
		name string
		cfg  models.Config
	}{
		{"lm mha", smallLM},
		{"lm gqa2", with(smallLM, func(c *models.Config) { c.KVHeads = 2 })},
		{"lm mqa", with(smallLM, func(c *models.Config) { c.KVHeads = 1 })},
		{"lm mqa rope window rms swiglu bias untied", with(smallLM, func(c *models.Config) {
			c.KVHeads, c.Positions, c.Window, c.Norm, c.Activation, c.Bias, c.TieEmbeddings = 1, "rope", 7, "rms", "swiglu", true, false
		})},
		{"lm gqa2 learned", with(smallLM, func(c *models.Config) { c.KVHeads, c.Positions = 2, "learned" })},
		{"translate mha", smallMT},
		{"translate gqa2", with(smallMT, func(c *models.Config) { c.KVHeads = 2 })},
		{"translate mqa", with(smallMT, func(c *models.Config) { c.KVHeads = 1 })},
		{"translate mqa rope src vocab bias", with(smallMT, func(c *models.Config) {
			c.KVHeads, c.Positions, c.SrcVocab, c.Bias = 1, "rope", 30, true
		})},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			params := randomParams(t, c.cfg, uint64(i+1))
			cached, err := NewCPU(c.cfg, params, false)
			if err != nil {
				t.Fatal(err)
			}
			full, _ := NewCPU(c.cfg, params, true)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			prompts := [][]int{{5}, {7, 8, 9, 10, 11}, {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}}
			var a, b Stepper
			if c.cfg.Task == models.TaskLM {
				a, err = cached.LM(3, 64)
				if err == nil {
					b, err = full.LM(3, 64)
				}
			} else {
				a, err = cached.Translation(prompts, 1, 64)
				if err == nil {
					b, err = full.Translation(prompts, 1, 64)
				}
				prompts = [][]int{{1}, {1}, {1}}
			}
			if err != nil {
				t.Fatal(err)
			}
			tokens := make([]int, 3)
			active := []bool{true, true, true}
			var worst float64
			defer func() { t.Logf("worst relative error %.2g over %d steps", worst, steps) }()
			for s := 0; s < steps; s++ {
				for r := range tokens {
					switch {
					case r == 0 && s >= 30: // finished early
						tokens[r], active[r] = -1, false
					case s < len(prompts[r]):
						tokens[r] = prompts[r][s]
					default:
						tokens[r] = 3 + rng.IntN(c.cfg.Vocab-3)
					}
				}
				la, err := a.Step(tokens)
				if err != nil {
					t.Fatal(err)
				}
				lb, err := b.Step(tokens)
				if err != nil {
					t.Fatal(err)
				}
				e := relErr(la, lb, c.cfg.Vocab, active)
				worst = max(worst, e)
				if e > 1e-4 || e != e {
					t.Fatalf("step %d: cached logits differ from the full recomputation: relative error %.3g", s, e)
				}
			}
		})
	}
}
