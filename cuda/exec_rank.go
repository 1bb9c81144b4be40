//go:build mqacuda

package cuda

// The GPU executor's part in data-parallel training (train.RankExecutor). Each bucket of
// gradients is summed with one grouped NCCL all-reduce on the executor's stream once the
// backward pass is done; overlapping the buckets with the backward pass needs the program
// to launch them between its nodes (see the README's "Several GPUs").

/*
#include <cuda.h>
#include <cublas_v2.h>

// y += a·x over n floats, on the handle's stream.
static cublasStatus_t mqa_saxpy(cublasHandle_t h, int n, float a, CUdeviceptr x, CUdeviceptr y) {
	return cublasSaxpy_v2(h, n, &a, (const float*)x, 1, (float*)y, 1);
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"mqa/train"
)

// WeightedTrainStep implements train.RankExecutor: the gradient buffers hold Σ w_k·∇loss_k,
// summed with cuBLAS into the accumulation buffer (one whole micro-batch is TrainStep's).
func (e *Executor) WeightedTrainStep(micro []train.Batch, weights []float64) (float64, error) {
	if len(micro) > maxMicro {
		return 0, fmt.Errorf("cuda: %d micro-batches (at most %d)", len(micro), maxMicro)
	}
	if len(micro) == 1 && weights[0] == 1 {
		// One whole micro-batch: its program's gradients are the rank's, as in TrainStep.
		loss, _, err := e.TrainStep(micro)
		return loss, err
	}
	var loss float64
	err := e.w.do(func() error {
		d := e.d
		if err := e.allocAcc(); err != nil {
			return err
		}
		for i, a := range e.acc {
			if err := d.zero(a, 4*e.sizes[i]); err != nil {
				return err
			}
		}
		e.grads = e.acc
		for k, b := range micro {
			p, err := e.runMicro(k, b)
			if err != nil {
				return err
			}
			for i, gi := range p.plan.Grads {
				if err := checkBlas("cublasSaxpy", C.mqa_saxpy(d.blas, C.int(e.sizes[i]), C.float(weights[k]), C.CUdeviceptr(p.addr[gi]), C.CUdeviceptr(e.acc[i]))); err != nil {
					return err
				}
			}
		}
		if len(micro) == 0 {
			return nil
		}
		host := make([]float32, len(micro))
		if err := d.download(unsafe.Pointer(&host[0]), e.lossSlot(0), 4*len(host)); err != nil {
			return err
		}
		for k, l := range host {
			loss += weights[k] * float64(l)
		}
		return nil
	})
	return loss, err
}

// Join implements train.RankExecutor: the rank's member of the NCCL communicator is made on
// the executor's thread (its GPU's context).
func (e *Executor) Join(r train.AllReducer, rank int) error {
	nr, ok := r.(*ncclReducer)
	if !ok {
		return fmt.Errorf("cuda: gradients on the GPU are summed with NCCL, not with %T", r)
	}
	return e.w.do(func() error {
		_, err := nr.comm(rank)
		return err
	})
}

// ReduceGradients implements train.RankExecutor with NCCL, one grouped all-reduce per bucket
// on the executor's stream (Apply, on the same stream, follows it).
func (e *Executor) ReduceGradients(plan []train.Bucket, r train.AllReducer, rank int) error {
	nr, ok := r.(*ncclReducer)
	if !ok {
		return fmt.Errorf("cuda: gradients on the GPU are summed with NCCL, not with %T", r)
	}
	return e.w.do(func() error {
		comm, err := nr.comm(rank)
		if err != nil {
			return err
		}
		for _, b := range plan {
			bufs, counts := make([]dptr, len(b.Params)), make([]int, len(b.Params))
			for i, p := range b.Params {
				bufs[i], counts[i] = e.grads[p], e.sizes[p]
			}
			if err := comm.allReduceGroup(bufs, counts, e.d.stream); err != nil {
				return err
			}
		}
		return nil
	})
}

// GradNorm implements train.RankExecutor.
func (e *Executor) GradNorm() (float64, error) {
	var norm float64
	err := e.w.do(func() error {
		sumsq, err := e.gradSumSq()
		if err != nil {
			return err
		}
		var ss float64
		if err := e.d.download(unsafe.Pointer(&ss), sumsq, 8); err != nil {
			return err
		}
		norm = math.Sqrt(ss)
		return nil
	})
	return norm, err
}

// gradSumSq launches the sum of squares of the gradient buffers into the scratch's float64
// at byte 8 (worker thread) and returns its address.
func (e *Executor) gradSumSq() (dptr, error) {
	sumsq := e.scratch.add(8)
	if err := e.d.zero(sumsq, 8); err != nil {
		return 0, err
	}
	for i, g := range e.grads {
		nb := min((e.sizes[i]+255)/256, 1024)
		if err := e.d.launch("k_sumsq", [3]int{nb, 1, 1}, blk256, 0, sumsq, g, int32(e.sizes[i])); err != nil {
			return 0, err
		}
	}
	return sumsq, nil
}
