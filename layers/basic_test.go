package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"mqa/layers/gradcheck"
)

func TestLayerGradients(t *testing.T) {
	step := uint64(1)
	cases := []struct {
		name  string
		build func(b *Graph, x *G.Node) (*G.Node, error)
	}{
		{"linear bias", func(b *Graph, x *G.Node) (*G.Node, error) {
			return Linear{Name: "l", In: 6, Out: 5, Bias: true}.Forward(b, x)
		}},
		{"layernorm", func(b *Graph, x *G.Node) (*G.Node, error) { return Norm{Name: "n", Dim: 6}.Forward(b, x) }},
		{"rmsnorm", func(b *Graph, x *G.Node) (*G.Node, error) { return Norm{Name: "n", Dim: 6, RMS: true}.Forward(b, x) }},
		{"ffn relu", ffn("relu")},
		{"ffn gelu", ffn("gelu")},
		{"ffn swiglu", ffn("swiglu")},
		{"learned positions", addPositions(PosLearned)},
		{"sinusoidal positions", addPositions(PosSinusoidal)},
		{"embedding", func(b *Graph, _ *G.Node) (*G.Node, error) {
			ids := gradcheck.Ints(b.G, "ids", []int{4, 2, 2, 0})
			return Embedding{Name: "emb", Vocab: 5, Dim: 3}.Lookup(b, ids)
		}},
		{"dropout", func(b *Graph, x *G.Node) (*G.Node, error) {
			b.Train, b.DropoutStep = true, &step
			return Dropout(b, x, 0.25)
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gradcheck.Check(t, func() (*G.Node, []*G.Node, error) {
				b := NewGraph(NewParams(tensor.Float64, uint64(i)))
				x := gradcheck.Param(b.G, rand.New(rand.NewPCG(uint64(i), 3)), "x", 1, 8, 6)
				out, err := c.build(b, x)
				if err != nil {
					return nil, nil, err
				}
				wrt := b.ParamNodes()
				if c.name != "embedding" {
					wrt = append(wrt, x)
				}
				return out, wrt, nil
			}, 20, uint64(i), 1e-5)
		})
	}
}

func ffn(act string) func(b *Graph, x *G.Node) (*G.Node, error) {
	return func(b *Graph, x *G.Node) (*G.Node, error) {
		return FeedForward{Name: "ff", Dim: 6, Hidden: 4, Activation: act, Bias: true}.Forward(b, x)
	}
}

// addPositions adds positional encodings of the given kind to the rows of x.
func addPositions(kind string) func(b *Graph, x *G.Node) (*G.Node, error) {
	return func(b *Graph, x *G.Node) (*G.Node, error) {
		pos := gradcheck.Ints(b.G, "pos", []int{0, 1, 2, 0, 1, 2, 3, 3})
		return Positions{Name: "pos", Kind: kind, MaxLen: 4, Dim: 6}.Forward(b, x, pos)
	}
}

func TestSinusoidal(t *testing.T) {
	xs := Sinusoidal(3, 4)
	want := []float64{0, 1, 0, 1, math.Sin(1), math.Cos(1), math.Sin(0.01), math.Cos(0.01)}
	for i, w := range want {
		if math.Abs(xs[i]-w) > 1e-12 {
			t.Errorf("entry %d: %g want %g", i, xs[i], w)
		}
	}
}

func TestParamShapeMismatch(t *testing.T) {
	p := NewParams(tensor.Float32, 1)
	b := NewGraph(p)
	if _, err := b.Param("w", []int{2, 3}, Constant(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGraph(p).Param("w", []int{3, 2}, Constant(1)); err == nil {
		t.Error("a second graph bound w with another shape")
	}
}
