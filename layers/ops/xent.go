package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// CrossEntropy is the mean token loss straight from logits [N, V] and targets [N] (ints):
// for each row whose target is not Ignore, (1−ε)·(−log p_target) + ε·mean_v(−log p_v), with
// ε = Smoothing; the result is the mean over those rows (0 when there are none).
type CrossEntropy struct {
	base
	Smoothing float64
	Ignore    int // a target id that adds no loss (the padding id); −1 for none
}

// Apply builds the scalar loss node.
func (op CrossEntropy) Apply(logits, targets *G.Node) (*G.Node, error) {
	if op.Smoothing < 0 || op.Smoothing >= 1 {
		return nil, fmt.Errorf("label smoothing %g is outside [0, 1)", op.Smoothing)
	}
	return G.ApplyOp(op, logits, targets)
}

func (op CrossEntropy) Arity() int { return 2 }
func (op CrossEntropy) Type() hm.Type {
	return hm.NewFnType(tensorOf(2), intTensor(1), hm.TypeVariable('a'))
}
func (op CrossEntropy) String() string {
	return fmt.Sprintf("CrossEntropy{smoothing=%g ignore=%d}", op.Smoothing, op.Ignore)
}
func (op CrossEntropy) Hashcode() uint32       { return hashOf(op) }
func (op CrossEntropy) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is a scalar.
func (op CrossEntropy) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

// inputs reads and validates the logits and targets of a Do call (the op's own arity is
// checked by the caller) and counts the rows that add loss.
func (op CrossEntropy) inputs(vals []G.Value) (logits *tensor.Dense, targets []int, count int, err error) {
	if logits, err = dense(op, vals[0]); err != nil {
		return nil, nil, 0, err
	}
	if targets, err = ints(op, vals[1]); err != nil {
		return nil, nil, 0, err
	}
	count, err = op.check(logits, targets)
	return logits, targets, count, err
}

// check validates the targets against the logits and counts the rows that add loss.
func (op CrossEntropy) check(logits *tensor.Dense, targets []int) (count int, err error) {
	n, v := logits.Shape()[0], logits.Shape()[1]
	if len(targets) != n {
		return 0, fmt.Errorf("%v: %d targets for %d rows", op, len(targets), n)
	}
	for i, t := range targets {
		if t == op.Ignore {
			continue
		}
		if t < 0 || t >= v {
			return 0, fmt.Errorf("cross-entropy: target %d at position %d is outside the vocabulary of %d", t, i, v)
		}
		count++
	}
	return count, nil
}

// Do computes the loss on the CPU.
func (op CrossEntropy) Do(vals ...G.Value) (G.Value, error) { return op.DoKeeping(nil, vals...) }

// DoKeeping is Do that also keeps the exponentials it computes in exps (when not nil) for
// the gradient of the same logits (CrossEntropyGrad.DoIntoFrom).
func (op CrossEntropy) DoKeeping(exps *Exps, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	logits, targets, count, err := op.inputs(vals)
	if err != nil {
		return nil, err
	}
	n, v := logits.Shape()[0], logits.Shape()[1]
	keep := exps.rows(n, v)
	var loss float64
	switch logits.Dtype() {
	case tensor.Float32:
		loss = xentFwd(op, data[float32](logits), targets, v, keep)
		return G.NewF32(float32(loss / math.Max(float64(count), 1))), nil
	case tensor.Float64:
		loss = xentFwd(op, data[float64](logits), targets, v, keep)
		return G.NewF64(loss / math.Max(float64(count), 1)), nil
	}
	return nil, fmt.Errorf("%v: unsupported dtype %v", op, logits.Dtype())
}

// Exps holds exp(x − max of its row) for every logit of a batch, as the loss computes them,
// for the loss's gradient in the same run: the gradient's own exponentials would be the same
// numbers (the same maximum, the same function), so an executor that runs the loss before its
// gradient can have them computed once by passing one Exps to CrossEntropy.DoKeeping and then
// to CrossEntropyGrad.DoIntoFrom. Rows whose target is ignored hold stale numbers.
type Exps struct {
	e    []float64
	n, v int // the shape the last loss kept
}

// rows sizes the buffer for n rows of v logits; nil when exps is nil.
func (exps *Exps) rows(n, v int) []float64 {
	if exps == nil {
		return nil
	}
	if cap(exps.e) < n*v {
		exps.e = make([]float64, n*v)
	}
	exps.e, exps.n, exps.v = exps.e[:n*v], n, v
	return exps.e
}

// rowMax returns the largest value of a row (−Inf for an empty row). A NaN is skipped here;
// it makes the sums of exponentials that follow NaN.
func rowMax[T float](row []T) float64 {
	maxv := math.Inf(-1)
	for _, v := range row {
		if x := float64(v); x > maxv {
			maxv = x
		}
	}
	return maxv
}

// logSumExp returns the maximum and log Σ exp(x − max) of a row; it writes each exp(x − max)
// into keep unless keep is nil.
func logSumExp[T float](row []T, keep []float64) (maxv, lse float64) {
	maxv = rowMax(row)
	var s float64
	if keep == nil {
		for _, v := range row {
			s += math.Exp(float64(v) - maxv)
		}
		return maxv, math.Log(s)
	}
	keep = keep[:len(row)]
	for j, v := range row {
		keep[j] = math.Exp(float64(v) - maxv)
		s += keep[j]
	}
	return maxv, math.Log(s)
}

