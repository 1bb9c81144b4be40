package ops_test

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/gradcheck"
	"mqa/layers/ops"
)

func TestGradients(t *testing.T) {
	step := uint64(3)
	cases := []struct {
		name  string
		build gradcheck.Build
	}{
		{"permute", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(1), "x", 1, 2, 3, 4, 5)
			y, err := ops.NewPermute(x, 2, 0, 3, 1)
			return y, []*G.Node{x}, err
		}},
		{"softmax causal window lengths", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(2), "x", 1, 4, 6, 5)
			lens := gradcheck.Ints(g, "lens", []int{5, 3})
			y, err := ops.Softmax{Scale: 0.7, Groups: 2, QueryLen: 3, KeyOffset: 2, Causal: true, Window: 3, HasLengths: true}.Apply(x, lens)
			return y, []*G.Node{x}, err
		}},
		{"softmax plain", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(3), "x", 1, 2, 3, 7)
			y, err := ops.Softmax{Scale: 1.3, Groups: 1, QueryLen: 3}.Apply(x, nil)
			return y, []*G.Node{x}, err
		}},
		{"layernorm", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			r := rng(4)
			x, gm, b := gradcheck.Param(g, r, "x", 2, 5, 8), gradcheck.Param(g, r, "gamma", 1, 8), gradcheck.Param(g, r, "beta", 1, 8)
			y, err := ops.Norm{Eps: 1e-5}.Apply(x, gm, b)
			return y, []*G.Node{x, gm, b}, err
		}},
		{"rmsnorm", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			r := rng(5)
			x, gm := gradcheck.Param(g, r, "x", 2, 5, 8), gradcheck.Param(g, r, "gamma", 1, 8)
			y, err := ops.Norm{RMS: true, Eps: 1e-6}.Apply(x, gm, nil)
			return y, []*G.Node{x, gm}, err
		}},
		{"relu", act(ops.ReLU)},
		{"gelu", act(ops.GELU)},
		{"gelu_tanh", act(ops.GELUTanh)},
		{"swiglu", act(ops.SwiGLU)},
		{"gather", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			table := gradcheck.Param(g, rng(6), "table", 1, 7, 4)
			ids := gradcheck.Ints(g, "ids", []int{3, 0, 3, 6, 1})
			y, err := ops.NewGather(table, ids, 1.7)
			return y, []*G.Node{table}, err
		}},
		{"bias", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			r := rng(7)
			x, b := gradcheck.Param(g, r, "x", 1, 4, 6), gradcheck.Param(g, r, "b", 1, 6)
			y, err := ops.NewBiasAdd(x, b)
			return y, []*G.Node{x, b}, err
		}},
		{"cross-entropy smoothed with padding", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(8), "logits", 2, 5, 9)
			tg := gradcheck.Ints(g, "targets", []int{4, 0, 8, 0, 2})
			y, err := ops.CrossEntropy{Smoothing: 0.1, Ignore: 0}.Apply(x, tg)
			return y, []*G.Node{x}, err
		}},
		{"rope", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(9), "x", 1, 4, 12)
			pos := gradcheck.Ints(g, "pos", []int{0, 5, 2, 17})
			y, err := ops.RoPE{HeadDim: 6, Base: 10000}.Apply(x, pos)
			return y, []*G.Node{x}, err
		}},
		{"dropout", func() (*G.Node, []*G.Node, error) {
			g := G.NewGraph()
			x := gradcheck.Param(g, rng(10), "x", 1, 6, 5)
			y, err := ops.Dropout{P: 0.3, Seed: 1, Site: 2, Step: &step}.Apply(x)
			return y, []*G.Node{x}, err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { gradcheck.Check(t, c.build, 40, 1, 1e-6) })
	}
}

