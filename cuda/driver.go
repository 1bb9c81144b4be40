//go:build mqacuda

package cuda

// A thin cgo layer over the CUDA driver API and cuBLAS. NVRTC comes from
// gorgonia.org/cu/nvrtc. The driver calls are our own rather than gorgonia.org/cu's because
// that package calls cuInit in its init function and exits the process when it fails, which
// would take down every command of a cuda build on a machine without a GPU; here the
// driver is initialised when a GPU executor is first made, and a failure is an error.

/*
#cgo LDFLAGS: -lcuda -lcublas
#include <stdlib.h>
#include <string.h>
#include <cuda.h>
#include <cublas_v2.h>

// Kernel arguments are packed by Go into argbuf; argp[i] points at argument i.
static unsigned char argbuf[4096] __attribute__((aligned(16)));
static void* argp[64];

static void* mqa_argbuf(void) { return argbuf; }

static CUresult mqa_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                           unsigned shmem, CUstream s, int nargs, const int* offs) {
	for (int i = 0; i < nargs; i++) argp[i] = argbuf + offs[i];
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, s, argp, NULL);
}

static cublasStatus_t mqa_gemm(cublasHandle_t h, int opA, int opB, int m, int n, int k,
                               CUdeviceptr Ap, int lda, long long sa, CUdeviceptr Bp, int ldb, long long sb,
                               CUdeviceptr Cp, int ldc, long long sc, int batch, int compute, int abType) {
	const void* A = (const void*)Ap; const void* B = (const void*)Bp; void* C = (void*)Cp;
	float one = 1.0f, zero = 0.0f;
	cublasOperation_t ta = opA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = opB ? CUBLAS_OP_T : CUBLAS_OP_N;
	cudaDataType_t dt = (cudaDataType_t)abType;
	if (batch == 1)
		return cublasGemmEx(h, ta, tb, m, n, k, &one, A, dt, lda, B, dt, ldb, &zero, C, CUDA_R_32F, ldc,
		                    (cublasComputeType_t)compute, CUBLAS_GEMM_DEFAULT);
	return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &one, A, dt, lda, sa, B, dt, ldb, sb, &zero, C, CUDA_R_32F,
	                                  ldc, sc, batch, (cublasComputeType_t)compute, CUBLAS_GEMM_DEFAULT);
}

// One product per pointer triple: Aarray, Barray, Carray are device arrays of count pointers.
static cublasStatus_t mqa_gemm_ptrs(cublasHandle_t h, int opA, int opB, int m, int n, int k, CUdeviceptr Aarray,
                                    int lda, CUdeviceptr Barray, int ldb, CUdeviceptr Carray, int ldc, int count,
                                    int compute, int abType) {
	float one = 1.0f, zero = 0.0f;
	cublasOperation_t ta = opA ? CUBLAS_OP_T : CUBLAS_OP_N, tb = opB ? CUBLAS_OP_T : CUBLAS_OP_N;
	cudaDataType_t dt = (cudaDataType_t)abType;
	return cublasGemmBatchedEx(h, ta, tb, m, n, k, &one, (const void* const*)Aarray, dt, lda, (const void* const*)Barray,
	                           dt, ldb, &zero, (void* const*)Carray, CUDA_R_32F, ldc, count,
	                           (cublasComputeType_t)compute, CUBLAS_GEMM_DEFAULT);
}

static cublasStatus_t mqa_set_ws(cublasHandle_t h, CUdeviceptr p, size_t n) { return cublasSetWorkspace_v2(h, (void*)p, n); }

static const char* mqa_errname(CUresult r) {
	const char* s = NULL;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) return "unknown CUDA error";
	return s;
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

func (p dptr) add(bytes int) dptr { return p + dptr(bytes) }

func check(what string, r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s (%d)", what, C.GoString(C.mqa_errname(r)), int(r))
}

func checkBlas(what string, s C.cublasStatus_t) error {
	if s == C.CUBLAS_STATUS_SUCCESS {
		return nil
	}
	return fmt.Errorf("cublas: %s: status %d", what, int(s))
}

// driver holds the context, the stream, the kernels and the cuBLAS handle. Every method
// must be called from the OS thread that made it (see worker).
type driver struct {
	dev    C.CUdevice
	ctx    C.CUcontext
	stream C.CUstream
	mod    C.CUmodule
	blas   C.cublasHandle_t
	ws     dptr // cuBLAS workspace (so that GEMMs can be captured into a CUDA graph)
	name   string
	cc     [2]int
	sms    int // multiprocessors
	fns    map[string]C.CUfunction
	offs   [64]C.int
	calls  int // kernel launches and GEMMs issued (for counting the kernels of a step)
	meter  memoryMeter
}

// newDriverOn makes the driver of GPU ordinal (0, or a data-parallel rank's GPU): its context,
// stream, cuBLAS handle and workspace.
func newDriverOn(ordinal int) (*driver, error) {
	if err := check("cuInit (is an NVIDIA driver installed and a GPU visible?)", C.cuInit(0)); err != nil {
		return nil, err
	}
	var count C.int
	if err := check("cuDeviceGetCount", C.cuDeviceGetCount(&count)); err != nil {
		return nil, err
	}
	if count < 1 {
		return nil, fmt.Errorf("cuda: no GPU found")
	}
	if ordinal < 0 || ordinal >= int(count) {
		return nil, fmt.Errorf("cuda: GPU %d asked for, %d visible", ordinal, int(count))
	}
	d := &driver{fns: map[string]C.CUfunction{}}
	if err := check("cuDeviceGet", C.cuDeviceGet(&d.dev, C.int(ordinal))); err != nil {
		return nil, err
	}
	var name [256]C.char
	C.cuDeviceGetName(&name[0], 256, d.dev)
	d.name = C.GoString(&name[0])
	var maj, min C.int
	C.cuDeviceGetAttribute(&maj, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d.dev)
	C.cuDeviceGetAttribute(&min, C.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d.dev)
	d.cc = [2]int{int(maj), int(min)}
	var sms C.int
	C.cuDeviceGetAttribute(&sms, C.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d.dev)
	d.sms = int(sms)
	if err := check("cuDevicePrimaryCtxRetain", C.cuDevicePrimaryCtxRetain(&d.ctx, d.dev)); err != nil {
		return nil, err
	}
	if err := check("cuCtxSetCurrent", C.cuCtxSetCurrent(d.ctx)); err != nil {
		return nil, err
	}
	if err := check("cuStreamCreate", C.cuStreamCreate(&d.stream, C.CU_STREAM_NON_BLOCKING)); err != nil {
		return nil, err
	}
	if err := checkBlas("cublasCreate", C.cublasCreate_v2(&d.blas)); err != nil {
		return nil, err
	}
	if err := checkBlas("cublasSetStream", C.cublasSetStream_v2(d.blas, C.cudaStream_t(unsafe.Pointer(d.stream)))); err != nil {
		return nil, err
	}
	const wsBytes = 32 << 20
	ws, err := d.alloc(wsBytes, "cuBLAS workspace")
	if err != nil {
		return nil, err
	}
	d.ws = ws
	if err := checkBlas("cublasSetWorkspace", C.mqa_set_ws(d.blas, C.CUdeviceptr(ws), wsBytes)); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *driver) close() {
	if d.blas != nil {
		C.cublasDestroy_v2(d.blas)
		d.blas = nil
	}
	if d.ws != 0 {
		d.free(d.ws)
		d.ws = 0
	}
	if d.mod != nil {
		C.cuModuleUnload(d.mod)
		d.mod = nil
	}
	if d.stream != nil {
		C.cuStreamDestroy_v2(d.stream)
		d.stream = nil
	}
	if d.ctx != nil {
		C.cuDevicePrimaryCtxRelease_v2(d.dev)
		d.ctx = nil
	}
}

// loadPTX loads a module and looks up the named kernels.
func (d *driver) loadPTX(ptx string, names []string) error {
	cs := C.CString(ptx)
	defer C.free(unsafe.Pointer(cs))
	if err := check("cuModuleLoadData", C.cuModuleLoadData(&d.mod, unsafe.Pointer(cs))); err != nil {
		return err
	}
	for _, n := range names {
		cn := C.CString(n)
		var f C.CUfunction
		r := C.cuModuleGetFunction(&f, d.mod, cn)
		C.free(unsafe.Pointer(cn))
		if err := check("kernel "+n, r); err != nil {
			return err
		}
		d.fns[n] = f
	}
	return nil
}

// residentBlocks is how many blocks of a kernel (threads each, shmem bytes of dynamic shared
// memory) fit on one multiprocessor at once.
func (d *driver) residentBlocks(name string, threads, shmem int) (int, error) {
	f, ok := d.fns[name]
	if !ok {
		return 0, fmt.Errorf("cuda: kernel %s not loaded", name)
	}
	var n C.int
	err := check("cuOccupancyMaxActiveBlocksPerMultiprocessor", C.cuOccupancyMaxActiveBlocksPerMultiprocessor(&n, f, C.int(threads), C.size_t(shmem)))
	return int(n), err
}

// memInfo returns the free and total device memory in bytes.
func (d *driver) memInfo() (free, total int64) {
	var f, t C.size_t
	C.cuMemGetInfo_v2(&f, &t)
	return int64(f), int64(t)
}

// allocTensors allocates one block holding a tensor of each size (elem bytes per element,
// each 256-byte aligned) and returns the block and where each tensor starts.
func (d *driver) allocTensors(sizes []int, elem int, what string) (dptr, []dptr, error) {
	var total int64
	for _, n := range sizes {
		total += align(int64(elem * n))
	}
	base, err := d.alloc(total, what)
	if err != nil {
		return 0, nil, err
	}
	at := make([]dptr, len(sizes))
	off := base
	for i, n := range sizes {
		at[i] = off
		off = off.add(int(align(int64(elem * n))))
	}
	return base, at, nil
}

// alloc allocates device memory; running out of the GPU's memory or of the budget is an error
// (errOutOfMemory) with the sizes.
func (d *driver) alloc(bytes int64, what string) (dptr, error) {
	if bytes <= 0 {
		bytes = 256
	}
	if err := d.meter.admit(bytes, what); err != nil {
		return 0, err
	}
	var p C.CUdeviceptr
	r := C.cuMemAlloc_v2(&p, C.size_t(bytes))
	if r == C.CUDA_ERROR_OUT_OF_MEMORY {
		free, total := d.memInfo()
		return 0, fmt.Errorf("cuda: %w allocating %s: %s needed, %s free of %s", errOutOfMemory, what, mib(bytes), mib(free), mib(total))
	}
	if err := check("cuMemAlloc "+what, r); err != nil {
		return 0, err
	}
	d.meter.record(dptr(p), bytes)
	return dptr(p), nil
}

func (d *driver) free(p dptr) {
	d.meter.forget(p)
	C.cuMemFree_v2(C.CUdeviceptr(p))
}

// setBudget limits the bytes this driver allocates to spec (ParseMemoryBudget): a fraction of
// the card's memory, bytes, or (empty) the memory the card has free now.
func (d *driver) setBudget(spec string) error {
	bytes, fraction, err := ParseMemoryBudget(spec)
	if err != nil {
		return err
	}
	free, total := d.memInfo()
	d.meter.budget = budgetBytes(bytes, fraction, total)
	if d.meter.budget == 0 {
		d.meter.budget = free + d.meter.used
	}
	return nil
}

// peakBytes is the most device memory this driver has held at once.
func (d *driver) peakBytes() int64 { return d.meter.peak }

// upload copies host bytes to the device, asynchronously on the stream. The host memory
// must stay untouched until the next sync.
func (d *driver) upload(dst dptr, src unsafe.Pointer, bytes int) error {
	if bytes == 0 {
		return nil
	}
	return check("cuMemcpyHtoDAsync", C.cuMemcpyHtoDAsync_v2(C.CUdeviceptr(dst), src, C.size_t(bytes), d.stream))
}

// download copies device bytes to the host and waits for it.
func (d *driver) download(dst unsafe.Pointer, src dptr, bytes int) error {
	if bytes == 0 {
		return nil
	}
	if err := check("cuMemcpyDtoHAsync", C.cuMemcpyDtoHAsync_v2(dst, C.CUdeviceptr(src), C.size_t(bytes), d.stream)); err != nil {
		return err
	}
	return d.sync()
}

func (d *driver) copyD(dst, src dptr, bytes int) error {
	return check("cuMemcpyDtoDAsync", C.cuMemcpyDtoDAsync_v2(C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes), d.stream))
}

func (d *driver) zero(dst dptr, bytes int) error {
	return check("cuMemsetD8Async", C.cuMemsetD8Async(C.CUdeviceptr(dst), 0, C.size_t(bytes), d.stream))
}

func (d *driver) sync() error { return check("cuStreamSynchronize", C.cuStreamSynchronize(d.stream)) }

// launch runs a kernel with a 1-D or 2-D grid; args are dptr, int32, float32, float64,
// uint64, int64 or permArgs values.
func (d *driver) launch(name string, grid, block [3]int, shmem int, args ...any) error {
	f, ok := d.fns[name]
	if !ok {
		return fmt.Errorf("cuda: no kernel %q", name)
	}
	buf := (*[4096]byte)(C.mqa_argbuf())
	off := 0
	for i, a := range args {
		var size, align int
		var src unsafe.Pointer
		switch v := a.(type) {
		case dptr:
			size, align, src = 8, 8, unsafe.Pointer(&v)
		case int32:
			size, align, src = 4, 4, unsafe.Pointer(&v)
		case float32:
			size, align, src = 4, 4, unsafe.Pointer(&v)
		case float64:
			size, align, src = 8, 8, unsafe.Pointer(&v)
		case uint64:
			size, align, src = 8, 8, unsafe.Pointer(&v)
		case int64:
			size, align, src = 8, 8, unsafe.Pointer(&v)
		case permArgs:
			size, align, src = int(unsafe.Sizeof(v)), 4, unsafe.Pointer(&v)
		default:
			return fmt.Errorf("cuda: kernel %s argument %d has type %T", name, i, a)
		}
		off = (off + align - 1) &^ (align - 1)
		copy(buf[off:off+size], unsafe.Slice((*byte)(src), size))
		d.offs[i] = C.int(off)
		off += size
	}
	d.calls++
	r := C.mqa_launch(f, C.uint(grid[0]), C.uint(max(grid[1], 1)), C.uint(max(grid[2], 1)),
		C.uint(block[0]), C.uint(max(block[1], 1)), C.uint(max(block[2], 1)), C.uint(shmem), d.stream,
		C.int(len(args)), &d.offs[0])
	if r != C.CUDA_SUCCESS { // the message is built only on failure: this is the hot path
		return check("launch "+name, r)
	}
	return nil
}

// permArgs matches struct PermArgs in kernels.cu.
type permArgs struct {
	Rank int32
	OS   [6]int32
	IS   [6]int32
}

// Compute modes of the GEMMs.
const (
	computeStrict = C.CUBLAS_COMPUTE_32F
	computeTF32   = C.CUBLAS_COMPUTE_32F_FAST_TF32
	computeBF16   = C.CUBLAS_COMPUTE_32F // with BF16 inputs
	dtypeF32      = C.CUDA_R_32F
	dtypeBF16     = C.CUDA_R_16BF
)

// gemm computes row-major C[m×n] = op(A)·op(B) for each of batch slices, where op(A) is
// m×k (A stored k×m when transA) and op(B) is k×n (B stored n×k when transB). A row-major
// product is the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ, so B goes first.
func (d *driver) gemm(transA, transB bool, m, n, k, batch int, a, b, c dptr, compute, abType int) error {
	lda, ldb, err := leadingDims(transA, transB, m, n, k)
	if err != nil {
		return err
	}
	d.calls++
	s := C.mqa_gemm(d.blas, boolInt(transB), boolInt(transA),
		C.int(n), C.int(m), C.int(k),
		C.CUdeviceptr(b), C.int(ldb), C.longlong(k*n),
		C.CUdeviceptr(a), C.int(lda), C.longlong(m*k),
		C.CUdeviceptr(c), C.int(n), C.longlong(m*n), C.int(batch), C.int(compute), C.int(abType))
	if s != C.CUBLAS_STATUS_SUCCESS { // the message is built only on failure: this is the hot path
		return checkBlas(fmt.Sprintf("gemm %d×%d×%d batch %d", m, n, k, batch), s)
	}
	return nil
}

// gemmGroup computes count row-major products C_i[m×n] = op(A_i)·op(B_i) of one shape in one
// cuBLAS call (cublasGemmBatchedEx), as gemm does one: ptrs is a device array of the count A
// addresses, then the count B addresses, then the count C addresses.
func (d *driver) gemmGroup(transA, transB bool, m, n, k, count int, ptrs dptr, compute, abType int) error {
	lda, ldb, err := leadingDims(transA, transB, m, n, k)
	if err != nil {
		return err
	}
	d.calls++
	s := C.mqa_gemm_ptrs(d.blas, boolInt(transB), boolInt(transA), C.int(n), C.int(m), C.int(k),
		C.CUdeviceptr(ptrs.add(8*count)), C.int(ldb), C.CUdeviceptr(ptrs), C.int(lda),
		C.CUdeviceptr(ptrs.add(16*count)), C.int(n), C.int(count), C.int(compute), C.int(abType))
	if s != C.CUBLAS_STATUS_SUCCESS {
		return checkBlas(fmt.Sprintf("gemm group of %d, %d×%d×%d", count, m, n, k), s)
	}
	return nil
}

// leadingDims are the row strides of a row-major A (m×k, stored k×m when transA) and B (k×n,
// stored n×k when transB), after checking that cuBLAS's 32-bit sizes hold the product.
func leadingDims(transA, transB bool, m, n, k int) (lda, ldb int, err error) {
	if m > math.MaxInt32 || n > math.MaxInt32 || k > math.MaxInt32 {
		return 0, 0, fmt.Errorf("cublas: gemm %d×%d×%d too large", m, n, k)
	}
	lda, ldb = k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	return lda, ldb, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// CUDA graphs: capture the stream's work and replay it.
type cudaGraph struct {
	g    C.CUgraph
	exec C.CUgraphExec
}

func (d *driver) beginCapture() error {
	return check("cuStreamBeginCapture", C.cuStreamBeginCapture_v2(d.stream, C.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL))
}

func (d *driver) endCapture() (*cudaGraph, error) {
	g := &cudaGraph{}
	if err := check("cuStreamEndCapture", C.cuStreamEndCapture(d.stream, &g.g)); err != nil {
		return nil, err
	}
	if err := check("cuGraphInstantiate", C.cuGraphInstantiateWithFlags(&g.exec, g.g, 0)); err != nil {
		C.cuGraphDestroy(g.g)
		return nil, err
	}
	return g, nil
}

func (d *driver) launchGraph(g *cudaGraph) error {
	return check("cuGraphLaunch", C.cuGraphLaunch(g.exec, d.stream))
}

// replay runs steps: as the captured graph *g once there is one; else launch by launch, and
// with capture set they are captured into *g as they run and the new graph is launched.
func (d *driver) replay(g **cudaGraph, steps []func() error, capture bool) error {
	if *g != nil {
		return d.launchGraph(*g)
	}
	if capture {
		if err := d.beginCapture(); err != nil {
			return err
		}
	}
	for _, s := range steps {
		if err := s(); err != nil {
			if capture { // end the capture; a graph made of the launches so far is not kept
				if cg, _ := d.endCapture(); cg != nil {
					cg.destroy()
				}
			}
			return err
		}
	}
	if !capture {
		return nil
	}
	cg, err := d.endCapture()
	if err != nil {
		return fmt.Errorf("capturing a CUDA graph: %w", err)
	}
	*g = cg
	return d.launchGraph(cg)
}

func (g *cudaGraph) destroy() {
	C.cuGraphExecDestroy(g.exec)
	C.cuGraphDestroy(g.g)
}

// timeMS returns the GPU time in ms of the work f puts on the stream, between two events
// recorded around it (waiting for the second).
func (d *driver) timeMS(f func() error) (float64, error) {
	var a, b C.CUevent
	if err := check("cuEventCreate", C.cuEventCreate(&a, C.CU_EVENT_DEFAULT)); err != nil {
		return 0, err
	}
	defer C.cuEventDestroy_v2(a)
	if err := check("cuEventCreate", C.cuEventCreate(&b, C.CU_EVENT_DEFAULT)); err != nil {
		return 0, err
	}
	defer C.cuEventDestroy_v2(b)
	if err := check("cuEventRecord", C.cuEventRecord(a, d.stream)); err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	if err := check("cuEventRecord", C.cuEventRecord(b, d.stream)); err != nil {
		return 0, err
	}
	if err := check("cuEventSynchronize", C.cuEventSynchronize(b)); err != nil {
		return 0, err
	}
	var ms C.float
	err := check("cuEventElapsedTime", C.cuEventElapsedTime(&ms, a, b))
	return float64(ms), err
}
