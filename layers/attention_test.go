package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/gradcheck"
)

// attnCase is one attention configuration under test.
type attnCase struct {
	name          string
	heads, kv     int
	causal        bool
	window        int
	cross, padded bool
	rope          bool
}

var attnCases = []attnCase{
	{name: "mha self", heads: 4, kv: 4},
	{name: "mqa causal", heads: 4, kv: 1, causal: true},
	{name: "gqa causal window", heads: 4, kv: 2, causal: true, window: 2},
	{name: "mha padded", heads: 2, kv: 2, padded: true},
	{name: "mqa cross padded", heads: 4, kv: 1, cross: true, padded: true},
	{name: "gqa cross", heads: 6, kv: 3, cross: true},
	{name: "mqa causal rope", heads: 4, kv: 1, causal: true, rope: true},
}

const (
	tBatch, tT, tS, tDim, tDK = 2, 3, 4, 6, 2
)

// buildAttn builds the attention of case c over random inputs in float64.
func buildAttn(c attnCase, g *Graph, rng *rand.Rand) (out, x, mem *G.Node, a Attention, s Shape, lens []int) {
	a = Attention{Name: "attn", Dim: tDim, Heads: c.heads, KVHeads: c.kv, HeadDim: tDK, Bias: true, Causal: c.causal, Window: c.window, RoPE: c.rope}
	x = gradcheck.Param(g.G, rng, "x", 1, tBatch*tT, tDim)
	mem, keyLen := x, tT
	if c.cross {
		mem, keyLen = gradcheck.Param(g.G, rng, "mem", 1, tBatch*tS, tDim), tS
	}
	s = Shape{Batch: tBatch, QueryLen: tT, KeyLen: keyLen}
	if c.padded {
		lens = []int{keyLen, keyLen - 1}
		s.KeyLens = gradcheck.Ints(g.G, "lens", lens)
	}
	if c.rope {
		s.QueryPos = gradcheck.Ints(g.G, "qpos", positions(tBatch, tT))
		s.KeyPos = gradcheck.Ints(g.G, "kpos", positions(tBatch, keyLen))
	}
	var err error
	if out, err = a.Forward(g, x, mem, s); err != nil {
		panic(err)
	}
	return out, x, mem, a, s, lens
}

func positions(batch, n int) []int {
	p := make([]int, 0, batch*n)
	for b := 0; b < batch; b++ {
		for i := 0; i < n; i++ {
			p = append(p, i)
		}
	}
	return p
}

func TestAttentionGradients(t *testing.T) {
	for i, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			gradcheck.Check(t, func() (*G.Node, []*G.Node, error) {
				b := NewGraph(NewParams(tensor.Float64, uint64(i)))
				out, x, mem, _, _, _ := buildAttn(c, b, rand.New(rand.NewPCG(uint64(i), 1)))
				wrt := append(b.ParamNodes(), x)
				if c.cross {
					wrt = append(wrt, mem)
				}
				return out, wrt, nil
			}, 12, uint64(i), 1e-5)
		})
	}
}

// runGraph evaluates the graph once.
func runGraph(t *testing.T, g *Graph) {
	t.Helper()
	m := G.NewTapeMachine(g.G)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
}

func vals(n *G.Node) []float64 { return n.Value().Data().([]float64) }

// TestAttentionReference compares with a direct loop implementation of the paper's
// MultiheadAttentionBatched / MultiqueryAttentionBatched, generalised to groups.
func TestAttentionReference(t *testing.T) {
	for i, c := range attnCases {
		if c.rope {
			continue // the reference has no rotary positions; RoPE is checked by its own op tests
		}
		t.Run(c.name, func(t *testing.T) {
			g := NewGraph(NewParams(tensor.Float64, uint64(i)))
			out, x, mem, a, s, lens := buildAttn(c, g, rand.New(rand.NewPCG(uint64(i), 2)))
			runGraph(t, g)
			p := func(name string) []float64 { return g.Params().Get(name).Data().([]float64) }
			want := referenceAttention(a, s, lens, vals(x), vals(mem),
				p("attn.q.weight"), p("attn.q.bias"), p("attn.k.weight"), p("attn.k.bias"),
				p("attn.v.weight"), p("attn.v.bias"), p("attn.o.weight"), p("attn.o.bias"))
			got := vals(out)
			for j := range want {
				if math.Abs(got[j]-want[j]) > 1e-10*math.Max(1, math.Abs(want[j])) {
					t.Fatalf("output %d: got %.12g want %.12g", j, got[j], want[j])
				}
			}
		})
	}
}

