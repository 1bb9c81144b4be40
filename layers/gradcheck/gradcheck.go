// Package gradcheck compares the symbolic gradients Gorgonia builds for a graph with central
// finite differences, in float64. It is a test helper for the layers and their ops.
package gradcheck

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Build constructs the function under test in a new graph: its output and the float64
// nodes (holding values) to differentiate with respect to.
type Build func() (out *G.Node, wrt []*G.Node, err error)

// Result is the worst disagreement found.
type Result struct {
	MaxRelErr float64
	Where     string
	Checked   int
}

// Run checks up to perTensor random elements of every wrt tensor. The scalar under test is
// Σ out ⊙ R for a fixed random R (or out itself when it is a scalar), so every output
// element matters with a different weight. The relative error of an element is
// |analytic − numeric| / max(|analytic|, |numeric|, floor).
func Run(build Build, perTensor int, seed uint64) (Result, error) {
	out, wrt, err := build()
	if err != nil {
		return Result{}, err
	}
	g := out.Graph()
	loss := out
	if !out.IsScalar() {
		rng := rand.New(rand.NewPCG(seed, 7))
		r := tensor.New(tensor.WithShape(out.Shape()...), tensor.WithBacking(Random(rng, out.Shape().TotalSize())))
		weights := G.NewConstant(r, G.WithName("gradcheck.weights"))
		prod, err := G.HadamardProd(out, weights)
		if err != nil {
			return Result{}, err
		}
		if loss, err = G.Sum(prod); err != nil {
			return Result{}, err
		}
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		return Result{}, fmt.Errorf("grad: %w", err)
	}
	m := G.NewTapeMachine(g)
	defer m.Close()
	eval := func() (float64, error) {
		m.Reset()
		if err := m.RunAll(); err != nil {
			return 0, err
		}
		return loss.Value().Data().(float64), nil
	}
	if _, err := eval(); err != nil {
		return Result{}, err
	}
	analytic := make([][]float64, len(wrt))
	for i, gn := range grads {
		analytic[i] = append([]float64(nil), gn.Value().Data().([]float64)...)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var res Result
	const h = 1e-6
	for i, w := range wrt {
		vals := w.Value().Data().([]float64)
		idx := rng.Perm(len(vals))
		if len(idx) > perTensor {
			idx = idx[:perTensor]
		}
		for _, k := range idx {
			orig := vals[k]
			vals[k] = orig + h
			up, err := eval()
			if err != nil {
				return res, err
			}
			vals[k] = orig - h
			down, err := eval()
			if err != nil {
				return res, err
			}
			vals[k] = orig
			num := (up - down) / (2 * h)
			ana := analytic[i][k]
			rel := math.Abs(ana-num) / math.Max(math.Max(math.Abs(ana), math.Abs(num)), 1e-4)
			if math.IsNaN(rel) {
				rel = math.Inf(1)
			}
			res.Checked++
			if rel > res.MaxRelErr {
				res.MaxRelErr = rel
				res.Where = fmt.Sprintf("%s[%d]: analytic %.8g numeric %.8g", w.Name(), k, ana, num)
			}
		}
	}
	return res, nil
}

// Check runs Run and fails t if it errs, checks no element, or finds a relative error
// above tol.
func Check(t testing.TB, build Build, perTensor int, seed uint64, tol float64) {
	t.Helper()
	res, err := Run(build, perTensor, seed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked == 0 || res.MaxRelErr > tol {
		t.Errorf("max relative error %.3g over %d elements at %s", res.MaxRelErr, res.Checked, res.Where)
	}
}

// Random returns n normal samples.
func Random(rng *rand.Rand, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	return xs
}

// Param makes a float64 node holding random normal values of the given shape, scaled.
func Param(g *G.ExprGraph, rng *rand.Rand, name string, scale float64, shape ...int) *G.Node {
	n := tensor.Shape(shape).TotalSize()
	xs := Random(rng, n)
	for i := range xs {
		xs[i] *= scale
	}
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(xs))
	return G.NodeFromAny(g, t, G.WithName(name))
}

// Ints makes an int input node.
func Ints(g *G.ExprGraph, name string, xs []int) *G.Node {
	t := tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(append([]int(nil), xs...)))
	return G.NodeFromAny(g, t, G.WithName(name))
}
