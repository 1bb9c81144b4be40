//go:build (linux || darwin) && (amd64 || arm64)

package blas

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// openBLAS holds the addresses of a loaded OpenBLAS's Fortran-interface sgemm_ and dgemm_.
// They take every argument by pointer, so a call is a plain purego.SyscallN (under a
// microsecond) rather than a reflected call with float arguments (about five); their
// integers are C ints (OpenBLAS is built with 32-bit integers unless its name says
// otherwise, as in libopenblas64_).
type openBLAS struct {
	name         string
	sgemm, dgemm uintptr
}

// gemmArgs holds the arguments that sgemm_ and dgemm_ take by pointer. alpha and beta are
// read as float32 by sgemm_, as float64 by dgemm_.
type gemmArgs struct {
	transA, transB byte
	m, n, k        int32
	lda, ldb, ldc  int32
	alpha, beta    float64
	alpha32        float32
	beta32         float32
}

// gemm calls sgemm_ (T float32) or dgemm_ (float64) for row-major operands: a row-major C of
// m×n is a column-major Cᵀ, so it computes Cᵀ = op(B)ᵀ·op(A)ᵀ with the operands swapped.
// The slices must hold their matrices (gemmFits).
func gemm[T float32 | float64](l *openBLAS, tA, tB byte, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	args := &gemmArgs{transA: tB, transB: tA, m: int32(n), n: int32(m), k: int32(k), lda: int32(ldb), ldb: int32(lda), ldc: int32(ldc)}
	fn, pAlpha, pBeta := l.dgemm, unsafe.Pointer(&args.alpha), unsafe.Pointer(&args.beta)
	if unsafe.Sizeof(alpha) == 4 {
		args.alpha32, args.beta32 = float32(alpha), float32(beta)
		fn, pAlpha, pBeta = l.sgemm, unsafe.Pointer(&args.alpha32), unsafe.Pointer(&args.beta32)
	} else {
		args.alpha, args.beta = float64(alpha), float64(beta)
	}
	purego.SyscallN(fn,
		uintptr(unsafe.Pointer(&args.transA)), uintptr(unsafe.Pointer(&args.transB)),
		uintptr(unsafe.Pointer(&args.m)), uintptr(unsafe.Pointer(&args.n)), uintptr(unsafe.Pointer(&args.k)),
		uintptr(pAlpha), uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&args.lda)),
		uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&args.ldb)),
		uintptr(pBeta), uintptr(unsafe.Pointer(&c[0])), uintptr(unsafe.Pointer(&args.ldc)))
	runtime.KeepAlive(args)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
}

// candidates lists where OpenBLAS is found: the loader's own search first, then the
// directories Debian's libopenblas0-pthread, -openmp and -serial packages install to, then
// the common locations on other systems.
func candidates() []string {
	names := []string{"libopenblas.so.0", "libopenblas.so"}
	if runtime.GOOS == "darwin" {
		names = []string{"libopenblas.dylib", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib", "/usr/local/opt/openblas/lib/libopenblas.dylib"}
	}
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"} {
		for _, flavour := range []string{"openblas-pthread", "openblas-openmp", "openblas-serial"} {
			names = append(names, dir+"/"+flavour+"/libopenblas.so.0")
		}
	}
	return append(names, "/usr/lib64/libopenblas.so.0", "/usr/local/lib/libopenblas.so.0", "/opt/OpenBLAS/lib/libopenblas.so.0")
}

// loadOpenBLAS opens the first OpenBLAS it finds and binds sgemm and dgemm.
func loadOpenBLAS() (*openBLAS, error) {
	var errs []string
	for _, path := range candidates() {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		l, err := bind(h)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		return l, nil
	}
	return nil, errors.New("OpenBLAS not found: " + strings.Join(errs, "; "))
}

// bind looks up the functions of an opened library.
func bind(h uintptr) (*openBLAS, error) {
	syms := map[string]uintptr{}
	for _, sym := range []string{"sgemm_", "dgemm_", "openblas_get_config", "openblas_get_corename", "openblas_set_num_threads"} {
		p, err := purego.Dlsym(h, sym)
		if err != nil || p == 0 {
			return nil, fmt.Errorf("no symbol %s", sym)
		}
		syms[sym] = p
	}
	l := &openBLAS{sgemm: syms["sgemm_"], dgemm: syms["dgemm_"]}
	var config, core func() string
	var setThreads func(int32)
	purego.RegisterLibFunc(&config, h, "openblas_get_config")
	purego.RegisterLibFunc(&core, h, "openblas_get_corename")
	purego.RegisterLibFunc(&setThreads, h, "openblas_set_num_threads")
	// OpenBLAS's own threads spin while they wait for work, which takes the cores from the
	// Go code that runs between products (and from everyone else on a shared machine); so
	// each call runs on one thread and implementation splits large products over goroutines.
	setThreads(1)
	words := strings.Fields(config()) // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
	version := strings.Join(words[:min(2, len(words))], " ")
	l.name = fmt.Sprintf("%s (%s kernels, large products split over %d threads)", version, core(), runtime.GOMAXPROCS(0))
	return l, nil
}
