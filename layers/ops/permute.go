package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Permute reorders the axes of a tensor and writes the result contiguously:
// output axis i is input axis Axes[i]. Attention uses it to move heads next to the batch.
type Permute struct {
	base
	Axes []int
}

// NewPermute returns a permutation node of x.
func NewPermute(x *G.Node, axes ...int) (*G.Node, error) {
	if len(axes) != x.Dims() {
		return nil, fmt.Errorf("permute: %d axes for a %d-dimensional tensor", len(axes), x.Dims())
	}
	seen := make([]bool, len(axes))
	for _, a := range axes {
		if a < 0 || a >= len(axes) || seen[a] {
			return nil, fmt.Errorf("permute: axes %v are not a permutation", axes)
		}
		seen[a] = true
	}
	return G.ApplyOp(Permute{Axes: append([]int(nil), axes...)}, x)
}

func (op Permute) Arity() int             { return 1 }
func (op Permute) Type() hm.Type          { t := tensorOf(len(op.Axes)); return hm.NewFnType(t, t) }
func (op Permute) String() string         { return fmt.Sprintf("Permute%v", op.Axes) }
func (op Permute) Hashcode() uint32       { return hashOf(op) }
func (op Permute) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape permutes the input shape.
func (op Permute) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != len(op.Axes) {
		return nil, fmt.Errorf("%v: input shape %v", op, s)
	}
	out := make(tensor.Shape, len(s))
	for i, a := range op.Axes {
		out[i] = s[a]
	}
	return out, nil
}

// Inverse returns the permutation that undoes op.
func (op Permute) Inverse() Permute {
	inv := make([]int, len(op.Axes))
	for i, a := range op.Axes {
		inv[a] = i
	}
	return Permute{Axes: inv}
}

// Do runs the permutation on the CPU.
func (op Permute) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Permute) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	outShape, err := op.InferShape(x.Shape())
	if err != nil {
		return nil, err
	}
	res := output(out, x.Dtype(), false, outShape...)
	err = floats(op,
		func() error { permute(data[float32](x), data[float32](res), x.Shape(), op.Axes); return nil },
		func() error { permute(data[float64](x), data[float64](res), x.Shape(), op.Axes); return nil },
		x)
	return res, err
}

// permute writes src (of shape inShape) into dst with its axes reordered.
func permute[T float](src, dst []T, inShape []int, axes []int) {
	n := len(axes)
	inStrides := make([]int, n)
	stride := 1
	for i := n - 1; i >= 0; i-- {
		inStrides[i] = stride
		stride *= inShape[i]
	}
	outShape := make([]int, n)
	strides := make([]int, n) // input stride of each output axis
	for i, a := range axes {
		outShape[i] = inShape[a]
		strides[i] = inStrides[a]
	}
	if len(dst) == 0 {
		return
	}
	// The output's first axis is split over goroutines (a 1-D permutation is one copy).
	rows := 1
	if n > 1 {
		rows = outShape[0]
	}
	rowLen := len(dst) / rows
	parallelRows(rows, rowLen, func(lo, hi int) {
		idx := make([]int, n)
		last := n - 1
		off := 0
		if n > 1 {
			idx[0], off = lo, lo*strides[0]
		}
		for o := lo * rowLen; o < hi*rowLen; {
			// the innermost output axis is copied in one run
			s := strides[last]
			for k := 0; k < outShape[last]; k++ {
				dst[o] = src[off+k*s]
				o++
			}
			// advance the outer indices
			for d := last - 1; d >= 0; d-- {
				idx[d]++
				off += strides[d]
				if idx[d] < outShape[d] {
					break
				}
				off -= strides[d] * outShape[d]
				idx[d] = 0
			}
		}
	})
}

// DiffWRT says the input is differentiable.
func (op Permute) DiffWRT(int) []bool { return []bool{true} }

// SymDiff permutes the gradient back.
func (op Permute) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(op.Inverse(), grad)
	return G.Nodes{g}, err
}
