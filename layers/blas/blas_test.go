package blas

import (
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestChoice checks that MQA_BLAS was honoured: "openblas" must have loaded OpenBLAS (CI sets
// it where OpenBLAS is installed), "gonum" must not have.
func TestChoice(t *testing.T) {
	if err := Err(); err != nil {
		t.Fatal(err)
	}
	switch os.Getenv(EnvVar) {
	case "openblas":
		if !OpenBLAS() {
			t.Fatalf("%s=openblas but the BLAS in use is %s", EnvVar, Name())
		}
	case "gonum":
		if OpenBLAS() {
			t.Fatalf("%s=gonum but the BLAS in use is %s", EnvVar, Name())
		}
	}
	t.Logf("BLAS in use: %s", Name())
}

// gemmCase is one GEMM shape: op(A) is m×k, op(B) is k×n; pad widens every leading dimension.
type gemmCase struct {
	tA, tB  gblas.Transpose
	m, n, k int
	pad     int
}

var gemmCases = []gemmCase{
	{gblas.NoTrans, gblas.NoTrans, 7, 13, 5, 0},
	{gblas.NoTrans, gblas.Trans, 33, 9, 70, 3},
	{gblas.Trans, gblas.NoTrans, 65, 31, 17, 1},
	{gblas.Trans, gblas.Trans, 12, 129, 40, 2},
	{gblas.NoTrans, gblas.Trans, 1, 200, 64, 0},
	{gblas.Trans, gblas.NoTrans, 150, 1, 3, 5},
	// Large enough for split: by rows of C (A plain, A transposed), by columns (B plain, B transposed).
	{gblas.NoTrans, gblas.Trans, 130, 70, 150, 3},
	{gblas.Trans, gblas.Trans, 200, 60, 90, 2},
	{gblas.Trans, gblas.NoTrans, 40, 300, 100, 1},
	{gblas.NoTrans, gblas.Trans, 50, 220, 100, 0},
}

// operands builds random A, B, C slices for a case (C is nonzero, so beta is exercised).
func operands[T float32 | float64](c gemmCase, seed uint64) (a []T, lda int, b []T, ldb int, dst []T, ldc int) {
	r := rand.New(rand.NewPCG(seed, 7))
	fill := func(rows, cols int) ([]T, int) {
		ld := cols + c.pad
		x := make([]T, ld*(rows-1)+cols)
		for i := range x {
			x[i] = T(r.Float64()*2 - 1)
		}
		return x, ld
	}
	if c.tA == gblas.NoTrans {
		a, lda = fill(c.m, c.k)
	} else {
		a, lda = fill(c.k, c.m)
	}
	if c.tB == gblas.NoTrans {
		b, ldb = fill(c.k, c.n)
	} else {
		b, ldb = fill(c.n, c.k)
	}
	dst, ldc = fill(c.m, c.n)
	return a, lda, b, ldb, dst, ldc
}

// closeTo reports the first element of got that differs from want by more than tol·(1+|want|).
func closeTo[T float32 | float64](got, want []T, tol float64) (int, bool) {
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
			return i, false
		}
	}
	return 0, true
}

func TestSgemmMatchesGonum(t *testing.T) {
	if !OpenBLAS() {
		t.Skipf("OpenBLAS is not in use (%s)", Name())
	}
	for i, c := range gemmCases {
		a, lda, b, ldb, want, ldc := operands[float32](c, uint64(i))
		got := append([]float32(nil), want...)
		gonum.Implementation{}.Sgemm(c.tA, c.tB, c.m, c.n, c.k, 0.7, a, lda, b, ldb, -0.3, want, ldc)
		implementation{lib: lib}.Sgemm(c.tA, c.tB, c.m, c.n, c.k, 0.7, a, lda, b, ldb, -0.3, got, ldc)
		if j, ok := closeTo(got, want, 1e-5); !ok {
			t.Errorf("case %+v: element %d is %g, gonum gives %g", c, j, got[j], want[j])
		}
	}
}

