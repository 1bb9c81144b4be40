package blas

import (
	"math/rand/v2"
	"time"

	gblas "gonum.org/v1/gonum/blas"
	"gorgonia.org/tensor"
)

// SgemmRate measures the BLAS in use on n×n float32 matrix products: it repeats C = A·B
// for at least d (after one untimed product) and returns the rate in GFLOP/s (2n³ per product).
func SgemmRate(n int, d time.Duration) float64 {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = r.Float32()-0.5, r.Float32()-0.5
	}
	impl := tensor.WhichBLAS()
	impl.Sgemm(gblas.NoTrans, gblas.NoTrans, n, n, n, 1, a, n, b, n, 0, c, n)
	start := time.Now()
	reps := 0
	for time.Since(start) < d {
		impl.Sgemm(gblas.NoTrans, gblas.NoTrans, n, n, n, 1, a, n, b, n, 0, c, n)
		reps++
	}
	return 2 * float64(n) * float64(n) * float64(n) * float64(reps) / time.Since(start).Seconds() / 1e9
}
