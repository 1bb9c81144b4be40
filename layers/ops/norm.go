package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Norm normalises each row of x [N, d] and applies the learned gain (and, for LayerNorm, bias):
//   - LayerNorm: (x − mean) / sqrt(var + Eps) · gamma + beta; inputs x, gamma [d], beta [d];
//   - RMSNorm (RMS true): x / sqrt(mean(x²) + Eps) · gamma; inputs x, gamma [d].
type Norm struct {
	base
	RMS bool
	Eps float64
}

// Apply builds the node. beta must be nil for RMSNorm.
func (op Norm) Apply(x, gamma, beta *G.Node) (*G.Node, error) {
	if op.RMS != (beta == nil) {
		return nil, fmt.Errorf("%v: beta given=%v", op, beta != nil)
	}
	if op.RMS {
		return G.ApplyOp(op, x, gamma)
	}
	return G.ApplyOp(op, x, gamma, beta)
}

func (op Norm) Arity() int {
	if op.RMS {
		return 2
	}
	return 3
}

func (op Norm) Type() hm.Type {
	m, v := tensorOf(2), tensorOf(1)
	if op.RMS {
		return hm.NewFnType(m, v, m)
	}
	return hm.NewFnType(m, v, v, m)
}

func (op Norm) String() string         { return fmt.Sprintf("Norm{rms=%v eps=%g}", op.RMS, op.Eps) }
func (op Norm) Hashcode() uint32       { return hashOf(op) }
func (op Norm) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps the shape of x.
func (op Norm) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("%v: input must be 2-D, got %v", op, s)
	}
	return s.Clone(), nil
}

// Do runs the normalisation on the CPU.
func (op Norm) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Norm) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	ts, err := denses(op, vals)
	if err != nil {
		return nil, err
	}
	x := ts[0]
	res := output(out, x.Dtype(), false, x.Shape()...)
	err = floats(op,
		func() error { normFwd(op, x.Shape()[1], datas[float32](ts), data[float32](res)); return nil },
		func() error { normFwd(op, x.Shape()[1], datas[float64](ts), data[float64](res)); return nil },
		ts...)
	return res, err
}

// rowStats returns the mean (0 for RMSNorm) and the reciprocal standard deviation of a row.
func rowStats[T float](row []T, rms bool, eps float64) (mean, rstd float64) {
	n := float64(len(row))
	if !rms {
		for _, v := range row {
			mean += float64(v)
		}
		mean /= n
	}
	var ss float64
	for _, v := range row {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/n+eps)
}

func normFwd[T float](op Norm, d int, in [][]T, y []T) {
	x, gamma := in[0], in[1]
	parallelRows(len(x)/max(d, 1), d, func(lo, hi int) {
		for off := lo * d; off < hi*d; off += d {
			row := x[off : off+d]
			mean, rstd := rowStats(row, op.RMS, op.Eps)
			for j, v := range row {
				o := (float64(v) - mean) * rstd * float64(gamma[j])
				if !op.RMS {
					o += float64(in[2][j])
				}
				y[off+j] = T(o)
			}
		}
	})
}

// DiffWRT: every input is differentiable.
func (op Norm) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff returns the gradients for x, gamma and (LayerNorm) beta; beta's is the column sum
// of the upstream gradient (ColSum).
func (op Norm) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(inputs))
	for wrt := range inputs {
		var n *G.Node
		var err error
		if wrt == 2 {
			n, err = G.ApplyOp(ColSum{}, grad)
		} else {
			n, err = G.ApplyOp(NormGrad{RMS: op.RMS, Eps: op.Eps, Wrt: wrt}, inputs[0], inputs[1], grad)
		}
		if err != nil {
			return nil, err
		}
		out[wrt] = n
	}
	return out, nil
}

// NormGrad maps (x, gamma, upstream gradient) to the gradient of Norm with respect to its
// input number Wrt: 0 for x, 1 for gamma (beta's gradient is a ColSum).
type NormGrad struct {
	base
	RMS bool
	Eps float64
	Wrt int
}

func (op NormGrad) Arity() int { return 3 }

func (op NormGrad) Type() hm.Type {
	m, v := tensorOf(2), tensorOf(1)
	if op.Wrt == 0 {
		return hm.NewFnType(m, v, m, m)
	}
	return hm.NewFnType(m, v, m, v)
}

func (op NormGrad) String() string {
	return fmt.Sprintf("NormGrad{rms=%v eps=%g wrt=%d}", op.RMS, op.Eps, op.Wrt)
}
func (op NormGrad) Hashcode() uint32       { return hashOf(op) }
func (op NormGrad) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is x's shape for Wrt 0, else gamma's.
func (op NormGrad) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	i := 0
	if op.Wrt > 0 {
		i = 1
	}
	return sameShape(op, ds, i)
}

// Do runs the gradient on the CPU.
func (op NormGrad) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op NormGrad) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	ts, err := denses(op, vals)
	if err != nil {
		return nil, err
	}
	shape, _ := op.InferShape(ts[0].Shape(), ts[1].Shape())
	res := output(out, ts[0].Dtype(), false, shape...)
	d := ts[0].Shape()[1]
	err = floats(op,
		func() error { normBwd(op, d, datas[float32](ts), data[float32](res)); return nil },
		func() error { normBwd(op, d, datas[float64](ts), data[float64](res)); return nil },
		ts...)
	return res, err
}

func normBwd[T float](op NormGrad, d int, in [][]T, out []T) {
	x, gamma, g := in[0], in[1], in[2]
	if op.Wrt == 1 { // gamma: the column sums of g ⊙ xhat
		acc := make([]float64, d)
		for off := 0; off < len(x); off += d {
			row, gr := x[off:off+d], g[off:off+d]
			mean, rstd := rowStats(row, op.RMS, op.Eps)
			for j := range row {
				acc[j] += float64(gr[j]) * (float64(row[j]) - mean) * rstd
			}
		}
		for j := range acc {
			out[j] = T(acc[j])
		}
		return
	}
	// dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat ⊙ xhat)), without the mean(dxhat)
	// term for RMSNorm; dxhat = g ⊙ gamma.
	n := float64(d)
	parallelRows(len(x)/max(d, 1), 2*d, func(lo, hi int) {
		for off := lo * d; off < hi*d; off += d {
			row, gr := x[off:off+d], g[off:off+d]
			mean, rstd := rowStats(row, op.RMS, op.Eps)
			var sumD, sumDX float64
			for j := range row {
				dxhat := float64(gr[j]) * float64(gamma[j])
				sumD += dxhat
				sumDX += dxhat * (float64(row[j]) - mean) * rstd
			}
			if op.RMS {
				sumD = 0
			}
			for j := range row {
				xhat := (float64(row[j]) - mean) * rstd
				dxhat := float64(gr[j]) * float64(gamma[j])
				out[off+j] = T(rstd * (dxhat - sumD/n - xhat*sumDX/n))
			}
		}
	})
}
