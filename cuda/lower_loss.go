//go:build mqacuda

package cuda

// Lowering of the loss: label-smoothed cross-entropy over the logits and its gradient.

import (
	"mqa/layers/ops"
)

var lossLowerings = map[Kind]lowering{
	KCrossEntropy:     {kernels: []string{"k_xent_rows", "k_xent_reduce"}, launch: lowerCrossEntropy},
	KCrossEntropyGrad: {kernels: []string{"k_count", "k_xent_grad"}, launch: lowerCrossEntropyGrad},
}

// lowerCrossEntropy launches the per-row losses into the scratch (which TokenNLL reads after
// the run), then their mean over the rows that are not padding.
func lowerCrossEntropy(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.CrossEntropy)
	d, in, out, aux := s.d, s.in, s.out, s.aux
	x := s.shapeIn(0)
	return func() error {
		if err := d.launch("k_xent_rows", [3]int{x[0], 1, 1}, [3]int{256, 1, 1}, 0, aux, in[0], in[1], int32(x[0]), int32(x[1]), float32(op.Smoothing), int32(op.Ignore)); err != nil {
			return err
		}
		return d.launch("k_xent_reduce", [3]int{1, 1, 1}, [3]int{1024, 1, 1}, 0, out, dptr(0), aux, in[1], int32(x[0]), int32(op.Ignore))
	}, nil
}

// lowerCrossEntropyGrad counts the rows that are not padding into the scratch, then launches
// the gradient with respect to the logits.
func lowerCrossEntropyGrad(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.CrossEntropyGrad)
	d, in, out, aux := s.d, s.in, s.out, s.aux
	x := s.shapeIn(0)
	return func() error {
		if err := d.launch("k_count", [3]int{1, 1, 1}, [3]int{1024, 1, 1}, 0, aux, in[1], int32(x[0]), int32(op.Ignore)); err != nil {
			return err
		}
		return d.launch("k_xent_grad", [3]int{x[0], 1, 1}, [3]int{256, 1, 1}, 0, out, in[0], in[1], in[2], aux, int32(x[0]), int32(x[1]), float32(op.Smoothing), int32(op.Ignore))
	}, nil
}
