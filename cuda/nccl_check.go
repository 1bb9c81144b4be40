//go:build mqacuda

package cuda

// A self-contained check of NCCL on this machine's GPUs: one OS thread per GPU, each with its
// GPU's primary context and stream, as the data-parallel executor will have them.

/*
#include <cuda.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// AllReduceCheck is what CheckAllReduce measured.
type AllReduceCheck struct {
	GPUs, Values int
	NCCL         string  // the library's path and version
	Seconds      float64 // per all-reduce, the mean of the timed ones
	BusGBps      float64 // NCCL's "bus bandwidth": 2(n−1)/n · bytes / time
}

// CheckAllReduce sums values float32 across gpus GPUs with NCCL, checks every element of
// the sum on every GPU, then times iters more all-reduces of the same buffer.
func CheckAllReduce(gpus, values, iters int) (AllReduceCheck, error) {
	res := AllReduceCheck{GPUs: gpus, Values: values}
	if gpus < 1 || values < 1 || iters < 1 {
		return res, fmt.Errorf("nccl check: need gpus, values and iterations ≥ 1 (got %d, %d, %d)", gpus, values, iters)
	}
	n, err := LoadNCCL()
	if err != nil {
		return res, err
	}
	res.NCCL = fmt.Sprintf("%s (version %d)", n.Path, n.Version)
	if visible := deviceCount(); visible < gpus {
		return res, fmt.Errorf("nccl check: %d GPUs asked for, %d visible", gpus, visible)
	}
	id, err := n.UniqueID()
	if err != nil {
		return res, err
	}
	errs := make([]error, gpus)
	secs := make([]float64, gpus)
	var wg sync.WaitGroup
	for r := range gpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			secs[r], errs[r] = checkRank(n, id, gpus, r, values, iters)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	for _, s := range secs {
		res.Seconds = max(res.Seconds, s)
	}
	bytes := 4 * float64(values)
	res.BusGBps = 2 * float64(gpus-1) / float64(gpus) * bytes / res.Seconds / 1e9
	return res, nil
}

// checkValue is rank r's element j before the sum.
func checkValue(r, j int) float32 { return float32(r+1) + float32(j%13)/8 }

// checkRank is rank r's part of CheckAllReduce, on a locked OS thread; it returns the mean
// seconds of the timed all-reduces.
func checkRank(n *NCCL, id NCCLUniqueID, gpus, r, values, iters int) (float64, error) {
	var dev C.CUdevice
	var ctx C.CUcontext
	var stream C.CUstream
	if err := check("cuDeviceGet", C.cuDeviceGet(&dev, C.int(r))); err != nil {
		return 0, err
	}
	if err := check("cuDevicePrimaryCtxRetain", C.cuDevicePrimaryCtxRetain(&ctx, dev)); err != nil {
		return 0, err
	}
	defer C.cuDevicePrimaryCtxRelease(dev)
	if err := check("cuCtxSetCurrent", C.cuCtxSetCurrent(ctx)); err != nil {
		return 0, err
	}
	if err := check("cuStreamCreate", C.cuStreamCreate(&stream, C.CU_STREAM_NON_BLOCKING)); err != nil {
		return 0, err
	}
	defer C.cuStreamDestroy(stream)
	var buf C.CUdeviceptr
	bytes := C.size_t(4 * values)
	if err := check("cuMemAlloc", C.cuMemAlloc(&buf, bytes)); err != nil {
		return 0, err
	}
	defer C.cuMemFree(buf)
	host := make([]float32, values)
	for j := range host {
		host[j] = checkValue(r, j)
	}
	if err := check("cuMemcpyHtoD", C.cuMemcpyHtoD(buf, unsafe.Pointer(&host[0]), bytes)); err != nil {
		return 0, err
	}
	comm, err := n.InitRank(id, gpus, r)
	if err != nil {
		return 0, err
	}
	defer comm.Destroy()
	if err := comm.allReduceSum(dptr(buf), dptr(buf), values, stream); err != nil {
		return 0, err
	}
	if err := check("cuStreamSynchronize", C.cuStreamSynchronize(stream)); err != nil {
		return 0, err
	}
	if err := check("cuMemcpyDtoH", C.cuMemcpyDtoH(unsafe.Pointer(&host[0]), buf, bytes)); err != nil {
		return 0, err
	}
	for j, v := range host {
		var want float32
		for k := range gpus {
			want += checkValue(k, j)
		}
		if v != want {
			return 0, fmt.Errorf("nccl check: GPU %d element %d is %g after the all-reduce, want %g", r, j, v, want)
		}
	}
	start := time.Now()
	for range iters {
		if err := comm.allReduceSum(dptr(buf), dptr(buf), values, stream); err != nil {
			return 0, err
		}
	}
	if err := check("cuStreamSynchronize", C.cuStreamSynchronize(stream)); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds() / float64(iters), comm.AsyncError()
}

// deviceCount is the number of GPUs visible (0 without a driver).
func deviceCount() int {
	var count C.int
	if C.cuInit(0) != C.CUDA_SUCCESS || C.cuDeviceGetCount(&count) != C.CUDA_SUCCESS {
		return 0
	}
	return int(count)
}
