package infer

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mqa/models"
)

// rankedStepper makes a Stepper a Ranker and a Sampler by ranking its logits on the host with
// TopK and drawing with SampleRow, and counts its calls of each kind and the k it is asked for.
type rankedStepper struct {
	Stepper
	steps, topKSteps, sampleSteps int
	ks                            []int // the distinct k of the StepTopK calls
}

func (s *rankedStepper) StepSample(tokens []int, temperature float64, u []float64) ([]int, error) {
	s.sampleSteps++
	logits, err := s.Stepper.Step(tokens)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(tokens))
	for b := range ids {
		ids[b] = SampleRow(logits[b*s.Vocab():(b+1)*s.Vocab()], temperature, u[b])
	}
	return ids, nil
}

func (s *rankedStepper) Step(tokens []int) ([]float32, error) {
	s.steps++
	return s.Stepper.Step(tokens)
}

func (s *rankedStepper) StepTopK(tokens []int, k int) ([]int, []float32, error) {
	if k < 1 || k > min(MaxTopK, s.Vocab()) {
		return nil, nil, fmt.Errorf("top-%d asked of a vocabulary of %d", k, s.Vocab())
	}
	s.topKSteps++
	if !slices.Contains(s.ks, k) {
		s.ks = append(s.ks, k)
	}
	logits, err := s.Stepper.Step(tokens)
	if err != nil {
		return nil, nil, err
	}
	ids, logp := TopK(logits, s.Vocab(), k)
	return ids, logp, nil
}

// checkPath fails unless the stepper was driven only through StepTopK with k want (path
// "ranked"), only through StepSample ("sampled") or only through Step ("host").
func (s *rankedStepper) checkPath(t *testing.T, path string, want int) {
	t.Helper()
	got := map[string]int{"ranked": s.topKSteps, "sampled": s.sampleSteps, "host": s.steps}
	for p, n := range got {
		if (p == path) != (n > 0) {
			t.Errorf("%s path wanted: %d Step, %d StepTopK (k %v) and %d StepSample calls", path, s.steps, s.topKSteps, s.ks, s.sampleSteps)
			return
		}
	}
	if path == "ranked" && !slices.Equal(s.ks, []int{want}) {
		t.Errorf("StepTopK asked for k %v, want %d", s.ks, want)
	}
}

// topKBruteForce ranks each row by sorting it whole.
func topKBruteForce(logits []float32, vocab, k int) ([]int, []float64) {
	var ids []int
	var logp []float64
	for r := 0; r < len(logits)/vocab; r++ {
		row := logits[r*vocab : (r+1)*vocab]
		order := make([]int, vocab)
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			if c := cmp.Compare(row[b], row[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v))
		}
		for _, id := range order[:k] {
			ids = append(ids, id)
			logp = append(logp, float64(row[id])-math.Log(sum))
		}
	}
	return ids, logp
}

func TestTopK(t *testing.T) {
	// rows makes n rows of vocab logits: continuous, rounded to halves (many ties), constant,
	// and continuous around 30 (large logits).
	rows := func(vocab int, seed uint64) []float32 {
		rng := rand.New(rand.NewPCG(seed, 7))
		var out []float32
		for kind := range 4 {
			for range vocab {
				x := 3 * rng.NormFloat64()
				switch kind {
				case 1:
					x = math.Round(2*x) / 2
				case 2:
					x = 1.25
				case 3:
					x += 30
				}
				out = append(out, float32(x))
			}
		}
		return out
	}
	cases := []struct{ vocab, k int }{
		{3, 1}, {3, 3}, {100, 1}, {100, 7}, {100, MaxTopK}, {100, 100}, {8192, 1}, {8192, MaxTopK},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("vocab %d k %d", c.vocab, c.k), func(t *testing.T) {
			logits := rows(c.vocab, uint64(i))
			ids, logp := TopK(logits, c.vocab, c.k)
			wantIDs, wantLogp := topKBruteForce(logits, c.vocab, c.k)
			if !slices.Equal(ids, wantIDs) {
				t.Fatalf("ids %v, want %v", ids, wantIDs)
			}
			ties := 0
			for j, lp := range logp {
				if math.Abs(float64(lp)-wantLogp[j]) > 1e-5*math.Max(1, math.Abs(wantLogp[j])) {
					t.Errorf("candidate %d (token %d): log-probability %g, want %g", j, ids[j], lp, wantLogp[j])
				}
				if j%c.k > 0 && logits[j/c.k*c.vocab+ids[j]] == logits[j/c.k*c.vocab+ids[j-1]] {
					ties++
				}
			}
			if c.k > 1 && ties == 0 {
				t.Error("no tied logits among the candidates: the test data lacks ties")
			}
			if c.k == c.vocab {
				for r := range len(logits) / c.vocab {
					var sum float64
					for _, lp := range logp[r*c.k : (r+1)*c.k] {
						sum += math.Exp(float64(lp))
					}
					if math.Abs(sum-1) > 1e-5 {
						t.Errorf("row %d: probabilities sum to %g", r, sum)
					}
				}
			}
		})
	}
}

func BenchmarkTopK(b *testing.B) {
	const vocab, rows = 8192, 8
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, rows*vocab)
	for i := range logits {
		logits[i] = float32(3 * rng.NormFloat64())
	}
	for b.Loop() {
		TopK(logits, vocab, MaxTopK)
	}
}

