//go:build mqacuda

package cuda

// Lowering of the matrix products: cuBLAS GEMMs, a GEMM group as one batched call.

import "fmt"

var gemmLowerings = map[Kind]lowering{
	KMatMul:        {launch: lowerGEMM},
	KBatchedMatMul: {launch: lowerGEMM},
}

// lowerGEMM launches a 2-D or batched 3-D product, reading the bf16 copies of its inputs with
// BF16 GEMMs; the first node of a GEMM group computes the whole group in one call.
func lowerGEMM(s *site) (func() error, error) {
	pn, rt, p, d := s.pn, s.rt, s.p, s.d
	a, b := s.shapeIn(0), s.shapeIn(1)
	batch, m, nn := 1, pn.Shape[0], pn.Shape[1]
	ka := a[1]
	if pn.TransA {
		ka = a[0]
	}
	if pn.Kind == KBatchedMatMul {
		batch, m, nn = pn.Shape[0], pn.Shape[1], pn.Shape[2]
		ka = a[2]
		if pn.TransA {
			ka = a[1]
		}
	}
	kb := b[len(b)-2]
	if pn.TransB {
		kb = b[len(b)-1]
	}
	if ka != kb {
		return nil, fmt.Errorf("cuda: %v: inner sizes %d and %d differ (shapes %v, %v)", pn.Node.Op(), ka, kb, a, b)
	}
	ta, tb, compute := pn.TransA, pn.TransB, rt.compute
	operand, xyType := func(j int) dptr { return p.addr[j] }, dtypeF32
	if rt.bf16 {
		operand, xyType = func(j int) dptr { return rt.halfOf(p, j) }, dtypeBF16
	}
	x, y, out := operand(pn.In[0]), operand(pn.In[1]), s.out
	g, ok := s.groups[s.i]
	if !ok {
		return func() error { return d.gemm(ta, tb, m, nn, ka, batch, x, y, out, compute, xyType) }, nil
	}
	off := 8 * len(s.groupPtrs)
	for range g {
		s.groupPtrs = append(s.groupPtrs, uint64(x))
	}
	for _, j := range g {
		s.groupPtrs = append(s.groupPtrs, uint64(operand(s.nodes[j].In[1])))
	}
	for _, j := range g {
		s.groupPtrs = append(s.groupPtrs, uint64(p.addr[j]))
	}
	return func() error { return d.gemmGroup(ta, tb, m, nn, ka, len(g), p.groupPtrs.add(off), compute, xyType) }, nil
}
