//go:build !((linux || darwin) && (amd64 || arm64))

package blas

import (
	"fmt"
	"runtime"
)

// openBLAS is never loaded on this platform (purego opens libraries only on Linux and macOS
// here): every product runs on gonum's pure-Go BLAS.
type openBLAS struct{ name string }

func loadOpenBLAS() (*openBLAS, error) {
	return nil, fmt.Errorf("opening OpenBLAS at run time is not supported on %s/%s", runtime.GOOS, runtime.GOARCH)
}

// gemm is never called: implementation uses it only with a loaded library.
func gemm[T float32 | float64](*openBLAS, byte, byte, int, int, int, T, []T, int, []T, int, T, []T, int) {
	panic("blas: OpenBLAS is not available on " + runtime.GOOS + "/" + runtime.GOARCH)
}
