// Package ops holds the custom Gorgonia operations the transformer layers are built from:
// each op has a CPU implementation (Do), a symbolic gradient (SymDiff) made of further ops
// of this package, and exported parameters so that another executor (the CUDA backend) can
// run the same node with its own kernel.
//
// Every op works on float32 and float64 tensors (float64 is used by the gradient checks).
package ops

import (
	"fmt"
	"hash"
	"hash/fnv"
	"slices"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// float is the set of element types the ops support.
type float interface{ ~float32 | ~float64 }

// base supplies the Op methods that are the same for every op in this package.
// The embedding op provides String, which also keys the hash.
type base struct{}

func (base) ReturnsPtr() bool     { return false }
func (base) CallsExtern() bool    { return false }
func (base) OverwritesInput() int { return -1 }

// hashOf hashes an op by its String form, which names every parameter.
func hashOf(op fmt.Stringer) uint32 {
	h := fnv.New32a()
	fmt.Fprint(h, op.String())
	return h.Sum32()
}

func writeHash(op fmt.Stringer, h hash.Hash) { fmt.Fprint(h, op.String()) }

// tensorOf is the Gorgonia type of a float tensor with the given number of dimensions.
func tensorOf(dims int) hm.Type {
	if dims == 0 {
		return hm.TypeVariable('a')
	}
	return G.TensorType{Dims: dims, Of: hm.TypeVariable('a')}
}

// intTensor is the Gorgonia type of an integer index tensor.
func intTensor(dims int) hm.Type { return G.TensorType{Dims: dims, Of: tensor.Int} }

// dense returns v as a *tensor.Dense or an error naming the op.
func dense(op fmt.Stringer, v G.Value) (*tensor.Dense, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%v: expected a dense tensor, got %T", op, v)
	}
	return d, nil
}

// denses returns the values as dense tensors, or an error naming the op.
func denses(op fmt.Stringer, vals []G.Value) ([]*tensor.Dense, error) {
	ts := make([]*tensor.Dense, len(vals))
	for i, v := range vals {
		t, err := dense(op, v)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	return ts, nil
}

// ints returns the data of an integer index tensor.
func ints(op fmt.Stringer, v G.Value) ([]int, error) {
	d, err := dense(op, v)
	if err != nil {
		return nil, err
	}
	xs, ok := d.Data().([]int)
	if !ok {
		return nil, fmt.Errorf("%v: expected an int index tensor, got %v", op, d.Dtype())
	}
	return xs, nil
}

// newLike allocates a zeroed tensor of the given dtype and shape.
func newLike(dt tensor.Dtype, shape ...int) *tensor.Dense {
	return tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
}

// IntoDoer is an op that can write its result into a tensor an executor kept from an earlier
// run of the same node, instead of allocating a new one; out may be nil or of another shape,
// and then a new tensor is returned. The result is the same as Do's. Gorgonia's TapeMachine
// does not call it (its registers are shared by several nodes); train's CPU executor does.
type IntoDoer interface {
	DoInto(out G.Value, vals ...G.Value) (G.Value, error)
}

// output returns the tensor an op writes its result into: out when it is a dense tensor of
// its own memory with this dtype and shape (zeroed first when zero is set, for kernels that
// leave elements untouched or add into their output), else a new zeroed tensor.
func output(out G.Value, dt tensor.Dtype, zero bool, shape ...int) *tensor.Dense {
	t, ok := out.(*tensor.Dense)
	if !ok || t.Dtype() != dt || t.IsView() || !slices.Equal(t.Shape(), shape) || t.DataSize() != tensor.Shape(shape).TotalSize() {
		return newLike(dt, shape...)
	}
	if zero {
		switch d := t.Data().(type) {
		case []float32:
			clear(d)
		case []float64:
			clear(d)
		default:
			return newLike(dt, shape...)
		}
	}
	return t
}

// checkArity reports a wrong number of inputs.
func checkArity(op G.Op, n int) error {
	if op.Arity() >= 0 && n != op.Arity() {
		return fmt.Errorf("%v: expected %d inputs, got %d", op, op.Arity(), n)
	}
	return nil
}

// floats dispatches a kernel on the element type of the given tensors, which must all share it.
func floats(op fmt.Stringer, f32 func() error, f64 func() error, ts ...*tensor.Dense) error {
	dt := ts[0].Dtype()
	for _, t := range ts[1:] {
		if t.Dtype() != dt {
			return fmt.Errorf("%v: mixed dtypes %v and %v", op, dt, t.Dtype())
		}
	}
	switch dt {
	case tensor.Float32:
		return f32()
	case tensor.Float64:
		return f64()
	}
	return fmt.Errorf("%v: unsupported dtype %v", op, dt)
}

// data returns the backing slice of t as []T.
func data[T float](t *tensor.Dense) []T { return t.Data().([]T) }

// datas returns the backing slices of ts as []T.
func datas[T float](ts []*tensor.Dense) [][]T {
	out := make([][]T, len(ts))
	for i, t := range ts {
		out[i] = data[T](t)
	}
	return out
}

// shapeOf returns the shape of the i-th dim sizer.
func shapeOf(op fmt.Stringer, ds []G.DimSizer, i int) (tensor.Shape, error) {
	if i >= len(ds) {
		return nil, fmt.Errorf("%v: missing input %d", op, i)
	}
	s, ok := ds[i].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("%v: input %d has no shape", op, i)
	}
	return s, nil
}

// sameShape is the InferShape of an op whose output has the shape of its input i.
func sameShape(op fmt.Stringer, ds []G.DimSizer, i int) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, i)
	if err != nil {
		return nil, err
	}
	return s.Clone(), nil
}

// hashWriter is the hash.Hash that Gorgonia passes to WriteHash.
type hashWriter = hash.Hash
