package ops

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Activation kinds.
const (
	ReLU   = "relu"
	GELU   = "gelu"   // exact: x · Φ(x), with the normal CDF through erf
	SwiGLU = "swiglu" // the last axis holds [a | b]; the output is silu(a) ⊙ b, half as wide
	// GELUTanh is GELU with Φ approximated through tanh (GPT-2's and BERT's form):
	// x/2 · (1 + tanh(√(2/π) · (x + 0.044715·x³))).
	GELUTanh = "gelu_tanh"
)

// Activations lists the activation kinds (a new slice each call).
func Activations() []string { return []string{ReLU, GELU, GELUTanh, SwiGLU} }

// Activation applies an elementwise non-linearity to a 2-D tensor.
type Activation struct {
	base
	Kind string
}

// NewActivation builds the node, checking the kind.
func NewActivation(kind string, x *G.Node) (*G.Node, error) {
	if !slices.Contains(Activations(), kind) {
		return nil, fmt.Errorf("unknown activation %q (allowed: %s)", kind, strings.Join(Activations(), ", "))
	}
	if kind == SwiGLU && x.Shape()[1]%2 != 0 {
		return nil, fmt.Errorf("swiglu: width %d is odd", x.Shape()[1])
	}
	return G.ApplyOp(Activation{Kind: kind}, x)
}

func (op Activation) Arity() int             { return 1 }
func (op Activation) Type() hm.Type          { t := tensorOf(2); return hm.NewFnType(t, t) }
func (op Activation) String() string         { return "Activation{" + op.Kind + "}" }
func (op Activation) Hashcode() uint32       { return hashOf(op) }
func (op Activation) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape keeps the shape, halving the last axis for SwiGLU.
func (op Activation) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapeOf(op, ds, 0)
	if err != nil {
		return nil, err
	}
	if len(s) != 2 {
		return nil, fmt.Errorf("%v: input must be 2-D, got %v", op, s)
	}
	out := s.Clone()
	if op.Kind == SwiGLU {
		out[1] /= 2
	}
	return out, nil
}

// Do runs the activation on the CPU.
func (op Activation) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op Activation) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	shape, err := op.InferShape(x.Shape())
	if err != nil {
		return nil, err
	}
	res := output(out, x.Dtype(), false, shape...)
	err = floats(op,
		func() error { activate(op.Kind, data[float32](x), data[float32](res), x.Shape()[1]); return nil },
		func() error { activate(op.Kind, data[float64](x), data[float64](res), x.Shape()[1]); return nil },
		x)
	return res, err
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
func geluGrad(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
}

// geluTanhC and geluTanhA are the constants of the tanh approximation: √(2/π) and 0.044715.
const (
	geluTanhC = 0.7978845608028654
	geluTanhA = 0.044715
)

func geluTanh(x float64) float64 { return 0.5 * x * (1 + math.Tanh(geluTanhC*(x+geluTanhA*x*x*x))) }
func geluTanhGrad(x float64) float64 {
	t := math.Tanh(geluTanhC * (x + geluTanhA*x*x*x))
	return 0.5*(1+t) + 0.5*x*(1-t*t)*geluTanhC*(1+3*geluTanhA*x*x)
}
func sigmoid(x float64) float64  { return 1 / (1 + math.Exp(-x)) }
func silu(x float64) float64     { return x * sigmoid(x) }
func siluGrad(x float64) float64 { s := sigmoid(x); return s * (1 + x*(1-s)) }

// activate applies the activation to the rows of x (width wide), in parallel over rows.
func activate[T float](kind string, x, y []T, width int) {
	ow := width // the output's row width
	if kind == SwiGLU {
		ow = width / 2
	}
	parallelRows(len(x)/max(width, 1), width, func(lo, hi int) {
		activateRows(kind, x[lo*width:hi*width], y[lo*ow:hi*ow], width)
	})
}

// activateRows applies the activation to whole rows of x, writing the same rows of y.
func activateRows[T float](kind string, x, y []T, width int) {
	switch kind {
	case ReLU:
		if x32, ok := any(x).([]float32); ok {
			reluF32(x32, any(y).([]float32))
			return
		}
		for i, v := range x {
			if v > 0 {
				y[i] = v
			} else {
				y[i] = 0
			}
		}
	case GELU:
		for i, v := range x {
			y[i] = T(gelu(float64(v)))
		}
	case GELUTanh:
		for i, v := range x {
			y[i] = T(geluTanh(float64(v)))
		}
	case SwiGLU:
		h := width / 2
		for r, o := 0, 0; r < len(x); r += width {
			for j := 0; j < h; j++ {
				y[o] = T(silu(float64(x[r+j])) * float64(x[r+h+j]))
				o++
			}
		}
	}
}

