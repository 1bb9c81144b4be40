package infer

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	G "gorgonia.org/gorgonia"

	"mqa/layers/program"
	"mqa/models"
)

// tapeRunner runs a graph with Gorgonia's TapeMachine, which allocates every value afresh
// at each run: the reference the program is compared with.
type tapeRunner struct{ vm G.VM }

func newTape(g *G.ExprGraph) (runner, error) { return tapeRunner{G.NewTapeMachine(g)}, nil }

func (t tapeRunner) Run() error {
	t.vm.Reset()
	return t.vm.RunAll()
}

func (t tapeRunner) Value(n *G.Node) (G.Value, error) { return n.Value(), nil }

// Bytes is 0: the tests need no bound on the TapeMachines they keep.
func (t tapeRunner) Bytes() int64 { return 0 }

// TestProgramMatchesTapeMachine decodes with programs and with TapeMachines side by side —
// cached steps (with the encoder for translation) and full recomputation — over rows of
// different prompt lengths, one of which finishes early, with a reordering of the rows in
// between as beam search does, and wants the same logits bit for bit at every step.
func TestProgramMatchesTapeMachine(t *testing.T) {
	cases := []struct {
		name string
		cfg  models.Config
	}{
		{"lm mha", smallLM},
		{"lm mqa", with(smallLM, func(c *models.Config) { c.KVHeads = 1 })},
		{"translate mha", smallMT},
		{"translate mqa", with(smallMT, func(c *models.Config) { c.KVHeads = 1 })},
	}
	for i, c := range cases {
		for _, noCache := range []bool{false, true} {
			name := c.name + " cached"
			if noCache {
				name = c.name + " full"
			}
			t.Run(name, func(t *testing.T) {
				params := randomParams(t, c.cfg, uint64(i+1))
				prog, err := NewCPU(c.cfg, params, noCache)
				if err != nil {
					t.Fatal(err)
				}
				tape, _ := NewCPU(c.cfg, params, noCache)
				tape.compile = newTape
				prompts := [][]int{{5}, {7, 8, 9, 10}}
				var steppers [2]Stepper
				for k, cpu := range []*CPU{prog, tape} {
					if c.cfg.Task == models.TaskLM {
						steppers[k], err = cpu.LM(4, 16)
					} else {
						steppers[k], err = cpu.Translation(prompts, 2, 16)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				compareSteps(t, steppers[0], steppers[1], rand.New(rand.NewPCG(uint64(i), 11)))
			})
		}
	}
}

// compareSteps drives two steppers over four rows with the same tokens for six steps (row 0
// finishes after three; the rows are reordered after two) and wants the same logits bit for
// bit on every active row.
func compareSteps(t *testing.T, prog, tape Stepper, rng *rand.Rand) {
	t.Helper()
	vocab := prog.Vocab()
	prompts := [][]int{{5}, {7, 8, 9, 10}, {3, 4}, {6}}
	tokens := make([]int, len(prompts))
	for s := range 6 {
		for r := range tokens {
			switch {
			case r == 0 && s >= 3:
				tokens[r] = -1
			case s < len(prompts[r]):
				tokens[r] = prompts[r][s]
			default:
				tokens[r] = 3 + rng.IntN(vocab-3)
			}
		}
		got, err := prog.Step(tokens)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tape.Step(tokens)
		if err != nil {
			t.Fatal(err)
		}
		nonzero := 0
		for r, tok := range tokens {
			if tok < 0 {
				continue
			}
			for j := r * vocab; j < (r+1)*vocab; j++ {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("step %d, row %d, logit %d: program %v, TapeMachine %v", s, r, j-r*vocab, got[j], want[j])
				}
				if want[j] != 0 {
					nonzero++
				}
			}
		}
		if nonzero == 0 {
			t.Fatalf("step %d: every logit is 0", s)
		}
		if s == 2 {
			parents := []int{0, 3, 1, 1}
			if err := prog.Reorder(parents); err != nil {
				t.Fatal(err)
			}
			if err := tape.Reorder(parents); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDecodeGraphBudget: translating sources of several lengths, one at a time, with graph
// caches that keep only the last graph of each kind gives the same outputs as with the
// default budget, and the small caches end with one graph each.
func TestDecodeGraphBudget(t *testing.T) {
	cfg := with(smallMT, func(c *models.Config) { c.KVHeads = 1 })
	params := randomParams(t, cfg, 41)
	srcs := [][]int{{5, 6, 7, 8}, {9, 10}, {11, 12, 13, 14, 15, 16, 17}, {5, 6, 7, 8}}
	var outs [2][][]int
	var small *CPU
	for j, budget := range []int64{0, 1} {
		cpu, err := NewCPU(cfg, params, false)
		if err != nil {
			t.Fatal(err)
		}
		if budget > 0 {
			small = cpu
			cpu.steps = program.NewCache[[3]int](budget, func(s *compiledStep) int64 { return s.exec.Bytes() })
			cpu.encoders = program.NewCache[[2]int](budget, func(e *compiledEncoder) int64 { return e.exec.Bytes() })
		}
		for _, src := range srcs {
			s, err := cpu.Translation([][]int{src}, 1, 20)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Generate(s, [][]int{{1}}, 20, 2, Sampling{})
			if err != nil {
				t.Fatal(err)
			}
			outs[j] = append(outs[j], out...)
		}
	}
	if !reflect.DeepEqual(outs[0], outs[1]) {
		t.Errorf("outputs differ: default budget %v, graphs rebuilt %v", outs[0], outs[1])
	}
	if small.steps.Len() != 1 || small.encoders.Len() != 1 {
		t.Errorf("small caches hold %d step and %d encoder graphs, want 1 each", small.steps.Len(), small.encoders.Len())
	}
}