func TestDgemmMatchesGonum(t *testing.T) {
	if !OpenBLAS() {
		t.Skipf("OpenBLAS is not in use (%s)", Name())
	}
	for i, c := range gemmCases {
		a, lda, b, ldb, want, ldc := operands[float64](c, uint64(i))
		got := append([]float64(nil), want...)
		gonum.Implementation{}.Dgemm(c.tA, c.tB, c.m, c.n, c.k, 0.7, a, lda, b, ldb, -0.3, want, ldc)
		implementation{lib: lib}.Dgemm(c.tA, c.tB, c.m, c.n, c.k, 0.7, a, lda, b, ldb, -0.3, got, ldc)
		if j, ok := closeTo(got, want, 1e-12); !ok {
			t.Errorf("case %+v: element %d is %g, gonum gives %g", c, j, got[j], want[j])
		}
	}
}

func TestGemmFits(t *testing.T) {
	for _, tc := range []struct {
		name                                     string
		tA, tB                                   gblas.Transpose
		m, n, k, lenA, lda, lenB, ldb, lenC, ldc int
		want                                     bool
	}{
		{"exact", gblas.NoTrans, gblas.NoTrans, 2, 3, 4, 8, 4, 12, 3, 6, 3, true},
		{"transposed A", gblas.Trans, gblas.NoTrans, 2, 3, 4, 8, 2, 12, 3, 6, 3, true},
		{"padded rows", gblas.NoTrans, gblas.Trans, 2, 3, 4, 9, 5, 14, 5, 6, 3, true},
		{"A too short", gblas.NoTrans, gblas.NoTrans, 2, 3, 4, 7, 4, 12, 3, 6, 3, false},
		{"B too short", gblas.NoTrans, gblas.Trans, 2, 3, 4, 8, 4, 11, 4, 6, 3, false},
		{"C too short", gblas.NoTrans, gblas.NoTrans, 2, 3, 4, 8, 4, 12, 3, 5, 3, false},
		{"lda below columns", gblas.NoTrans, gblas.NoTrans, 2, 3, 4, 8, 3, 12, 3, 6, 3, false},
		{"empty", gblas.NoTrans, gblas.NoTrans, 0, 3, 4, 0, 4, 12, 3, 0, 3, false},
		{"k zero", gblas.NoTrans, gblas.NoTrans, 2, 3, 0, 0, 1, 0, 3, 6, 3, false},
		{"bad transpose", 'x', gblas.NoTrans, 2, 3, 4, 8, 4, 12, 3, 6, 3, false},
	} {
		if got := gemmFits(tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.lenA, tc.lda, tc.lenB, tc.ldb, tc.lenC, tc.ldc); got != tc.want {
			t.Errorf("%s: gemmFits = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBadArgumentsPanicLikeGonum checks that a call gonum rejects is not passed to OpenBLAS.
func TestBadArgumentsPanicLikeGonum(t *testing.T) {
	if !OpenBLAS() {
		t.Skipf("OpenBLAS is not in use (%s)", Name())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Sgemm with a short A did not panic")
		}
	}()
	implementation{lib: lib}.Sgemm(gblas.NoTrans, gblas.NoTrans, 2, 2, 2, 1, make([]float32, 3), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
}

// TestSplitBlocks checks split's blocks with gonum doing each block's product, so the row and
// column offsets are tested on machines without OpenBLAS too.
func TestSplitBlocks(t *testing.T) {
	for i, c := range gemmCases {
		a, lda, b, ldb, want, ldc := operands[float64](c, uint64(i))
		got := append([]float64(nil), want...)
		gonum.Implementation{}.Dgemm(c.tA, c.tB, c.m, c.n, c.k, 0.7, a, lda, b, ldb, -0.3, want, ldc)
		calls := 0
		var mu sync.Mutex
		split(c.tA, c.tB, c.m, c.n, c.k, lda, ldb, ldc, a, b, got, func(m, n int, a, b, c2 []float64) {
			mu.Lock()
			calls++
			mu.Unlock()
			gonum.Implementation{}.Dgemm(c.tA, c.tB, m, n, c.k, 0.7, a, lda, b, ldb, -0.3, c2, ldc)
		})
		if j, ok := closeTo(got, want, 1e-12); !ok {
			t.Errorf("case %+v: element %d is %g, unsplit gives %g", c, j, got[j], want[j])
		}
		if big := 2*c.m*c.n*c.k >= 2*minBlockFLOPs; big && runtime.GOMAXPROCS(0) > 1 && calls < 2 {
			t.Errorf("case %+v: %d block(s) for a product of %d FLOPs", c, calls, 2*c.m*c.n*c.k)
		}
	}
}
