package layers

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"

	// Matrix products (Linear, attention) run on OpenBLAS where the machine has it.
	_ "mqa/layers/blas"
	"mqa/layers/ops"
)

// Linear is y = x·W (+ b) for x [N, In]; W is stored as [In, Out].
type Linear struct {
	Name    string
	In, Out int
	Bias    bool
}

// Forward builds the node.
func (l Linear) Forward(b *Graph, x *G.Node) (*G.Node, error) {
	if x.Dims() != 2 || x.Shape()[1] != l.In {
		return nil, fmt.Errorf("%s: input shape %v, want [N %d]", l.Name, x.Shape(), l.In)
	}
	w, err := b.Param(l.Name+".weight", []int{l.In, l.Out}, XavierUniform())
	if err != nil {
		return nil, err
	}
	y, err := G.Mul(x, w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.Name, err)
	}
	if !l.Bias {
		return y, nil
	}
	bias, err := b.Param(l.Name+".bias", []int{l.Out}, Constant(0))
	if err != nil {
		return nil, err
	}
	return ops.NewBiasAdd(y, bias)
}

// Embedding is a table of Vocab vectors of width Dim, initialised N(0, 1/Dim). Lookups are
// multiplied by sqrt(Dim) (Vaswani et al.), so looked-up vectors have unit scale while the
// table itself, when tied to the output projection, gives unit-scale logits.
type Embedding struct {
	Name       string
	Vocab, Dim int
}

// Table returns the [Vocab, Dim] weight node.
func (e Embedding) Table(b *Graph) (*G.Node, error) {
	return b.Param(e.Name+".weight", []int{e.Vocab, e.Dim}, Normal(1/math.Sqrt(float64(e.Dim))))
}

// Lookup returns the scaled vectors of ids [N]: [N, Dim].
func (e Embedding) Lookup(b *Graph, ids *G.Node) (*G.Node, error) {
	t, err := e.Table(b)
	if err != nil {
		return nil, err
	}
	return ops.NewGather(t, ids, math.Sqrt(float64(e.Dim)))
}

// Epsilons of the norms (inside the square root), which an exported model must repeat.
const (
	LayerNormEps = 1e-5
	RMSNormEps   = 1e-6
)

// Norm is LayerNorm (with gain and bias) or, with RMS, RMSNorm (gain only), over rows of width Dim.
type Norm struct {
	Name string
	Dim  int
	RMS  bool
}

// Forward builds the node.
func (n Norm) Forward(b *Graph, x *G.Node) (*G.Node, error) {
	gamma, err := b.Param(n.Name+".weight", []int{n.Dim}, Constant(1))
	if err != nil {
		return nil, err
	}
	if n.RMS {
		return ops.Norm{RMS: true, Eps: RMSNormEps}.Apply(x, gamma, nil)
	}
	beta, err := b.Param(n.Name+".bias", []int{n.Dim}, Constant(0))
	if err != nil {
		return nil, err
	}
	return ops.Norm{Eps: LayerNormEps}.Apply(x, gamma, beta)
}

// FeedForward is W2·act(W1·x): ReLU or GELU with a hidden width Hidden, or SwiGLU, whose
// first projection is 2·Hidden wide (the gate and the value).
type FeedForward struct {
	Name        string
	Dim, Hidden int
	Activation  string
	Bias        bool
}

// Forward builds the node.
func (f FeedForward) Forward(b *Graph, x *G.Node) (*G.Node, error) {
	width := f.Hidden
	if f.Activation == ops.SwiGLU {
		width *= 2
	}
	h, err := Linear{Name: f.Name + ".fc1", In: f.Dim, Out: width, Bias: f.Bias}.Forward(b, x)
	if err != nil {
		return nil, err
	}
	if h, err = ops.NewActivation(f.Activation, h); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return Linear{Name: f.Name + ".fc2", In: f.Hidden, Out: f.Dim, Bias: f.Bias}.Forward(b, h)
}

// Dropout applies dropout with probability p in training graphs; otherwise it returns x.
func Dropout(b *Graph, x *G.Node, p float64) (*G.Node, error) {
	if !b.Train || p == 0 {
		return x, nil
	}
	if b.DropoutStep == nil {
		return nil, fmt.Errorf("dropout in a training graph needs a step counter")
	}
	return ops.Dropout{P: p, Seed: b.DropoutSeed, Site: b.nextSite(), Step: b.DropoutStep}.Apply(x)
}

// Sinusoidal returns the [maxLen, dim] table of Vaswani et al.'s sinusoidal positions:
// sin(p / 10000^(2i/dim)) in even columns, cos in odd ones.
func Sinusoidal(maxLen, dim int) []float64 {
	xs := make([]float64, maxLen*dim)
	for p := 0; p < maxLen; p++ {
		for i := 0; i < dim; i += 2 {
			angle := float64(p) / math.Pow(10000, float64(i)/float64(dim))
			xs[p*dim+i] = math.Sin(angle)
			if i+1 < dim {
				xs[p*dim+i+1] = math.Cos(angle)
			}
		}
	}
	return xs
}

// Positional encodings.
const (
	PosSinusoidal = "sinusoidal"
	PosLearned    = "learned"
	PosRoPE       = "rope"
)

// Positions adds absolute position vectors (sinusoidal or learned) to x [N, Dim]; row i is at
// position positions[i]. Rotary positions are applied inside attention instead, so for RoPE
// x is returned unchanged.
type Positions struct {
	Name        string
	Kind        string
	MaxLen, Dim int
}

// Forward builds the node.
func (p Positions) Forward(b *Graph, x, positions *G.Node) (*G.Node, error) {
	var table *G.Node
	switch p.Kind {
	case PosRoPE:
		return x, nil
	case PosSinusoidal:
		table = b.Constant(p.Name+".sinusoidal", Sinusoidal(p.MaxLen, p.Dim), p.MaxLen, p.Dim)
	case PosLearned:
		var err error
		if table, err = b.Param(p.Name+".weight", []int{p.MaxLen, p.Dim}, Normal(0.02)); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown positional encoding %q (allowed: sinusoidal, learned, rope)", p.Kind)
	}
	pv, err := ops.NewGather(table, positions, 1)
	if err != nil {
		return nil, err
	}
	return G.Add(x, pv)
}