// xentFwd sums the rows' losses; the rows are computed in parallel and summed in order. It
// keeps the exponentials in keep unless keep is nil.
func xentFwd[T float](op CrossEntropy, logits []T, targets []int, v int, keep []float64) (total float64) {
	eps := op.Smoothing
	nll := make([]float64, len(targets))
	parallelRows(len(targets), v, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if targets[i] == op.Ignore {
				continue
			}
			row := logits[i*v : (i+1)*v]
			var kept []float64
			if keep != nil {
				kept = keep[i*v : (i+1)*v]
			}
			maxv, lse := logSumExp(row, kept)
			logZ := maxv + lse
			nll[i] = logZ - float64(row[targets[i]])
			if eps > 0 {
				var sum float64
				for _, x := range row {
					sum += float64(x)
				}
				nll[i] = (1-eps)*nll[i] + eps*(logZ-sum/float64(v))
			}
		}
	})
	for i, t := range targets {
		if t != op.Ignore {
			total += nll[i]
		}
	}
	return total
}

// DiffWRT: the logits are differentiable, the targets are not.
func (op CrossEntropy) DiffWRT(int) []bool { return []bool{true, false} }

// SymDiff returns the gradient with respect to the logits.
func (op CrossEntropy) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dl, err := G.ApplyOp(CrossEntropyGrad{Smoothing: op.Smoothing, Ignore: op.Ignore}, inputs[0], inputs[1], grad)
	return G.Nodes{dl, nil}, err
}

// CrossEntropyGrad maps (logits, targets, upstream scalar gradient g) to the gradient of
// CrossEntropy with respect to the logits: g/count · (softmax − (1−ε)·onehot − ε/V) on rows
// that add loss, 0 on ignored rows.
type CrossEntropyGrad struct {
	base
	Smoothing float64
	Ignore    int
}

func (op CrossEntropyGrad) Arity() int { return 3 }
func (op CrossEntropyGrad) Type() hm.Type {
	m := tensorOf(2)
	return hm.NewFnType(m, intTensor(1), hm.TypeVariable('a'), m)
}
func (op CrossEntropyGrad) String() string {
	return fmt.Sprintf("CrossEntropyGrad{smoothing=%g ignore=%d}", op.Smoothing, op.Ignore)
}
func (op CrossEntropyGrad) Hashcode() uint32       { return hashOf(op) }
func (op CrossEntropyGrad) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is the logits' shape.
func (op CrossEntropyGrad) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(op, ds, 0)
}

// Do computes the gradient on the CPU.
func (op CrossEntropyGrad) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op CrossEntropyGrad) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	return op.DoIntoFrom(out, nil, vals...)
}

// DoIntoFrom is DoInto taking the exponentials from exps, which CrossEntropy.DoKeeping filled
// from the same logits and targets (the same numbers this op would compute); a nil exps, or
// one of another shape, and they are computed here.
func (op CrossEntropyGrad) DoIntoFrom(out G.Value, exps *Exps, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	logits, targets, count, err := CrossEntropy{Smoothing: op.Smoothing, Ignore: op.Ignore}.inputs(vals)
	if err != nil {
		return nil, err
	}
	g, err := scalarOf(vals[2])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	scale := g / math.Max(float64(count), 1)
	res := output(out, logits.Dtype(), true, logits.Shape()...)
	n, v := logits.Shape()[0], logits.Shape()[1]
	var kept []float64
	if exps != nil && exps.n == n && exps.v == v {
		kept = exps.e
	}
	err = floats(op,
		func() error {
			xentBwd(op, data[float32](logits), data[float32](res), targets, v, scale, kept)
			return nil
		},
		func() error {
			xentBwd(op, data[float64](logits), data[float64](res), targets, v, scale, kept)
			return nil
		},
		logits)
	return res, err
}

// xentBwd writes the gradient of the rows that add loss; the exponentials come from kept
// (the loss's) unless kept is nil.
func xentBwd[T float](op CrossEntropyGrad, logits, out []T, targets []int, v int, scale float64, kept []float64) {
	eps := op.Smoothing
	uniform := eps / float64(v) // the smoothing's share of each word
	parallelRows(len(targets), 2*v, func(lo, hi int) {
		var scratch []float64
		if kept == nil {
			scratch = make([]float64, v) // exp(x − max) of a row, each computed once
		}
		for i := lo; i < hi; i++ {
			t := targets[i]
			if t == op.Ignore {
				continue
			}
			row, dr := logits[i*v:(i+1)*v], out[i*v:(i+1)*v]
			var e []float64
			var sum float64
			if kept != nil {
				e = kept[i*v : (i+1)*v]
				for _, x := range e {
					sum += x
				}
			} else {
				e = scratch
				maxv := rowMax(row)
				for j, x := range row {
					e[j] = math.Exp(float64(x) - maxv)
					sum += e[j]
				}
			}
			inv := 1 / sum
			for j := range row {
				dr[j] = T(scale * (e[j]*inv - uniform))
			}
			p := e[t] * inv
			dr[t] = T(scale * (p - uniform - (1 - eps)))
		}
	})
}

// scalarOf reads a float scalar value.
func scalarOf(v G.Value) (float64, error) {
	switch x := v.Data().(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	case []float32:
		if len(x) == 1 {
			return float64(x[0]), nil
		}
	case []float64:
		if len(x) == 1 {
			return x[0], nil
		}
	}
	return 0, fmt.Errorf("expected a float scalar, got %T", v.Data())
}
