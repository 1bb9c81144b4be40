package infer

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mqa/models"
)

// tableStepper is a tiny hand-built model: the logits after a prefix come from a function
// of the whole prefix, so the best sequence is not the greedy one in general.
type tableStepper struct {
	vocab, capacity int
	hist            [][]int
	logits          func(prefix []int) []float32
}

func (s *tableStepper) Batch() int    { return len(s.hist) }
func (s *tableStepper) Vocab() int    { return s.vocab }
func (s *tableStepper) Capacity() int { return s.capacity }

func (s *tableStepper) Step(tokens []int) ([]float32, error) {
	out := make([]float32, 0, len(tokens)*s.vocab)
	for r, t := range tokens {
		if t >= 0 {
			s.hist[r] = append(s.hist[r], t)
		}
		out = append(out, s.logits(s.hist[r])...)
	}
	return out, nil
}

func (s *tableStepper) Reorder(parents []int) error {
	next := make([][]int, len(parents))
	for i, p := range parents {
		next[i] = slices.Clone(s.hist[p])
	}
	s.hist = next
	return nil
}

// hashedLogits gives each prefix pseudo-random logits (seeded by the prefix), with EOS
// raised by eosBias.
func hashedLogits(vocab int, seed uint64, eosBias float32) func([]int) []float32 {
	return func(prefix []int) []float32 {
		h := fnv.New64a()
		for _, t := range prefix {
			h.Write([]byte{byte(t)})
		}
		rng := rand.New(rand.NewPCG(h.Sum64(), seed))
		out := make([]float32, vocab)
		for i := range out {
			out[i] = float32(2 * rng.NormFloat64())
		}
		out[2] += eosBias
		return out
	}
}

// logSoftmax writes the log-probabilities of a row of logits into out.
func logSoftmax(logits []float32, out []float64) {
	lse := logNormalizer(logits)
	for i, v := range logits {
		out[i] = float64(v) - lse
	}
}

// bruteForce scores every complete sequence (ending in EOS, or of maxLen tokens) and
// returns the best by normalized score.
func bruteForce(logits func([]int) []float32, vocab, maxLen int, alpha float64) Hypothesis {
	best := Hypothesis{Normalized: math.Inf(-1)}
	lp := make([]float64, vocab)
	var walk func(prefix []int, score float64)
	walk = func(prefix []int, score float64) {
		logSoftmax(logits(prefix), lp)
		probs := slices.Clone(lp)
		for tok, l := range probs {
			n := len(prefix) // tokens after BOS so far, plus this one
			s := score + l
			if tok == 2 || n == maxLen {
				toks := slices.Clone(prefix[1:])
				if tok != 2 {
					toks = append(toks, tok)
				}
				if v := s / LengthPenalty(n, alpha); v > best.Normalized {
					best = Hypothesis{Tokens: toks, Score: s, Normalized: v}
				}
				continue
			}
			walk(append(slices.Clone(prefix), tok), s)
		}
	}
	walk([]int{1}, 0)
	return best
}

func TestBeamEqualsBruteForce(t *testing.T) {
	const vocab, maxLen = 4, 5
	// A greedy trap: token 3 is likelier first (0.6) but every continuation of it is flat,
	// while token 0 (0.4) is followed by EOS almost surely.
	trap := func(prefix []int) []float32 {
		switch {
		case len(prefix) == 0: // an unused row
			return []float32{0, 0, 0, 0}
		case len(prefix) == 1:
			return []float32{float32(math.Log(0.4)), -30, -30, float32(math.Log(0.6))}
		case prefix[1] == 0:
			return []float32{-30, -30, 0, -30}
		}
		return []float32{0, 0, 0, 0}
	}
	cases := []struct {
		name   string
		logits func([]int) []float32
		beam   int
		alpha  float64
	}{
		{"trap beam 2", trap, 2, 0.6},
		{"trap beam 2 alpha 0", trap, 2, 0},
		// Models chosen so that the length penalty changes the winner (α = 0 would pick
		// another sequence), and one whose winner is as long as allowed.
		{"exhaustive seed 2 alpha 0.6", hashedLogits(vocab, 2, -1), 128, 0.6},
		{"exhaustive seed 4 alpha 1.5", hashedLogits(vocab, 4, -1), 128, 1.5},
		{"exhaustive seed 5 alpha 0.6", hashedLogits(vocab, 5, 0), 128, 0.6},
		{"exhaustive seed 5 alpha 1.5", hashedLogits(vocab, 5, 1), 128, 1.5},
		{"exhaustive seed 8 alpha 0", hashedLogits(vocab, 8, -1), 128, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := bruteForce(c.logits, vocab, maxLen, c.alpha)
			s := &tableStepper{vocab: vocab, capacity: maxLen, hist: make([][]int, c.beam), logits: c.logits}
			got, err := BeamSearch(s, 1, Beam{Size: c.beam, Alpha: c.alpha, MaxLen: maxLen, BOS: 1, EOS: 2})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got[0].Tokens, want.Tokens) || math.Abs(got[0].Normalized-want.Normalized) > 1e-9 {
				t.Errorf("beam %v (%.6f), brute force %v (%.6f)", got[0].Tokens, got[0].Normalized, want.Tokens, want.Normalized)
			}
		})
	}
	// Greedy falls into the trap.
	s := &tableStepper{vocab: vocab, capacity: maxLen, hist: make([][]int, 1), logits: trap}
	g, err := Generate(s, [][]int{{1}}, maxLen, 2, Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g[0]) == 0 || g[0][0] != 3 {
		t.Errorf("greedy gave %v, expected it to start with the likelier token 3", g[0])
	}
}

