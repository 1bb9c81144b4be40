package program

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	gblas "gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// product describes one of Gorgonia's batched matrix products (G.BatchedMatMul, and the
// products its gradient is made of): C[i] = op(A[i])·op(B[i]) for every slice i of 3-D tensors.
type product struct {
	transA, transB bool
}

// batchedProductOf recognises a batched product by the op's type and printed form, as the
// CUDA executor does ("A ××× Bᵀ"; Gorgonia does not export the op).
func batchedProductOf(op G.Op) (product, bool) {
	if op == nil || fmt.Sprintf("%T", op) != "gorgonia.linAlgBinOp" {
		return product{}, false
	}
	s := op.String()
	if !strings.Contains(s, "×××") {
		return product{}, false
	}
	return product{transA: strings.HasPrefix(s, "Aᵀ"), transB: strings.HasSuffix(s, "Bᵀ")}, true
}

// minProductFLOPs is the least work run gives one goroutine (a few tens of microseconds).
const minProductFLOPs = 1 << 20

// run computes the product of two contiguous float32 tensors into out when out is a tensor of
// the result's shape (else into a new one), with the same BLAS call per slice as Gorgonia's
// kernel (so the same numbers), the slices shared among the cores. It reports false, having
// done nothing, for inputs it does not take (another dtype, a view); then the op's own Do runs.
func (p product) run(out G.Value, args []G.Value) (G.Value, bool) {
	if len(args) != 2 {
		return nil, false
	}
	a, okA := args[0].(*tensor.Dense)
	b, okB := args[1].(*tensor.Dense)
	if !okA || !okB || a.IsView() || b.IsView() || a.Dims() != 3 || b.Dims() != 3 {
		return nil, false
	}
	ad, okA := a.Data().([]float32)
	bd, okB := b.Data().([]float32)
	if !okA || !okB {
		return nil, false
	}
	as, bs := a.Shape(), b.Shape()
	batch, m, k := as[0], as[1], as[2]
	if p.transA {
		m, k = k, m
	}
	kb, n := bs[1], bs[2]
	if p.transB {
		kb, n = n, kb
	}
	if bs[0] != batch || kb != k || batch*m*n == 0 || k == 0 {
		return nil, false
	}
	c, ok := out.(*tensor.Dense)
	if !ok || c.IsView() || c.Dtype() != tensor.Float32 || !c.Shape().Eq(tensor.Shape{batch, m, n}) {
		c = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch, m, n))
	}
	cd := c.Data().([]float32)
	tA, tB := gblas.NoTrans, gblas.NoTrans
	if p.transA {
		tA = gblas.Trans
	}
	if p.transB {
		tB = gblas.Trans
	}
	impl := tensor.WhichBLAS()
	slices := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			impl.Sgemm(tA, tB, m, n, k, 1, ad[i*m*k:(i+1)*m*k], as[2], bd[i*k*n:(i+1)*k*n], bs[2], 0, cd[i*m*n:(i+1)*m*n], n)
		}
	}
	parts := min(runtime.GOMAXPROCS(0), batch, 2*batch*m*n*k/minProductFLOPs)
	if parts <= 1 {
		slices(0, batch)
		return c, true
	}
	var wg sync.WaitGroup
	for w := range parts {
		wg.Go(func() { slices(batch*w/parts, batch*(w+1)/parts) })
	}
	wg.Wait()
	return c, true
}
