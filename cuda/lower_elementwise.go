//go:build mqacuda

package cuda

// Lowering of the elementwise and row-wise kinds: sums, biases and their gradients,
// activations, dropout and rotary positions.

import (
	"fmt"

	"mqa/layers/ops"
)

var elementwiseLowerings = map[Kind]lowering{
	KAdd:            {kernels: []string{"k_add"}, launch: lowerAdd},
	KBiasAdd:        {kernels: []string{"k_bias_add"}, launch: lowerBiasAdd},
	KColSum:         {kernels: []string{"k_col_sum"}, launch: lowerColSum},
	KActivation:     {kernels: []string{"k_act"}, ownCopy: true, launch: lowerActivation},
	KActivationGrad: {kernels: []string{"k_act_grad"}, launch: lowerActivationGrad},
	KDropout:        {kernels: []string{"k_dropout"}, launch: lowerDropout},
	KRoPE:           {kernels: []string{"k_rope"}, launch: lowerRoPE},
}

// lowerAdd launches a sum, unless the norm that reads it computes it.
func lowerAdd(s *site) (func() error, error) {
	if s.fused[s.i] {
		return nil, nil
	}
	d, in, out, n := s.d, s.in, s.out, int32(s.pn.Size)
	return func() error { return d.launch("k_add", grid1(int(n), 256), blk256, 0, out, in[0], in[1], n) }, nil
}

func lowerBiasAdd(s *site) (func() error, error) {
	d, in, out, n := s.d, s.in, s.out, int32(s.pn.Size)
	rows, dim := s.pn.Shape[0], s.pn.Shape[1]
	return func() error {
		return d.launch("k_bias_add", grid1(int(n), 256), blk256, 0, out, in[0], in[1], int32(rows), int32(dim))
	}, nil
}

func lowerColSum(s *site) (func() error, error) {
	d, in, out := s.d, s.in, s.out
	dim := s.pn.Size
	rows := s.nodes[s.pn.In[0]].Size / dim
	return func() error {
		return d.launch("k_col_sum", grid1(dim, 32), [3]int{32, 32, 1}, 0, out, in[0], int32(rows), int32(dim))
	}, nil
}

// activationCodes are the kernels' codes of the activations (kernels.cu, k_act).
var activationCodes = map[string]int32{ops.ReLU: 0, ops.GELU: 1, ops.SwiGLU: 2, ops.GELUTanh: 3}

// activationLaunch is the code, rows, width and thread count of an activation (or its
// gradient) over the 2-D input x: a thread per output element, half the input's for SwiGLU.
// An activation without a code is an error that names it.
func activationLaunch(kind string, x []int) (code int32, rows, width, threads int, err error) {
	code, ok := activationCodes[kind]
	if !ok {
		return 0, 0, 0, 0, fmt.Errorf("cuda: no GPU kernel for the activation %q", kind)
	}
	rows, width = x[0], x[1]
	threads = rows * width
	if kind == ops.SwiGLU {
		threads /= 2
	}
	return code, rows, width, threads, nil
}

// lowerActivation launches an activation, which writes its own bf16 copy.
func lowerActivation(s *site) (func() error, error) {
	code, rows, width, threads, err := activationLaunch(s.pn.Node.Op().(ops.Activation).Kind, s.shapeIn(0))
	if err != nil {
		return nil, err
	}
	d, in, out := s.d, s.in, s.out
	half := s.p.mirror[s.i] // written by the kernel itself (ownCopy)
	return func() error {
		return d.launch("k_act", grid1(threads, 256), blk256, 0, out, half, in[0], int32(rows), int32(width), code)
	}, nil
}

func lowerActivationGrad(s *site) (func() error, error) {
	code, rows, width, threads, err := activationLaunch(s.pn.Node.Op().(ops.ActivationGrad).Kind, s.shapeIn(0))
	if err != nil {
		return nil, err
	}
	d, in, out := s.d, s.in, s.out
	return func() error {
		return d.launch("k_act_grad", grid1(threads, 256), blk256, 0, out, in[0], in[1], int32(rows), int32(width), code)
	}, nil
}

// lowerDropout launches a dropout whose mask mixes the site's key with the step that the
// executor keeps on the device.
func lowerDropout(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.Dropout)
	key := op.SiteKey() // the kernel mixes in the step
	d, in, out, n, stepPtr := s.d, s.in, s.out, int32(s.pn.Size), s.rt.dropoutStep
	return func() error {
		return d.launch("k_dropout", grid1(int(n), 256), blk256, 0, out, in[0], n, key, stepPtr, op.P, 1/(1-op.P))
	}, nil
}

func lowerRoPE(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.RoPE)
	d, in, out := s.d, s.in, s.out
	rows, width := s.pn.Shape[0], s.pn.Shape[1]
	sign := 1.0
	if op.Inverse {
		sign = -1
	}
	return func() error {
		return d.launch("k_rope", grid1(rows*width/2, 256), blk256, 0, out, in[0], in[1], int32(rows), int32(width), int32(op.HeadDim), op.Base, sign)
	}, nil
}