// TestRankedGenerate: Generate through a Ranker chooses the tokens it chooses from whole
// rows, and steps with StepTopK exactly when the choice needs only the best k tokens.
func TestRankedGenerate(t *testing.T) {
	cfg := with(smallLM, func(c *models.Config) { c.Vocab, c.KVHeads = 100, 2 })
	cpu, err := NewCPU(cfg, randomParams(t, cfg, 31), false)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{{5, 6, 7}, {8}, {9, 10, 11, 12, 13}}
	cases := []struct {
		name string
		opt  Sampling
		path string
		k    int
	}{
		{"greedy", Sampling{}, "ranked", 1},
		{"greedy ignores top-k", Sampling{TopK: 80}, "ranked", 1},
		{"top-k 5 top-p 0.9", Sampling{Temperature: 0.8, TopK: 5, TopP: 0.9, Seed: 7}, "ranked", 5},
		{"top-k MaxTopK", Sampling{Temperature: 1.2, TopK: MaxTopK, Seed: 3}, "ranked", MaxTopK},
		{"top-k 0 top-p 0.9", Sampling{Temperature: 0.8, TopP: 0.9, Seed: 7}, "host", 0},
		{"top-k over MaxTopK", Sampling{Temperature: 1.2, TopK: MaxTopK + 1, Seed: 3}, "host", 0},
		{"unrestricted", Sampling{Temperature: 0.9, Seed: 5}, "sampled", 0},
		{"top-k the vocabulary, top-p 1", Sampling{Temperature: 1.1, TopK: 100, TopP: 1, Seed: 6}, "sampled", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plain, err := cpu.LM(len(prompts), 40)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Generate(plain, prompts, 20, 2, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			s, err := cpu.LM(len(prompts), 40)
			if err != nil {
				t.Fatal(err)
			}
			r := &rankedStepper{Stepper: s}
			got, err := Generate(r, prompts, 20, 2, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			r.checkPath(t, c.path, c.k)
			if !slices.EqualFunc(got, want, slices.Equal[[]int]) {
				t.Errorf("ranked %v, host %v", got, want)
			}
			if n := len(want[0]) + len(want[1]) + len(want[2]); n < 10 {
				t.Errorf("only %d tokens generated: %v", n, want)
			}
		})
	}
}

// TestRankedBeamSearch: beam search through a Ranker finds the hypotheses it finds from
// whole rows, stepping with StepTopK(tokens, 2·Size) when 2·Size fits.
func TestRankedBeamSearch(t *testing.T) {
	cfg := with(smallMT, func(c *models.Config) { c.KVHeads = 1 })
	cpu, err := NewCPU(cfg, randomParams(t, cfg, 32), false)
	if err != nil {
		t.Fatal(err)
	}
	srcs := [][]int{{5, 6, 7, 8}, {9, 10}, {11, 12, 13, 14, 15, 16, 17, 18, 19}}
	for _, beam := range []int{1, 3, 4, 21} {
		path := "host"
		if 2*beam <= min(MaxTopK, cfg.Vocab) {
			path = "ranked"
		}
		t.Run(fmt.Sprintf("beam %d", beam), func(t *testing.T) {
			opt := Beam{Size: beam, Alpha: 0.6, MaxLen: 12, BOS: 1, EOS: 2}
			plain, err := cpu.Translation(srcs, beam, opt.MaxLen)
			if err != nil {
				t.Fatal(err)
			}
			want, err := BeamSearch(plain, len(srcs), opt)
			if err != nil {
				t.Fatal(err)
			}
			s, err := cpu.Translation(srcs, beam, opt.MaxLen)
			if err != nil {
				t.Fatal(err)
			}
			r := &rankedStepper{Stepper: s}
			got, err := BeamSearch(r, len(srcs), opt)
			if err != nil {
				t.Fatal(err)
			}
			r.checkPath(t, path, 2*beam)
			for i := range srcs {
				g, w := got[i], want[i]
				if !slices.Equal(g.Tokens, w.Tokens) || math.Abs(g.Score-w.Score) > 1e-5*math.Abs(w.Score) ||
					math.Abs(g.Normalized-w.Normalized) > 1e-5*math.Abs(w.Normalized) {
					t.Errorf("source %d: ranked %v (%.7f, %.7f), host %v (%.7f, %.7f)", i, g.Tokens, g.Score, g.Normalized,
						w.Tokens, w.Score, w.Normalized)
				}
				if w.Score == 0 || len(w.Tokens) == 0 {
					t.Errorf("source %d: degenerate hypothesis %+v", i, w)
				}
			}
		})
	}
}

// SampleRow draws each token with its softmax probability at the temperature: over u on a
// fine grid, every token's share of the draws matches its probability; −Inf logits are never
// drawn, and u just below 1 draws the last token that has weight.
func TestSampleRow(t *testing.T) {
	logits := []float32{1, 3, float32(math.Inf(-1)), 0.5, 3, -2}
	for _, temp := range []float64{0.5, 1, 3} {
		var w []float64
		var total float64
		for _, x := range logits {
			e := math.Exp((float64(x) - 3) / temp)
			w, total = append(w, e), total+e
		}
		const n = 100000
		counts := make([]int, len(logits))
		for i := range n {
			counts[SampleRow(logits, temp, (float64(i)+0.5)/n)]++
		}
		for j, c := range counts {
			if want := n * w[j] / total; math.Abs(float64(c)-want) > 1.5 {
				t.Errorf("temperature %g: token %d drawn %d times of %d, want %.1f", temp, j, c, n, want)
			}
		}
		if got := SampleRow(logits, temp, math.Nextafter(1, 0)); got != 5 {
			t.Errorf("temperature %g: u just below 1 drew %d, want the last token 5", temp, got)
		}
	}
}
