package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Dropout zeroes each element with probability P and scales the rest by 1/(1−P). The mask is
// a pure function of (Seed, Site, *Step, element index), so it is reproducible, survives a
// resume, needs no storage, and the gradient (the same op applied to the upstream gradient)
// sees the same mask. The trainer advances *Step once per training step.
type Dropout struct {
	base
	P    float64
	Seed uint64
	Site int
	Step *uint64
}

// Apply builds the node.
func (op Dropout) Apply(x *G.Node) (*G.Node, error) {
	if op.P < 0 || op.P >= 1 {
		return nil, fmt.Errorf("dropout probability %g is outside [0, 1)", op.P)
	}
	if op.Step == nil {
		return nil, fmt.Errorf("dropout: no step counter")
	}
	return G.ApplyOp(op, x)
}

func (op Dropout) Arity() int    { return 1 }
func (op Dropout) Type() hm.Type { m := tensorOf(2); return hm.NewFnType(m, m) }
func (op Dropout) String() string {
	return fmt.Sprintf("Dropout{p=%g seed=%d site=%d}", op.P, op.Seed, op.Site)
}
func (op Dropout) Hashcode() uint32       { return hashOf(op) }
func (op Dropout) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps the shape.
func (op Dropout) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(op, ds, 0)
}

// mix is the SplitMix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// SiteKey is the part of the mask's hash fixed by the seed and the site; a step's key is
// mix(SiteKey ^ step) (the GPU kernel mixes the step in itself).
func (op Dropout) SiteKey() uint64 { return mix(mix(op.Seed^0x9e3779b97f4a7c15) ^ uint64(op.Site)) }

// keep reports whether element i survives under the step's key.
func (op Dropout) keep(key uint64, i int) bool {
	u := float64(mix(key^uint64(i))>>40) / (1 << 24)
	return u >= op.P
}

// Do applies the mask on the CPU.
func (op Dropout) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Dropout) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	res := output(out, x.Dtype(), true, x.Shape()...)
	step := *op.Step
	err = floats(op,
		func() error { dropout(op, step, data[float32](x), data[float32](res)); return nil },
		func() error { dropout(op, step, data[float64](x), data[float64](res)); return nil },
		x)
	return res, err
}

func dropout[T float](op Dropout, step uint64, x, y []T) {
	scale := 1 / (1 - op.P)
	key := mix(op.SiteKey() ^ step) // three of the four hash rounds are the same for every element
	for i, v := range x {
		if op.keep(key, i) {
			y[i] = T(float64(v) * scale)
		}
	}
}

// DiffWRT: the input is differentiable.
func (op Dropout) DiffWRT(int) []bool { return []bool{true} }

// SymDiff applies the same mask to the gradient.
func (op Dropout) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(op, grad)
	return G.Nodes{dx}, err
}
