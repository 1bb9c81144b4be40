package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RoPE applies rotary position embeddings to x [N, heads·HeadDim] whose row i is at position
// positions[i]: in each head, the pair (j, j + HeadDim/2) is rotated by the angle
// position · Base^(−2j/HeadDim). Inverse rotates the other way, which is the gradient.
type RoPE struct {
	base
	HeadDim int
	Base    float64
	Inverse bool
}

// Apply builds the node.
func (op RoPE) Apply(x, positions *G.Node) (*G.Node, error) {
	if op.HeadDim < 2 || op.HeadDim%2 != 0 || x.Shape()[1]%op.HeadDim != 0 {
		return nil, fmt.Errorf("rope: head width %d must be even and divide %d", op.HeadDim, x.Shape()[1])
	}
	return G.ApplyOp(op, x, positions)
}

func (op RoPE) Arity() int    { return 2 }
func (op RoPE) Type() hm.Type { m := tensorOf(2); return hm.NewFnType(m, intTensor(1), m) }
func (op RoPE) String() string {
	return fmt.Sprintf("RoPE{dk=%d base=%g inverse=%v}", op.HeadDim, op.Base, op.Inverse)
}
func (op RoPE) Hashcode() uint32       { return hashOf(op) }
func (op RoPE) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps x's shape.
func (op RoPE) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(op, ds, 0)
}

// Do rotates on the CPU.
func (op RoPE) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op RoPE) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	pos, err := ints(op, vals[1])
	if err != nil {
		return nil, err
	}
	if len(pos) != x.Shape()[0] {
		return nil, fmt.Errorf("%v: %d positions for %d rows", op, len(pos), x.Shape()[0])
	}
	res := output(out, x.Dtype(), false, x.Shape()...)
	err = floats(op,
		func() error { rope(op, data[float32](x), data[float32](res), pos, x.Shape()[1]); return nil },
		func() error { rope(op, data[float64](x), data[float64](res), pos, x.Shape()[1]); return nil },
		x)
	return res, err
}

func rope[T float](op RoPE, x, y []T, pos []int, width int) {
	half := op.HeadDim / 2
	sign := 1.0
	if op.Inverse {
		sign = -1
	}
	freq := make([]float64, half) // the angle per position of each pair, the same for every row
	for j := range freq {
		freq[j] = math.Pow(op.Base, -2*float64(j)/float64(op.HeadDim))
	}
	for r, p := range pos {
		row, out := x[r*width:(r+1)*width], y[r*width:(r+1)*width]
		for j, f := range freq {
			theta := sign * float64(p) * f
			sin, cos := math.Sincos(theta)
			for h := 0; h < width; h += op.HeadDim {
				a, b := float64(row[h+j]), float64(row[h+j+half])
				out[h+j] = T(a*cos - b*sin)
				out[h+j+half] = T(a*sin + b*cos)
			}
		}
	}
}

// DiffWRT: x is differentiable, the positions are not.
func (op RoPE) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff rotates the gradient back.
func (op RoPE) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	inv := op
	inv.Inverse = !op.Inverse
	dx, err := G.ApplyOp(inv, grad, inputs[1])
	return G.Nodes{dx, nil}, err
}
