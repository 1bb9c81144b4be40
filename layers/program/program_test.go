package program

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"

	"mqa/models"
)

// tinyCfg is a two-layer, 32-wide model with 4 query heads and kv key/value heads.
func tinyCfg(task string, vocab, kv int) models.Config {
	return models.Config{Task: task, Vocab: vocab, Dim: 32, Layers: 2, EncoderLayers: map[bool]int{true: 1}[task == models.TaskTranslate],
		Heads: 4, KVHeads: kv, HeadDim: 8, FFDim: 64, Activation: "relu", Norm: "layer", Positions: "sinusoidal",
		MaxLen: 32, TieEmbeddings: true}
}

// TestProgramMatchesTapeMachine runs training graphs with a program and with Gorgonia's
// TapeMachine on several batches in turn (so the program's kept values hold the previous
// batch's numbers, and padding and dropout masks change between runs) and wants the same loss
// and gradients, bit for bit; the program's cross-entropy gradient takes the loss's
// exponentials.
func TestProgramMatchesTapeMachine(t *testing.T) {
	lm := tinyCfg(models.TaskLM, 40, 4)
	lm.Dropout = 0.1
	gqa := tinyCfg(models.TaskLM, 40, 2)
	gqa.Activation, gqa.Norm, gqa.Positions, gqa.Bias, gqa.TieEmbeddings = "swiglu", "rms", "rope", true, false
	gqa.Window = 5
	tr := tinyCfg(models.TaskTranslate, 40, 1)
	tr.Activation, tr.Positions, tr.Dropout = "gelu", "learned", 0.1
	for name, cfg := range map[string]models.Config{"lm": lm, "gqa": gqa, "translate": tr} {
		t.Run(name, func(t *testing.T) {
			params, err := models.InitParams(cfg, 10)
			if err != nil {
				t.Fatal(err)
			}
			shape := models.Shape{Batch: 3, TgtLen: 7}
			if cfg.Task == models.TaskTranslate {
				shape.SrcLen = 6
			}
			var dropoutStep uint64
			g, err := models.Build(params, cfg, shape, models.Options{Train: true, LabelSmoothing: 0.1, DropoutSeed: 10, DropoutStep: &dropoutStep})
			if err != nil {
				t.Fatal(err)
			}
			grads, err := G.Grad(g.Loss, g.ParamNodes()...)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(g.G)
			defer vm.Close()
			prog, err := New(g.G)
			if err != nil {
				t.Fatal(err)
			}
			paired := 0
			for _, s := range prog.steps {
				if s.exps != nil {
					paired++
				}
			}
			if paired != 2 {
				t.Fatalf("%d nodes share the cross-entropy's exponentials, want 2 (the loss and its gradient)", paired)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for run := range 3 {
				dropoutStep = uint64(run)
				if err := feedRandom(g, rng); err != nil {
					t.Fatal(err)
				}
				vm.Reset()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				want := [][]float32{{g.Loss.Value().Data().(float32)}}
				for _, n := range grads {
					want = append(want, append([]float32(nil), n.Value().Data().([]float32)...))
				}
				if err := prog.Run(); err != nil {
					t.Fatal(err)
				}
				loss, err := prog.Value(g.Loss)
				if err != nil {
					t.Fatal(err)
				}
				got := [][]float32{{loss.Data().(float32)}}
				for _, n := range grads {
					v, err := prog.Value(n)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, v.Data().([]float32))
				}
				for i := range want {
					for j := range want[i] {
						if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
							t.Fatalf("run %d, output %d (0 = loss), element %d: program %v, TapeMachine %v", run, i, j, got[i][j], want[i][j])
						}
					}
				}
				if want[0][0] == 0 || math.IsNaN(float64(want[0][0])) {
					t.Fatalf("run %d: loss %v", run, want[0][0])
				}
			}
		})
	}
}

// feedRandom feeds a graph a batch of ids in 1..vocab−1; a translation batch's rows have
// source and target lengths between half and all of the shape's, the rest padding.
func feedRandom(g *models.Graph, rng *rand.Rand) error {
	s, vocab := g.Shape, g.Cfg.Vocab
	tokens, targets := make([]int, s.Batch*s.TgtLen), make([]int, s.Batch*s.TgtLen)
	var src, srcLens []int
	for i := range s.Batch {
		n := s.TgtLen
		if s.SrcLen > 0 {
			n -= rng.IntN(s.TgtLen/2 + 1)
			l := s.SrcLen - rng.IntN(s.SrcLen/2+1)
			srcLens = append(srcLens, l)
			for j := range s.SrcLen {
				id := 0
				if j < l {
					id = 1 + rng.IntN(vocab-1)
				}
				src = append(src, id)
			}
		}
		for j := range n {
			tokens[i*s.TgtLen+j] = 1 + rng.IntN(vocab-1)
			targets[i*s.TgtLen+j] = 1 + rng.IntN(vocab-1)
		}
	}
	if s.SrcLen > 0 {
		return g.FeedTranslation(src, srcLens, tokens, targets)
	}
	return g.FeedLM(tokens, targets)
}
