package blas

import (
	"math"
	"runtime"
	"sync"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// implementation is gonum's BLAS with the matrix products (Sgemm, Dgemm) done by OpenBLAS.
// A call whose arguments gonum would reject is passed to gonum, which panics with its usual
// message, so OpenBLAS never reads outside a slice.
type implementation struct {
	gonum.Implementation
	lib *openBLAS
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32 matrices.
func (impl implementation) Sgemm(tA, tB gblas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !gemmFits(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc) {
		impl.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	split(tA, tB, m, n, k, lda, ldb, ldc, a, b, c, func(m, n int, a, b, c []float32) {
		gemm(impl.lib, trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	})
}

// Dgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float64 matrices.
func (impl implementation) Dgemm(tA, tB gblas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if !gemmFits(tA, tB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc) {
		impl.Implementation.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	split(tA, tB, m, n, k, lda, ldb, ldc, a, b, c, func(m, n int, a, b, c []float64) {
		gemm(impl.lib, trans(tA), trans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	})
}

// minBlockFLOPs is the least work split gives one goroutine: about 10 µs of OpenBLAS on one
// core, so that starting the goroutine costs little against it.
const minBlockFLOPs = 1 << 20

// split runs gemm on blocks of C's rows (or, when C has fewer rows than columns, of its
// columns), one block per goroutine: up to GOMAXPROCS blocks, each of at least
// minBlockFLOPs and 8 rows (columns). A block is the product of the matching rows of op(A)
// (columns of op(B)) with all of op(B) (op(A)). A small product runs as one call.
func split[T float32 | float64](tA, tB gblas.Transpose, m, n, k, lda, ldb, ldc int, a, b, c []T, gemm func(m, n int, a, b, c []T)) {
	parts := min(runtime.GOMAXPROCS(0), 2*m*n*k/minBlockFLOPs, max(m, n)/8)
	if parts <= 1 {
		gemm(m, n, a, b, c)
		return
	}
	var wg sync.WaitGroup
	for p := range parts {
		if m >= n {
			lo, hi := m*p/parts, m*(p+1)/parts
			aOff := lo * lda
			if tA != gblas.NoTrans {
				aOff = lo
			}
			wg.Go(func() { gemm(hi-lo, n, a[aOff:], b, c[lo*ldc:]) })
			continue
		}
		lo, hi := n*p/parts, n*(p+1)/parts
		bOff := lo
		if tB != gblas.NoTrans {
			bOff = lo * ldb
		}
		wg.Go(func() { gemm(m, hi-lo, a, b[bOff:], c[lo:]) })
	}
	wg.Wait()
}

// trans is the Fortran BLAS letter of a transpose.
func trans(t gblas.Transpose) byte {
	if t == gblas.NoTrans {
		return 'N'
	}
	return 'T'
}

// gemmFits reports whether a GEMM is non-empty and its row-major operands lie inside their
// slices with valid leading dimensions, all within C int range.
func gemmFits(tA, tB gblas.Transpose, m, n, k, lenA, lda, lenB, ldb, lenC, ldc int) bool {
	if m <= 0 || n <= 0 || k <= 0 || !transOK(tA) || !transOK(tB) {
		return false
	}
	rowsA, colsA := m, k
	if tA != gblas.NoTrans {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB != gblas.NoTrans {
		rowsB, colsB = n, k
	}
	return within(rowsA, colsA, lda, lenA) && within(rowsB, colsB, ldb, lenB) && within(m, n, ldc, lenC)
}

func transOK(t gblas.Transpose) bool {
	return t == gblas.NoTrans || t == gblas.Trans || t == gblas.ConjTrans
}

// within reports whether a rows×cols row-major matrix with leading dimension ld fits in a
// slice of length n, with every size a C int.
func within(rows, cols, ld, n int) bool {
	return ld >= cols && ld <= math.MaxInt32 && rows <= math.MaxInt32 && cols <= math.MaxInt32 &&
		n >= ld*(rows-1)+cols
}