// TestBeamOneIsGreedy: beam search with k = 1 picks the greedy tokens, on a hand-built
// model and on a random transformer (batched translation, cached).
func TestBeamOneIsGreedy(t *testing.T) {
	// Three tokens with a likely EOS: EOS is often the second choice, which must not end
	// a hypothesis when k = 1.
	for seed := uint64(1); seed <= 20; seed++ {
		f := hashedLogits(3, seed, 1)
		s1 := &tableStepper{vocab: 3, capacity: 8, hist: make([][]int, 1), logits: f}
		s2 := &tableStepper{vocab: 3, capacity: 8, hist: make([][]int, 1), logits: f}
		b, err := BeamSearch(s1, 1, Beam{Size: 1, Alpha: 0.6, MaxLen: 8, BOS: 1, EOS: 2})
		if err != nil {
			t.Fatal(err)
		}
		g, err := Generate(s2, [][]int{{1}}, 8, 2, Sampling{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(b[0].Tokens, g[0]) {
			t.Errorf("seed %d: beam 1 %v, greedy %v", seed, b[0].Tokens, g[0])
		}
	}
	cfg := with(smallMT, func(c *models.Config) { c.KVHeads = 2 })
	cpu, err := NewCPU(cfg, randomParams(t, cfg, 11), false)
	if err != nil {
		t.Fatal(err)
	}
	srcs := [][]int{{5, 6, 7}, {9, 3, 4, 5, 6, 7, 8, 20}, {30}}
	a, err := cpu.Translation(srcs, 1, 40)
	if err != nil {
		t.Fatal(err)
	}
	beam, err := BeamSearch(a, 3, Beam{Size: 1, Alpha: 0.6, MaxLen: 40, BOS: 1, EOS: 2})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cpu.Translation(srcs, 1, 40)
	greedy, err := Generate(b, [][]int{{1}, {1}, {1}}, 40, 2, Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range srcs {
		if !slices.Equal(beam[i].Tokens, greedy[i]) {
			t.Errorf("source %d: beam 1 %v, greedy %v", i, beam[i].Tokens, greedy[i])
		}
	}
}

// TestCachedSearchEqualsUncached: greedy (LM and translation) and beam 4 give identical
// tokens with and without the cache.
func TestCachedSearchEqualsUncached(t *testing.T) {
	cases := []struct {
		name string
		cfg  models.Config
	}{
		{"lm mqa", with(smallLM, func(c *models.Config) { c.KVHeads = 1 })},
		{"lm mha rope", with(smallLM, func(c *models.Config) { c.Positions = "rope" })},
		{"translate mqa", with(smallMT, func(c *models.Config) { c.KVHeads = 1 })},
		{"translate gqa2", with(smallMT, func(c *models.Config) { c.KVHeads = 2 })},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			params := randomParams(t, c.cfg, uint64(20+i))
			var outs [2][][]int
			for j, noCache := range []bool{false, true} {
				cpu, err := NewCPU(c.cfg, params, noCache)
				if err != nil {
					t.Fatal(err)
				}
				if c.cfg.Task == models.TaskLM {
					prompts := [][]int{{5, 6}, {7, 8, 9, 10, 11, 12}, {13}}
					s, err := cpu.LM(3, 40)
					if err != nil {
						t.Fatal(err)
					}
					if outs[j], err = Generate(s, prompts, 30, 2, Sampling{}); err != nil {
						t.Fatal(err)
					}
					continue
				}
				srcs := [][]int{{5, 6, 7, 8}, {9, 10}, {11, 12, 13, 14, 15, 16, 17, 18, 19}}
				s, err := cpu.Translation(srcs, 1, 30)
				if err != nil {
					t.Fatal(err)
				}
				if outs[j], err = Generate(s, [][]int{{1}, {1}, {1}}, 30, 2, Sampling{}); err != nil {
					t.Fatal(err)
				}
				s, err = cpu.Translation(srcs, 4, 12)
				if err != nil {
					t.Fatal(err)
				}
				hyps, err := BeamSearch(s, 3, Beam{Size: 4, Alpha: 0.6, MaxLen: 12, BOS: 1, EOS: 2})
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hyps {
					outs[j] = append(outs[j], h.Tokens)
				}
			}
			for r := range outs[0] {
				if !slices.Equal(outs[0][r], outs[1][r]) {
					t.Errorf("row %d: cached %v, uncached %v", r, outs[0][r], outs[1][r])
				}
			}
			if len(outs[0][0]) == 0 && len(outs[0][1]) == 0 {
				t.Errorf("nothing generated: %v", outs[0])
			}
		})
	}
}

func TestSampling(t *testing.T) {
	cfg := with(smallLM, func(c *models.Config) { c.KVHeads = 2 })
	params := randomParams(t, cfg, 5)
	cpu, err := NewCPU(cfg, params, false)
	if err != nil {
		t.Fatal(err)
	}
	run := func(opt Sampling) [][]int {
		t.Helper()
		s, err := cpu.LM(2, 32)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Generate(s, [][]int{{5, 6, 7}, {8}}, 20, -1, opt)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	greedy := run(Sampling{})
	cases := []struct {
		name       string
		a, b       Sampling
		same       bool
		sameGreedy bool
	}{
		{"same seed", Sampling{Temperature: 1, TopK: 10, TopP: 0.9, Seed: 3}, Sampling{Temperature: 1, TopK: 10, TopP: 0.9, Seed: 3}, true, false},
		{"other seed", Sampling{Temperature: 1.5, Seed: 3}, Sampling{Temperature: 1.5, Seed: 4}, false, false},
		{"top-k 1 is greedy", Sampling{Temperature: 2, TopK: 1, Seed: 1}, Sampling{Temperature: 0.5, TopK: 1, Seed: 2}, true, true},
		{"tiny top-p is greedy", Sampling{Temperature: 1, TopP: 1e-9, Seed: 1}, Sampling{Temperature: 1, TopP: 1e-9, Seed: 9}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := run(c.a), run(c.b)
			eq := slices.EqualFunc(a, b, slices.Equal[[]int])
			if eq != c.same {
				t.Errorf("outputs equal = %v, want %v:\n%v\n%v", eq, c.same, a, b)
			}
			if c.sameGreedy && !slices.EqualFunc(a, greedy, slices.Equal[[]int]) {
				t.Errorf("got %v, greedy %v", a, greedy)
			}
		})
	}
	// Top-k keeps only the k most likely tokens.
	logits := []float32{0, 3, 1, 2.5, -1}
	rng := rand.New(rand.NewPCG(1, 1))
	seen := map[int]bool{}
	for i := 0; i < 2000; i++ {
		seen[choose(logits, Sampling{Temperature: 5, TopK: 2}, rng, make([]int, 5), make([]float64, 5))] = true
	}
	if len(seen) != 2 || !seen[1] || !seen[3] {
		t.Errorf("top-2 sampling drew %v, want exactly {1, 3}", seen)
	}
	// Top-p 0.5 of probabilities (0.5, 0.3, 0.2) keeps only the first.
	lg := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2))}
	for i := 0; i < 200; i++ {
		if tok := choose(lg, Sampling{Temperature: 1, TopP: 0.5}, rng, make([]int, 3), make([]float64, 3)); tok != 0 {
			t.Fatalf("top-p 0.5 drew %d", tok)
		}
	}
}

func TestBadSettings(t *testing.T) {
	s := &tableStepper{vocab: 4, capacity: 5, hist: make([][]int, 2), logits: hashedLogits(4, 1, 0)}
	for _, b := range []Beam{{Size: 0, MaxLen: 5}, {Size: 2, Alpha: -1, MaxLen: 5}, {Size: 2, MaxLen: 6}, {Size: 3, MaxLen: 5}} {
		if _, err := BeamSearch(s, 1, b); err == nil {
			t.Errorf("beam %+v: no error", b)
		}
	}
	for _, o := range []Sampling{{Temperature: -1}, {TopK: -1}, {TopP: 1.5}, {Temperature: math.NaN()}} {
		if _, err := Generate(s, [][]int{{1}, {1}}, 3, 2, o); err == nil {
			t.Errorf("sampling %+v: no error", o)
		}
	}
	if _, err := Generate(s, [][]int{{1}, {}}, 3, 2, Sampling{}); err == nil {
		t.Error("empty prompt: no error")
	}
	if _, err := Generate(s, [][]int{{1}, {1, 1, 1, 1, 1, 1}}, 3, 2, Sampling{}); err == nil {
		t.Error("prompt over capacity: no error")
	}
}
