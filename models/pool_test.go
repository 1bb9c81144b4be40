package models

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers"
)

// poolLM: 4 query heads over 4 K/V heads of width 4, with RoPE and biases.
var poolLM = Config{Task: TaskLM, Vocab: 12, Dim: 8, Layers: 2, Heads: 4, KVHeads: 4, HeadDim: 4, FFDim: 16,
	Activation: "gelu", Norm: "rms", Positions: "rope", MaxLen: 8, TieEmbeddings: true, Bias: true}

// poolMT: an encoder–decoder with 4 heads of width 2, learned positions and biases.
var poolMT = Config{Task: TaskTranslate, Vocab: 12, Dim: 8, Layers: 1, EncoderLayers: 1, Heads: 4, KVHeads: 4, HeadDim: 2,
	FFDim: 16, Activation: "relu", Norm: "layer", Positions: "learned", MaxLen: 6, Bias: true}

// randomParams initialises cfg's parameters and overwrites every one (biases and norm
// gains too) with N(0, 0.5²) draws, so that no head looks like another.
func randomParams(t *testing.T, cfg Config, seed uint64) *layers.Params {
	t.Helper()
	p, err := InitParams(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, n := range p.Names() {
		xs := p.Get(n).Data().([]float32)
		for i := range xs {
			xs[i] = float32(rng.NormFloat64() * 0.5)
		}
	}
	return p
}

// forward returns the logits of a fixed batch of two sequences.
func forward(t *testing.T, cfg Config, p *layers.Params) []float32 {
	t.Helper()
	shape := Shape{Batch: 2, TgtLen: 3}
	if cfg.Task == TaskTranslate {
		shape.SrcLen = 4
	}
	g, err := Build(p, cfg, shape, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tokens, targets := []int{1, 4, 3, 1, 11, 2}, []int{4, 3, 2, 11, 2, 0}
	if cfg.Task == TaskTranslate {
		err = g.FeedTranslation([]int{5, 6, 7, 8, 9, 10, 0, 0}, []int{4, 2}, tokens, targets)
	} else {
		err = g.FeedLM(tokens, targets)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), g.Logits.Value().Data().([]float32)...)
}

func TestPoolKVHeadsToHeadCountIsExact(t *testing.T) {
	for _, cfg := range []Config{poolLM, poolMT} {
		t.Run(cfg.Task, func(t *testing.T) {
			p := randomParams(t, cfg, 3)
			before := forward(t, cfg, p)
			out, pooled, err := PoolKVHeads(cfg, p, cfg.Heads)
			if err != nil {
				t.Fatal(err)
			}
			if out != cfg {
				t.Fatalf("config changed: %+v", out)
			}
			after := forward(t, out, pooled)
			for i := range before {
				if before[i] != after[i] {
					t.Fatalf("logit %d: %g before pooling, %g after", i, before[i], after[i])
				}
			}
		})
	}
}

// kvRows runs attention layer name's key or value projection (RoPE included) on x
// [rows, Dim] at positions 0..rows−1 and returns [rows, KVHeads·HeadDim].
func kvRows(t *testing.T, cfg Config, p *layers.Params, name, which string, x []float32) []float32 {
	t.Helper()
	b := layers.NewGraph(p)
	rows := len(x) / cfg.Dim
	in := b.Input("x", rows, cfg.Dim)
	pos := b.Ints("pos", rows)
	y, err := Model{cfg}.Attention(name, !strings.HasSuffix(name, "cross_attn")).KVProjection(b, in, which, pos)
	if err != nil {
		t.Fatal(err)
	}
	positions := make([]int, rows)
	for i := range positions {
		positions[i] = i
	}
	if err := G.Let(in, tensor.New(tensor.WithShape(rows, cfg.Dim), tensor.WithBacking(x))); err != nil {
		t.Fatal(err)
	}
	if err := G.Let(pos, intTensor(positions)); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(b.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), y.Value().Data().([]float32)...)
}