func act(kind string) gradcheck.Build {
	return func() (*G.Node, []*G.Node, error) {
		g := G.NewGraph()
		x := gradcheck.Param(g, rng(11), "x", 1.5, 3, 8)
		y, err := ops.NewActivation(kind, x)
		return y, []*G.Node{x}, err
	}
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

// eval runs a graph once.
func eval(g *G.ExprGraph) error {
	m := G.NewTapeMachine(g)
	defer m.Close()
	return m.RunAll()
}

// run evaluates a one-op graph.
func run(t *testing.T, out *G.Node, g *G.ExprGraph) []float64 {
	t.Helper()
	if err := eval(g); err != nil {
		t.Fatal(err)
	}
	return out.Value().Data().([]float64)
}

func TestPermuteMatchesIndexing(t *testing.T) {
	g := G.NewGraph()
	x := gradcheck.Param(g, rng(12), "x", 1, 2, 3, 4)
	y, err := ops.NewPermute(x, 1, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, y, g)
	in := x.Value().Data().([]float64)
	for a := 0; a < 2; a++ {
		for b := 0; b < 3; b++ {
			for c := 0; c < 4; c++ {
				if got[(b*4+c)*2+a] != in[(a*3+b)*4+c] {
					t.Fatalf("y[%d,%d,%d] wrong", b, c, a)
				}
			}
		}
	}
}

func TestSoftmaxMask(t *testing.T) {
	// 1 sequence, 2 groups, 2 heads per group, 3 queries each, 4 keys; key offset 1.
	op := ops.Softmax{Scale: 1, Groups: 2, QueryLen: 3, KeyOffset: 1, Causal: true, Window: 2, HasLengths: true}
	g := G.NewGraph()
	x := gradcheck.Param(g, rng(13), "x", 1, 2, 6, 4)
	lens := gradcheck.Ints(g, "lens", []int{3})
	y, err := op.Apply(x, lens)
	if err != nil {
		t.Fatal(err)
	}
	p := run(t, y, g)
	for s := 0; s < 2; s++ {
		for r := 0; r < 6; r++ {
			i := r%3 + 1 // query position
			var sum float64
			for j := 0; j < 4; j++ {
				v := p[(s*6+r)*4+j]
				visible := j <= i && j > i-2 && j < 3
				if !visible && v != 0 {
					t.Errorf("slice %d row %d key %d: masked key has weight %g", s, r, j, v)
				}
				if visible && v <= 0 {
					t.Errorf("slice %d row %d key %d: visible key has weight %g", s, r, j, v)
				}
				sum += v
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Errorf("row sums to %g", sum)
			}
		}
	}
}

// The tanh-approximate GELU at a few points (x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³))),
// evaluated in float64 apart from this code), and within 5e-4 of the exact GELU there.
func TestGELUTanhValues(t *testing.T) {
	xs := []float64{-2, -0.5, 0, 1, 3}
	want := []float64{-0.04540230591222494, -0.15428599017485606, 0, 0.8411919906082768, 2.996362607918227}
	exact := []float64{-0.04550026389635842, -0.15426876936299344, 0, 0.8413447460685429, 2.99595030590511}
	g := G.NewGraph()
	x := G.NodeFromAny(g, tensor.New(tensor.WithShape(1, len(xs)), tensor.WithBacking(xs)), G.WithName("x"))
	y, err := ops.NewActivation(ops.GELUTanh, x)
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, y, g)
	for i := range xs {
		if math.Abs(got[i]-want[i]) > 1e-15 {
			t.Errorf("gelu_tanh(%g) = %.17g, want %.17g", xs[i], got[i], want[i])
		}
		if math.Abs(got[i]-exact[i]) > 5e-4 {
			t.Errorf("gelu_tanh(%g) = %g is %g from the exact GELU", xs[i], got[i], got[i]-exact[i])
		}
	}
}

func TestCrossEntropyValue(t *testing.T) {
	g := G.NewGraph()
	logits := G.NodeFromAny(g, tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float64{1, 2, 3, 0, 0, 0})), G.WithName("l"))
	tg := gradcheck.Ints(g, "t", []int{2, 1})
	y, err := ops.CrossEntropy{Ignore: -1}.Apply(logits, tg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eval(g); err != nil {
		t.Fatal(err)
	}
	want := ((math.Log(math.Exp(1)+math.Exp(2)+math.Exp(3)) - 3) + math.Log(3)) / 2
	if got := y.Value().Data().(float64); math.Abs(got-want) > 1e-12 {
		t.Errorf("loss %g, want %g", got, want)
	}
}

func TestBadIndices(t *testing.T) {
	g := G.NewGraph()
	table := gradcheck.Param(g, rng(14), "table", 1, 3, 2)
	ids := gradcheck.Ints(g, "ids", []int{1, 3})
	if _, err := ops.NewGather(table, ids, 1); err != nil {
		t.Fatal(err)
	}
	if err := eval(g); err == nil {
		t.Error("an id outside the table ran without error")
	}
}