func referenceAttention(a Attention, s Shape, lens []int, x, mem, wq, bq, wk, bk, wv, bv, wo, bo []float64) []float64 {
	d, h, kv, dk := a.Dim, a.Heads, a.KVHeads, a.HeadDim
	proj := func(in []float64, rows int, w, bias []float64, out int) []float64 {
		y := make([]float64, rows*out)
		for r := 0; r < rows; r++ {
			for o := 0; o < out; o++ {
				v := bias[o]
				for i := 0; i < d; i++ {
					v += in[r*d+i] * w[i*out+o]
				}
				y[r*out+o] = v
			}
		}
		return y
	}
	T, S := s.QueryLen, s.KeyLen
	q := proj(x, s.Batch*T, wq, bq, h*dk)
	k := proj(mem, s.Batch*S, wk, bk, kv*dk)
	v := proj(mem, s.Batch*S, wv, bv, kv*dk)
	o := make([]float64, s.Batch*T*h*dk)
	for bi := 0; bi < s.Batch; bi++ {
		for head := 0; head < h; head++ {
			kh := head / (h / kv) // the K/V head this query head reads
			for i := 0; i < T; i++ {
				logits := make([]float64, S)
				maxv := math.Inf(-1)
				for j := 0; j < S; j++ {
					visible := (!a.Causal || j <= i) && (a.Window == 0 || j > i-a.Window) && (lens == nil || j < lens[bi])
					if !visible {
						logits[j] = math.Inf(-1)
						continue
					}
					var dot float64
					for c := 0; c < dk; c++ {
						dot += q[(bi*T+i)*h*dk+head*dk+c] * k[(bi*S+j)*kv*dk+kh*dk+c]
					}
					logits[j] = dot / math.Sqrt(float64(dk))
					maxv = math.Max(maxv, logits[j])
				}
				var sum float64
				for j := range logits {
					logits[j] = math.Exp(logits[j] - maxv)
					sum += logits[j]
				}
				for j := range logits {
					for c := 0; c < dk; c++ {
						o[(bi*T+i)*h*dk+head*dk+c] += logits[j] / sum * v[(bi*S+j)*kv*dk+kh*dk+c]
					}
				}
			}
		}
	}
	y := make([]float64, s.Batch*T*d)
	for r := 0; r < s.Batch*T; r++ {
		for c := 0; c < d; c++ {
			val := bo[c]
			for i := 0; i < h*dk; i++ {
				val += o[r*h*dk+i] * wo[i*d+c]
			}
			y[r*d+c] = val
		}
	}
	return y
}

// TestGroupedEqualsReplicatedMHA checks that GQA with g K/V heads equals MHA whose K/V
// weights are each group's K/V weights repeated for every query head of the group.
func TestGroupedEqualsReplicatedMHA(t *testing.T) {
	for _, kv := range []int{1, 2, 4} {
		g := NewGraph(NewParams(tensor.Float64, 5))
		c := attnCase{heads: 4, kv: kv, causal: true}
		out, x, _, _, _, _ := buildAttn(c, g, rand.New(rand.NewPCG(5, 5)))
		runGraph(t, g)

		mg := NewGraph(NewParams(tensor.Float64, 6))
		r := 4 / kv
		for _, name := range g.Params().Names() {
			src := g.Params().Get(name).Data().([]float64)
			if name == "attn.k.weight" || name == "attn.v.weight" || name == "attn.k.bias" || name == "attn.v.bias" {
				rows := 1
				if len(g.Params().Get(name).Shape()) == 2 {
					rows = tDim
				}
				w := make([]float64, 0, rows*4*tDK)
				for row := 0; row < rows; row++ {
					for head := 0; head < 4; head++ {
						start := row*kv*tDK + (head/r)*tDK
						w = append(w, src[start:start+tDK]...)
					}
				}
				shape := []int{4 * tDK}
				if rows > 1 {
					shape = []int{rows, 4 * tDK}
				}
				must(t, mg.Params().Set(name, tensor.New(tensor.WithShape(shape...), tensor.WithBacking(w))))
				continue
			}
			must(t, mg.Params().Set(name, tensor.New(tensor.WithShape(g.Params().Get(name).Shape()...), tensor.WithBacking(append([]float64(nil), src...)))))
		}
		a := Attention{Name: "attn", Dim: tDim, Heads: 4, KVHeads: 4, HeadDim: tDK, Bias: true, Causal: true}
		mx := G.NodeFromAny(mg.G, tensor.New(tensor.WithShape(tBatch*tT, tDim), tensor.WithBacking(append([]float64(nil), vals(x)...))))
		mout, err := a.Forward(mg, mx, mx, Shape{Batch: tBatch, QueryLen: tT, KeyLen: tT})
		must(t, err)
		runGraph(t, mg)
		for i, v := range vals(out) {
			if math.Abs(v-vals(mout)[i]) > 1e-12 {
				t.Fatalf("kv=%d: output %d differs: %g vs %g", kv, i, v, vals(mout)[i])
			}
		}
	}
}

// TestCausalBlocksFuture changes the last position's input and checks earlier outputs stay.
func TestCausalBlocksFuture(t *testing.T) {
	for _, kv := range []int{1, 2, 4} {
		run := func(perturb bool) []float64 {
			g := NewGraph(NewParams(tensor.Float64, 9))
			out, x, _, _, _, _ := buildAttn(attnCase{heads: 4, kv: kv, causal: true}, g, rand.New(rand.NewPCG(9, 9)))
			if perturb {
				xs := vals(x)
				for b := 0; b < tBatch; b++ {
					for c := 0; c < tDim; c++ {
						xs[(b*tT+tT-1)*tDim+c] += 3
					}
				}
			}
			runGraph(t, g)
			return append([]float64(nil), vals(out)...)
		}
		base, changed := run(false), run(true)
		for b := 0; b < tBatch; b++ {
			for i := 0; i < tT; i++ {
				for c := 0; c < tDim; c++ {
					j := (b*tT+i)*tDim + c
					same := base[j] == changed[j]
					if i < tT-1 && !same {
						t.Fatalf("kv=%d: position %d changed when only the last input did", kv, i)
					}
					if i == tT-1 && same && c == 0 {
						t.Fatalf("kv=%d: the last position did not change", kv)
					}
				}
			}
		}
	}
}

func TestAttentionBadHeads(t *testing.T) {
	a := Attention{Name: "attn", Dim: 8, Heads: 4, KVHeads: 3, HeadDim: 2}
	if err := a.Validate(); err == nil {
		t.Error("4 heads over 3 kv heads accepted")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