// DiffWRT: the input is differentiable.
func (op Activation) DiffWRT(int) []bool { return []bool{true} }

// SymDiff returns the gradient with respect to the input.
func (op Activation) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(ActivationGrad{Kind: op.Kind}, inputs[0], grad)
	return G.Nodes{dx}, err
}

// ActivationGrad maps (x, upstream gradient) to the gradient of Activation at x.
type ActivationGrad struct {
	base
	Kind string
}

func (op ActivationGrad) Arity() int             { return 2 }
func (op ActivationGrad) Type() hm.Type          { t := tensorOf(2); return hm.NewFnType(t, t, t) }
func (op ActivationGrad) String() string         { return "ActivationGrad{" + op.Kind + "}" }
func (op ActivationGrad) Hashcode() uint32       { return hashOf(op) }
func (op ActivationGrad) WriteHash(h hashWriter) { writeHash(op, h) }

// InferShape is the shape of x.
func (op ActivationGrad) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return sameShape(op, ds, 0)
}

// Do runs the gradient on the CPU.
func (op ActivationGrad) Do(vals ...G.Value) (G.Value, error) { return op.DoInto(nil, vals...) }

// DoInto is Do writing into out when out fits the result (IntoDoer).
func (op ActivationGrad) DoInto(out G.Value, vals ...G.Value) (G.Value, error) {
	if err := checkArity(op, len(vals)); err != nil {
		return nil, err
	}
	x, err := dense(op, vals[0])
	if err != nil {
		return nil, err
	}
	g, err := dense(op, vals[1])
	if err != nil {
		return nil, err
	}
	res := output(out, x.Dtype(), false, x.Shape()...)
	err = floats(op,
		func() error {
			activateGrad(op.Kind, data[float32](x), data[float32](g), data[float32](res), x.Shape()[1])
			return nil
		},
		func() error {
			activateGrad(op.Kind, data[float64](x), data[float64](g), data[float64](res), x.Shape()[1])
			return nil
		},
		x, g)
	return res, err
}

// activateGrad computes the activation's gradient row by row, in parallel over rows.
func activateGrad[T float](kind string, x, g, dx []T, width int) {
	parallelRows(len(x)/max(width, 1), width, func(lo, hi int) {
		gw := width
		if kind == SwiGLU {
			gw = width / 2
		}
		activateGradRows(kind, x[lo*width:hi*width], g[lo*gw:hi*gw], dx[lo*width:hi*width], width)
	})
}

// activateGradRows computes the gradient for whole rows of x, g and dx.
func activateGradRows[T float](kind string, x, g, dx []T, width int) {
	switch kind {
	case ReLU:
		if x32, ok := any(x).([]float32); ok {
			reluGradF32(x32, any(g).([]float32), any(dx).([]float32))
			return
		}
		for i, v := range x {
			if v > 0 {
				dx[i] = g[i]
			} else {
				dx[i] = 0
			}
		}
	case GELU:
		for i, v := range x {
			dx[i] = T(float64(g[i]) * geluGrad(float64(v)))
		}
	case GELUTanh:
		for i, v := range x {
			dx[i] = T(float64(g[i]) * geluTanhGrad(float64(v)))
		}
	case SwiGLU:
		h := width / 2
		for r, o := 0, 0; r < len(x); r += width {
			for j := 0; j < h; j++ {
				a, b, gj := float64(x[r+j]), float64(x[r+h+j]), float64(g[o])
				dx[r+j] = T(gj * b * siluGrad(a))
				dx[r+h+j] = T(gj * silu(a))
				o++
			}
		}
	}
}

// positiveMask is all ones when the float32 with these bits is > 0 and zero otherwise (also
// for ±0 and NaN): read as an integer, a float32 above zero has bits from 1 to those of +Inf
// (0x7F800000), so bits−1 (which wraps for +0) is below 0x7F800000. The ReLU kernels use it
// instead of a branch per element, which is mispredicted half the time on activations of
// random sign and made them about ten times slower; the results are those of v > 0 ? v : 0.
func positiveMask(bits uint32) uint32 { return uint32((int64(bits-1) - 0x7F800000) >> 63) }

// reluF32 writes max(x, 0) (0 for NaN) into y.
func reluF32(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		b := math.Float32bits(v)
		y[i] = math.Float32frombits(b & positiveMask(b))
	}
}

// reluGradF32 writes g where x > 0 and 0 elsewhere into dx.
func reluGradF32(x, g, dx []float32) {
	g, dx = g[:len(x)], dx[:len(x)]
	for i, v := range x {
		dx[i] = math.Float32frombits(math.Float32bits(g[i]) & positiveMask(math.Float32bits(v)))
	}
}
