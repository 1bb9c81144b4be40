package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Softmax is the scaled, masked softmax over the last axis of attention logits.
//
// The input has shape [B·Groups, Rows, Keys]: slice s belongs to sequence s / Groups, and
// row r is a query at position r mod QueryLen (the rows of the query heads that share one
// K/V head follow each other). A key j is visible to a query at position i when
//   - Causal is false, or j ≤ i + KeyOffset (KeyOffset is the number of keys before the
//     first query: 0 in training);
//   - Window is 0, or j > i + KeyOffset − Window (the query sees at most Window keys);
//   - with a second input lengths ([B] ints), j < lengths[sequence] (padding mask).
//
// Logits are multiplied by Scale before the softmax. A row with no visible key is all zero.
type Softmax struct {
	base
	Scale      float64
	Groups     int
	QueryLen   int
	KeyOffset  int
	Causal     bool
	Window     int
	HasLengths bool
}

// Apply builds the node: x are the logits, lengths (may be nil) the key lengths.
func (op Softmax) Apply(x, lengths *G.Node) (*G.Node, error) {
	if op.Groups < 1 || op.QueryLen < 1 {
		return nil, fmt.Errorf("%v: Groups and QueryLen must be positive", op)
	}
	if op.HasLengths != (lengths != nil) {
		return nil, fmt.Errorf("%v: lengths input given=%v", op, lengths != nil)
	}
	if lengths != nil {
		return G.ApplyOp(op, x, lengths)
	}
	return G.ApplyOp(op, x)
}

func (op Softmax) Arity() int {
	if op.HasLengths {
		return 2
	}
	return 1
}

func (op Softmax) Type() hm.Type {
	t := tensorOf(3)
	if op.HasLengths {
		return hm.NewFnType(t, intTensor(1), t)
	}
	return hm.NewFnType(t, t)
}

func (op Softmax) String() string {
	return fmt.Sprintf("Softmax{scale=%g groups=%d qlen=%d koff=%d causal=%v window=%d lengths=%v}",
		op.Scale, op.Groups, op.QueryLen, op.KeyOffset, op.Causal, op.Window, op.HasLengths)
}
func (op Softmax) Hashcode() uint32       { return hashOf(op) }
func (op Softmax) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps the logits' shape.
func (op Softmax) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != 3 {
		return nil, fmt.Errorf("%v: logits must be 3-D, got %v", op, s)
	}
	return s.Clone(), nil
}

// VisibleRange returns the keys [lo, hi) that row r of slice s may attend to, out of keys,
// given the key lengths (nil without a padding mask). The range is empty when lo >= hi.
func (op Softmax) VisibleRange(s, r, keys int, lengths []int) (lo, hi int) {
	i := r%op.QueryLen + op.KeyOffset
	hi = keys
	if op.Causal && i+1 < hi {
		hi = i + 1
	}
	if lengths != nil && lengths[s/op.Groups] < hi {
		hi = lengths[s/op.Groups]
	}
	return WindowStart(i, op.Window), hi
}

// Do runs the softmax on the CPU.
func (op Softmax) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Softmax) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	var lengths []int
	if op.HasLengths {
		if lengths, err = ints(op, vals[1]); err != nil {
			return nil, err
		}
		if x.Shape()[0] != len(lengths)*op.Groups {
			return nil, fmt.Errorf("%v: %d slices for %d lengths", op, x.Shape()[0], len(lengths))
		}
	}
	res := output(out, x.Dtype(), true, x.Shape()...)
	err = floats(op,
		func() error { softmaxFwd(op, data[float32](x), data[float32](res), x.Shape(), lengths); return nil },
		func() error { softmaxFwd(op, data[float64](x), data[float64](res), x.Shape(), lengths); return nil },
		x)
	return res, err
}

func softmaxFwd[T float](op Softmax, x, y []T, shape tensor.Shape, lengths []int) {
	slices, rows, keys := shape[0], shape[1], shape[2]
	parallelRows(slices*rows, keys, func(first, end int) {
		for sr := first; sr < end; sr++ {
			s, r := sr/rows, sr%rows
			off := sr * keys
			lo, hi := op.VisibleRange(s, r, keys, lengths)
			if lo >= hi {
				continue // no visible key: the row stays zero
			}
			softmaxRow(x[off+lo:off+hi], y[off+lo:off+hi], op.Scale)
		}
	})
}

// softmaxRow writes y = softmax(scale · x), computed in float64 (the exponentials rounded to T
// before they are normalised); y may be x.
func softmaxRow[T float](x, y []T, scale float64) {
	maxv := math.Inf(-1)
	for _, v := range x {
		if s := float64(v) * scale; s > maxv { // NaN is skipped here and comes through in the sum
			maxv = s
		}
	}
	var sum float64
	for j, v := range x {
		e := math.Exp(float64(v)*scale - maxv)
		y[j] = T(e)
		sum += e
	}
	inv := 1 / sum
	for j := range y {
		y[j] = T(float64(y[j]) * inv)
	}
}

// DiffWRT: the logits are differentiable, the lengths are not.
func (op Softmax) DiffWRT(n int) []bool {
	d := make([]bool, n)
	d[0] = true
	return d
}

// SymDiff returns the gradient with respect to the logits.
func (op Softmax) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(SoftmaxGrad{Scale: op.Scale}, output, grad)
	if err != nil {
		return nil, err
	}
	out := make(G.Nodes, len(inputs))
	out[0] = dx
	return out, nil
}

// SoftmaxGrad maps (probabilities p, upstream gradient g) to the gradient of the scaled
// logits: Scale · p ⊙ (g − Σⱼ gⱼpⱼ) along the last axis. Masked keys have p = 0 and get 0.
type SoftmaxGrad struct {
	base
	Scale float64
}

func (op SoftmaxGrad) Arity() int             { return 2 }
func (op SoftmaxGrad) Type() hm.Type          { t := tensorOf(3); return hm.NewFnType(t, t, t) }
func (op SoftmaxGrad) String() string         { return fmt.Sprintf("SoftmaxGrad{scale=%g}", op.Scale) }
func (op SoftmaxGrad) Hashcode() uint32       { return hashOf(op) }
func (op SoftmaxGrad) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps the shape.
func (op SoftmaxGrad) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(op, ds, 0)
}

// Do runs the gradient on the CPU.
func (op SoftmaxGrad) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op SoftmaxGrad) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	p, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	g, err := dense(op, vals[1])
	if err != nil {
		return nil, err
	}
	res := output(out, p.Dtype(), false, p.Shape()...)
	keys := p.Shape()[len(p.Shape())-1]
	err = floats(op,
		func() error {
			softmaxBwd(data[float32](p), data[float32](g), data[float32](res), keys, op.Scale)
			return nil
		},
		func() error {
			softmaxBwd(data[float64](p), data[float64](g), data[float64](res), keys, op.Scale)
			return nil
		},
		p, g)
	return res, err
}

func softmaxBwd[T float](p, g, dx []T, keys int, scale float64) {
	if keys == 0 {
		return
	}
	parallelRows(len(p)/keys, keys, func(lo, hi int) {
		for off := lo * keys; off < hi*keys; off += keys {
			pr, gr, dr := p[off:off+keys], g[off:off+keys], dx[off:off+keys]
			var dot float64
			for j := range pr {
				dot += float64(pr[j]) * float64(gr[j])
			}
			for j := range pr {
				dr[j] = T(scale * float64(pr[j]) * (float64(gr[j]) - dot))
			}
		}
	})
}
