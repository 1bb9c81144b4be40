// Package layers builds the transformer's pieces as Gorgonia expression-graph nodes:
// Linear, Embedding, Norm, FeedForward, positional encodings, Dropout and Attention (MHA,
// GQA and MQA). Layers own named parameters, kept in a Params set that outlives any one
// graph, so the same weights serve every graph built from them (training graphs of several
// batch shapes, evaluation graphs, decode-step graphs). No layer runs anything.
package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Params is a model's parameters by name, in the order they were first created.
type Params struct {
	dtype  tensor.Dtype
	rng    *rand.Rand
	names  []string
	values map[string]*tensor.Dense
}

// NewParams returns an empty set whose new parameters are drawn from a generator seeded
// with seed, so that building the same model twice gives the same weights.
func NewParams(dtype tensor.Dtype, seed uint64) *Params {
	return &Params{dtype: dtype, rng: rand.New(rand.NewPCG(seed, 0x6d7161)), values: map[string]*tensor.Dense{}}
}

// Dtype is the element type of every parameter.
func (p *Params) Dtype() tensor.Dtype { return p.dtype }

// Names lists the parameters in creation order.
func (p *Params) Names() []string { return slices.Clone(p.names) }

// Get returns a parameter's tensor, or nil.
func (p *Params) Get(name string) *tensor.Dense { return p.values[name] }

// Count is the total number of scalars in all parameters.
func (p *Params) Count() int {
	n := 0
	for _, v := range p.values {
		n += v.Shape().TotalSize()
	}
	return n
}

// Set stores a tensor under name (used when loading a checkpoint). A parameter that exists
// must keep its shape.
func (p *Params) Set(name string, t *tensor.Dense) error {
	if t.Dtype() != p.dtype {
		return fmt.Errorf("parameter %s: dtype %v, want %v", name, t.Dtype(), p.dtype)
	}
	if old, ok := p.values[name]; ok {
		if !old.Shape().Eq(t.Shape()) {
			return fmt.Errorf("parameter %s: shape %v, want %v", name, t.Shape(), old.Shape())
		}
	} else {
		p.names = append(p.names, name)
	}
	p.values[name] = t
	return nil
}

// Init fills a new parameter's values.
type Init func(rng *rand.Rand, xs []float64, shape []int)

// Normal draws from N(0, std²).
func Normal(std float64) Init {
	return func(rng *rand.Rand, xs []float64, _ []int) {
		for i := range xs {
			xs[i] = rng.NormFloat64() * std
		}
	}
}

// XavierUniform draws from U(−a, a) with a = sqrt(6 / (fan_in + fan_out)) of a [in, out] matrix.
func XavierUniform() Init {
	return func(rng *rand.Rand, xs []float64, shape []int) {
		a := math.Sqrt(6 / float64(shape[0]+shape[1]))
		for i := range xs {
			xs[i] = (2*rng.Float64() - 1) * a
		}
	}
}

// Constant fills with v.
func Constant(v float64) Init {
	return func(_ *rand.Rand, xs []float64, _ []int) {
		for i := range xs {
			xs[i] = v
		}
	}
}

// denseOf returns a tensor of dtype (float32 or float64) holding a copy of xs.
func denseOf(dtype tensor.Dtype, xs []float64, shape []int) *tensor.Dense {
	if dtype == tensor.Float32 {
		f := make([]float32, len(xs))
		for i, v := range xs {
			f[i] = float32(v)
		}
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(f))
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(slices.Clone(xs)))
}

// create makes a new parameter tensor.
func (p *Params) create(name string, shape []int, init Init) *tensor.Dense {
	xs := make([]float64, tensor.Shape(shape).TotalSize())
	init(p.rng, xs, shape)
	t := denseOf(p.dtype, xs, shape)
	p.names = append(p.names, name)
	p.values[name] = t
	return t
}

// Graph is one expression graph under construction, with its parameter nodes bound to a
// Params set.
type Graph struct {
	G      *G.ExprGraph
	params *Params
	bound  map[string]*G.Node
	order  []*G.Node

	// Train turns dropout on.
	Train bool
	// DropoutSeed and DropoutStep drive the dropout masks (see ops.Dropout).
	DropoutSeed uint64
	DropoutStep *uint64
	sites       int
}

// NewGraph starts a graph over the given parameters.
func NewGraph(params *Params) *Graph {
	return &Graph{G: G.NewGraph(), params: params, bound: map[string]*G.Node{}}
}

// Params is the parameter set the graph binds to.
func (b *Graph) Params() *Params { return b.params }

// Dtype is the graph's float type.
func (b *Graph) Dtype() tensor.Dtype { return b.params.dtype }

// Param returns the node of a parameter, creating the parameter with init if it does not
// exist yet. Asking twice for a name gives the same node; asking with another shape is an error.
func (b *Graph) Param(name string, shape []int, init Init) (*G.Node, error) {
	if n, ok := b.bound[name]; ok {
		if !n.Shape().Eq(tensor.Shape(shape)) {
			return nil, fmt.Errorf("parameter %s: shape %v requested, %v exists", name, shape, n.Shape())
		}
		return n, nil
	}
	t := b.params.values[name]
	if t == nil {
		t = b.params.create(name, shape, init)
	} else if !t.Shape().Eq(tensor.Shape(shape)) {
		return nil, fmt.Errorf("parameter %s: the model needs shape %v, the stored tensor has %v", name, shape, t.Shape())
	}
	n := G.NodeFromAny(b.G, t, G.WithName(name))
	b.bound[name] = n
	b.order = append(b.order, n)
	return n, nil
}

// ParamNodes lists the parameter nodes of this graph in the order they were bound.
func (b *Graph) ParamNodes() []*G.Node { return slices.Clone(b.order) }

// Ints adds an integer input node of the given length (token ids, positions, lengths).
func (b *Graph) Ints(name string, n int) *G.Node {
	return G.NewTensor(b.G, tensor.Int, 1, G.WithShape(n), G.WithName(name))
}

// Input adds a float input node.
func (b *Graph) Input(name string, shape ...int) *G.Node {
	return G.NewTensor(b.G, b.params.dtype, len(shape), G.WithShape(shape...), G.WithName(name))
}

// Constant adds a float constant from float64 values.
func (b *Graph) Constant(name string, xs []float64, shape ...int) *G.Node {
	return G.NewConstant(denseOf(b.params.dtype, xs, shape), G.WithName(name))
}

// nextSite numbers dropout sites in build order.
func (b *Graph) nextSite() int {
	b.sites++
	return b.sites
}
