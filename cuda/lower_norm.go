//go:build mqacuda

package cuda

// Lowering of layer and RMS norms and their gradients.

import (
	"fmt"

	"mqa/layers/ops"
)

var normLowerings = map[Kind]lowering{
	KNorm:     {kernels: []string{"k_norm", "k_norm_rows", "k_add_norm", "k_add_norm_rows"}, ownCopy: true, launch: lowerNorm},
	KNormGrad: {kernels: []string{"k_norm_grad_x", "k_norm_stats", "k_col_sum_xhat"}, launch: lowerNormGrad},
}

// lowerNorm launches a norm, which also computes the residual sum it reads where the plan
// fused the two (Plan.AddNorm) and writes its own bf16 copy.
func lowerNorm(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.Norm)
	d, in, out := s.d, s.in, s.out
	rows, dim := s.pn.Shape[0], s.pn.Shape[1]
	var beta dptr
	if !op.RMS {
		beta = in[2]
	}
	half := s.p.mirror[s.i] // written by the kernel itself (ownCopy)
	var sum, a, b dptr = 0, in[0], 0
	if f, ok := s.p.plan.AddNorm[s.i]; ok {
		sum, a, b = in[0], s.p.addr[s.nodes[f].In[0]], s.p.addr[s.nodes[f].In[1]]
	}
	return func() error {
		return d.norm(out, half, sum, a, b, in[1], beta, rows, dim, op.RMS, op.Eps)
	}, nil
}

// lowerNormGrad launches the gradient of a norm with respect to its input (Wrt 0) or its gain
// (Wrt 1: the rows' statistics into the scratch, then the column sums).
func lowerNormGrad(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.NormGrad)
	d, in, out, aux := s.d, s.in, s.out, s.aux
	x := s.shapeIn(0)
	rows, dim := x[0], x[1]
	switch op.Wrt {
	case 0:
		return func() error {
			return d.launch("k_norm_grad_x", [3]int{rows, 1, 1}, [3]int{128, 1, 1}, 0, out, in[0], in[1], in[2], int32(rows), int32(dim), b2i(op.RMS), float32(op.Eps))
		}, nil
	case 1:
		return func() error {
			if err := d.launch("k_norm_stats", [3]int{rows, 1, 1}, [3]int{128, 1, 1}, 0, aux, in[0], int32(rows), int32(dim), b2i(op.RMS), float32(op.Eps)); err != nil {
				return err
			}
			return d.launch("k_col_sum_xhat", grid1(dim, 32), [3]int{32, 32, 1}, 0, out, in[2], in[0], aux, int32(rows), int32(dim))
		}, nil
	}
	return nil, fmt.Errorf("cuda: %v: no gradient with respect to input %d", op, op.Wrt)
}

// normRowsMax is the widest row k_norm_rows and k_add_norm_rows take (32 lanes × NORM_PER_LANE).
const normRowsMax = 32 * 32

// norm launches a layer or RMS norm of rows × dim: y = norm(a) · gamma (+ beta), or with sum
// set, sum = a + b and y = norm(sum) (k_add_norm); yh, if set, receives y in bf16. A warp per
// row where the row fits its registers, else a block per row.
func (d *driver) norm(y, yh, sum, a, b, gamma, beta dptr, rows, dim int, rms bool, eps float64) error {
	grid, kernel, addKernel := [3]int{rows, 1, 1}, "k_norm", "k_add_norm"
	if dim <= normRowsMax {
		grid, kernel, addKernel = grid1(rows, 4), "k_norm_rows", "k_add_norm_rows"
	}
	if sum == 0 {
		return d.launch(kernel, grid, [3]int{128, 1, 1}, 0, y, yh, a, gamma, beta, int32(rows), int32(dim), b2i(rms), float32(eps))
	}
	return d.launch(addKernel, grid, [3]int{128, 1, 1}, 0, y, yh, sum, a, b, gamma, beta, int32(rows), int32(dim), b2i(rms), float32(eps))
}