// TestPooledHeadIsGroupMean checks, on random weights and inputs, that each pooled key
// and value head (RoPE and biases included) is the mean of its group's heads, in every
// attention layer of an LM and of a translation model, for MHA → GQA, MHA → MQA and GQA → MQA.
func TestPooledHeadIsGroupMean(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		from, to  int
		attention []string
	}{
		{"lm mha→gqa:2", poolLM, 4, 2, []string{"layers.0.self_attn", "layers.1.self_attn"}},
		{"lm mha→mqa", poolLM, 4, 1, []string{"layers.1.self_attn"}},
		{"lm gqa:2→mqa", poolLM, 2, 1, []string{"layers.0.self_attn"}},
		{"translate mha→gqa:2", poolMT, 4, 2, []string{"encoder.layers.0.self_attn", "decoder.layers.0.self_attn", "decoder.layers.0.cross_attn"}},
		{"translate mha→mqa", poolMT, 4, 1, []string{"decoder.layers.0.cross_attn"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.KVHeads = c.from
			p := randomParams(t, cfg, 5)
			out, pooled, err := PoolKVHeads(cfg, p, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if out.KVHeads != c.to || out.FFDim != cfg.FFDim {
				t.Fatalf("converted config has %d K/V heads and d_ff %d, want %d and %d", out.KVHeads, out.FFDim, c.to, cfg.FFDim)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			x := make([]float32, 5*cfg.Dim)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			r, dk := c.from/c.to, cfg.HeadDim
			for _, name := range c.attention {
				for _, which := range []string{"k", "v"} {
					old, got := kvRows(t, cfg, p, name, which, x), kvRows(t, out, pooled, name, which, x)
					for row := 0; row < 5; row++ {
						for g := 0; g < c.to; g++ {
							for col := 0; col < dk; col++ {
								var want float64
								for j := 0; j < r; j++ {
									want += float64(old[row*c.from*dk+(g*r+j)*dk+col]) / float64(r)
								}
								if v := got[row*c.to*dk+g*dk+col]; math.Abs(float64(v)-want) > 1e-5*(1+math.Abs(want)) {
									t.Fatalf("%s.%s row %d head %d column %d: pooled %g, group mean %g", name, which, row, g, col, v, want)
								}
							}
						}
					}
				}
			}
			for _, n := range p.Names() {
				if !isKVProjection(n) && !tensorsEqual(p.Get(n), pooled.Get(n)) {
					t.Errorf("%s changed, only K/V projections are pooled", n)
				}
			}
		})
	}
}

// TestPoolRecoversExpandedGQA builds an MHA model from a GQA model by copying each K/V head
// to every query head that shares it (the same function, checked on the logits), and pools
// it back: the GQA weights must come back bit for bit. Pooling the wrong heads together
// would not give them back.
func TestPoolRecoversExpandedGQA(t *testing.T) {
	for _, base := range []Config{poolLM, poolMT} {
		t.Run(base.Task, func(t *testing.T) {
			gqa := base
			gqa.KVHeads = 2
			p := randomParams(t, gqa, 11)
			mha := base
			expanded := layers.NewParams(tensor.Float32, 0)
			for _, n := range p.Names() {
				v := p.Get(n)
				if isKVProjection(n) {
					v = repeatHeads(v, gqa.Heads/gqa.KVHeads, gqa.HeadDim)
				}
				if err := expanded.Set(n, v); err != nil {
					t.Fatal(err)
				}
			}
			want, got := forward(t, gqa, p), forward(t, mha, expanded)
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("logit %d: expanded MHA %g, GQA %g", i, got[i], want[i])
				}
			}
			out, pooled, err := PoolKVHeads(mha, expanded, 2)
			if err != nil {
				t.Fatal(err)
			}
			if out != gqa {
				t.Fatalf("pooled config %+v, want %+v", out, gqa)
			}
			for _, n := range p.Names() {
				if !tensorsEqual(p.Get(n), pooled.Get(n)) {
					t.Errorf("%s: pooling the expanded heads does not give the GQA weights back", n)
				}
			}
		})
	}
}

// repeatHeads copies each head of width dk along the last axis r times.
func repeatHeads(t *tensor.Dense, r, dk int) *tensor.Dense {
	xs := t.Data().([]float32)
	shape := t.Shape()
	width := shape[len(shape)-1]
	var ys []float32
	for row := 0; row < len(xs)/width; row++ {
		for h := 0; h < width/dk; h++ {
			head := xs[row*width+h*dk : row*width+(h+1)*dk]
			for j := 0; j < r; j++ {
				ys = append(ys, head...)
			}
		}
	}
	newShape := append(tensor.Shape(nil), shape...)
	newShape[len(newShape)-1] = width * r
	return tensor.New(tensor.WithShape(newShape...), tensor.WithBacking(ys))
}

func tensorsEqual(a, b *tensor.Dense) bool {
	if a == nil || b == nil || !a.Shape().Eq(b.Shape()) {
		return false
	}
	x, y := a.Data().([]float32), b.Data().([]float32)
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func TestPoolKVHeadsErrors(t *testing.T) {
	gqa := poolLM
	gqa.KVHeads = 2
	p := randomParams(t, gqa, 1)
	for _, c := range []struct {
		kv   int
		want string
	}{{0, "cannot be pooled into 0"}, {4, "cannot be pooled into 4"}, {3, "cannot be pooled into 3"}} {
		if _, _, err := PoolKVHeads(gqa, p, c.kv); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("pooling 2 K/V heads into %d: error %v, want one containing %q", c.kv, err, c.want)
		}
	}
	mismatched := poolLM // the parameters are those of the GQA model
	if _, _, err := PoolKVHeads(mismatched, p, 2); err == nil || !strings.Contains(err.Error(), "layers.0.self_attn.k.weight") {
		t.Errorf("parameters that do not fit the config: error %v, want one naming the K projection", err)
	}
}
