package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// BiasAdd adds a bias vector b [d] to every row of x [N, d].
type BiasAdd struct{ base }

// NewBiasAdd builds the node.
func NewBiasAdd(x, b *G.Node) (*G.Node, error) { return G.ApplyOp(BiasAdd{}, x, b) }

func (op BiasAdd) Arity() int             { return 2 }
func (op BiasAdd) Type() hm.Type          { m := tensorOf(2); return hm.NewFnType(m, tensorOf(1), m) }
func (op BiasAdd) String() string         { return "BiasAdd" }
func (op BiasAdd) Hashcode() uint32       { return hashOf(op) }
func (op BiasAdd) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps x's shape.
func (op BiasAdd) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	x, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	b, err := shapeOf(op, ds, 1)
	if err != nil {
		return nil, err
	}
	if len(x) != 2 || len(b) != 1 || b[0] != x[1] {
		return nil, fmt.Errorf("%v: x %v and bias %v do not match", op, x, b)
	}
	return x.Clone(), nil
}

// Do runs the addition on the CPU.
func (op BiasAdd) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op BiasAdd) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	b, err := dense(op, vals[1])
	if err != nil {
		return nil, err
	}
	res := output(out, x.Dtype(), false, x.Shape()...)
	err = floats(op,
		func() error { biasAdd(data[float32](x), data[float32](b), data[float32](res)); return nil },
		func() error { biasAdd(data[float64](x), data[float64](b), data[float64](res)); return nil },
		x, b)
	return res, err
}

func biasAdd[T float](x, b, out []T) {
	d := len(b)
	for off := 0; off < len(x); off += d {
		for j, v := range b {
			out[off+j] = x[off+j] + v
		}
	}
}

// DiffWRT: both inputs are differentiable.
func (op BiasAdd) DiffWRT(int) []bool { return []bool{true, true} }

// SymDiff passes the gradient to x and sums its columns for b.
func (op BiasAdd) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	db, err := G.ApplyOp(ColSum{}, grad)
	return G.Nodes{grad, db}, err
}

// ColSum sums a matrix [N, d] over its rows, giving [d].
type ColSum struct{ base }

func (op ColSum) Arity() int             { return 1 }
func (op ColSum) Type() hm.Type          { return hm.NewFnType(tensorOf(2), tensorOf(1)) }
func (op ColSum) String() string         { return "ColSum" }
func (op ColSum) Hashcode() uint32       { return hashOf(op) }
func (op ColSum) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is [d].
func (op ColSum) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[1]}, nil
}

// Do runs the sum on the CPU.
func (op ColSum) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op ColSum) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	d := x.Shape()[1]
	res := output(out, x.Dtype(), false, d)
	err = floats(op,
		func() error { colSum(data[float32](x), data[float32](res)); return nil },
		func() error { colSum(data[float64](x), data[float64](res)); return nil },
		x)
	return res, err
}

func colSum[T float](x, out []T) {
	acc := make([]float64, len(out))
	for off := 0; off < len(x); off += len(out) {
		for j := range acc {
			acc[j] += float64(x[off+j])
		}
	}
	for j, v := range acc {
		out[j] = T(v)
	}
}
