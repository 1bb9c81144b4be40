package infer

import (
	"math"
	"math/rand/v2"
	"testing"

	"mqa/layers"
	"mqa/models"
)

// smallLM is a random-weight test model: 4 query heads of width 8, 2 layers.
var smallLM = models.Config{Task: models.TaskLM, Vocab: 40, Dim: 32, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 8,
	FFDim: 48, Activation: "relu", Norm: "layer", Positions: "sinusoidal", MaxLen: 64, TieEmbeddings: true}

// smallMT is the encoder–decoder twin of smallLM.
var smallMT = models.Config{Task: models.TaskTranslate, Vocab: 40, Dim: 32, Layers: 2, EncoderLayers: 1, Heads: 4,
	KVHeads: 4, HeadDim: 8, FFDim: 48, Activation: "relu", Norm: "layer", Positions: "sinusoidal", MaxLen: 64,
	TieEmbeddings: true}

// randomParams builds cfg's parameters and adds noise to every one of them, so that norm
// gains, biases and all matrices are random (nothing is left at 0 or 1).
func randomParams(t testing.TB, cfg models.Config, seed uint64) *layers.Params {
	t.Helper()
	p, err := models.InitParams(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, n := range p.Names() {
		for i, x := range p.Get(n).Data().([]float32) {
			p.Get(n).Data().([]float32)[i] = x + float32(0.2*rng.NormFloat64())
		}
	}
	return p
}

// relErr is max|a−b| / max|b| over the rows where mask is true.
func relErr(a, b []float32, vocab int, mask []bool) float64 {
	var num, den float64
	for r, ok := range mask {
		if !ok {
			continue
		}
		for j := r * vocab; j < (r+1)*vocab; j++ {
			num = math.Max(num, math.Abs(float64(a[j])-float64(b[j])))
			den = math.Max(den, math.Abs(float64(b[j])))
		}
	}
	if den == 0 {
		return num
	}
	return num / den
}

func with(cfg models.Config, f func(*models.Config)) models.Config {
	f(&cfg)
	return cfg
}
