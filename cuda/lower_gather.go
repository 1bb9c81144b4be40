//go:build mqacuda

package cuda

// Lowering of the kinds that move values between positions: permutes, embedding gathers and
// their scatter-add gradients.

import (
	"mqa/layers/ops"
)

var gatherLowerings = map[Kind]lowering{
	KPermute:    {kernels: []string{"k_permute", "k_permute4"}, launch: lowerPermute},
	KGather:     {kernels: []string{"k_gather"}, launch: lowerGather},
	KScatterAdd: {kernels: []string{"k_scatter_add"}, launch: lowerScatterAdd},
}

// lowerPermute launches a permute over the fewest axes (permuteAxes), four floats a thread
// where whole float4 rows move.
func lowerPermute(s *site) (func() error, error) {
	lens, strides := permuteAxes(s.shapeIn(0), s.pn.Node.Op().(ops.Permute).Axes)
	name, elems := "k_permute", s.pn.Size
	last := len(lens) - 1
	vec := strides[last] == 1 && lens[last]%4 == 0 // whole float4 rows
	for k := range last {
		vec = vec && strides[k]%4 == 0
	}
	if vec {
		name, elems = "k_permute4", elems/4
		lens[last] /= 4
		for k := range last {
			strides[k] /= 4
		}
	}
	var pa permArgs
	pa.Rank = int32(len(lens))
	for k := range lens {
		pa.OS[k], pa.IS[k] = int32(lens[k]), int32(strides[k])
	}
	d, in, out := s.d, s.in, s.out
	return func() error { return d.launch(name, grid1(elems, 256), blk256, 0, out, in[0], pa, int32(elems)) }, nil
}

func lowerGather(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.Gather)
	d, in, out, n := s.d, s.in, s.out, int32(s.pn.Size)
	rows, dim := s.pn.Shape[0], s.pn.Shape[1]
	return func() error {
		return d.launch("k_gather", grid1(int(n), 256), blk256, 0, out, in[0], in[1], int32(rows), int32(dim), float32(op.Scale))
	}, nil
}

// lowerScatterAdd zeroes the output and adds each gradient row into its row.
func lowerScatterAdd(s *site) (func() error, error) {
	op := s.pn.Node.Op().(ops.ScatterAdd)
	d, in, out, n := s.d, s.in, s.out, int32(s.pn.Size)
	g := s.shapeIn(1)
	return func() error {
		if err := d.zero(out, 4*int(n)); err != nil {
			return err
		}
		return d.launch("k_scatter_add", grid1(g[0]*g[1], 256), blk256, 0, out, in[0], in[1], int32(g[0]), int32(g[1]), float32(op.Scale))
	}, nil
}
