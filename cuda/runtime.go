//go:build mqacuda

package cuda

// The GPU runtime that the training executor (exec.go) and the decoder (decode.go) share:
// the worker thread that owns the CUDA context, the driver with the compiled kernels, the
// parameters on the device with their bf16 copies, and the compilation of a plan into a
// program (program.go: memory layout; lower.go: launches).

import (
	_ "embed"
	"fmt"
	"runtime"

	"gorgonia.org/cu/nvrtc"
)

// The kernel module's two sources, compiled as one (loadKernels).
var (
	//go:embed kernels/kernels.cu
	kernelSource string
	//go:embed kernels/decode.cu
	decodeSource string
)

// worker runs closures on one locked OS thread, which owns the CUDA context.
type worker struct{ ch chan func() }

func newWorker() *worker {
	w := &worker{ch: make(chan func())}
	go func() {
		runtime.LockOSThread()
		for f := range w.ch {
			f()
		}
	}()
	return w
}

func (w *worker) do(f func() error) error {
	done := make(chan error, 1)
	w.ch <- func() { done <- f() }
	return <-done
}

// gpuRuntime is the part of a GPU executor or decoder that runs programs. Its methods other
// than close run on its worker thread.
type gpuRuntime struct {
	opt     Options
	w       *worker
	d       *driver
	compute int // the GEMMs' compute type
	names   []string
	sizes   []int  // elements of each parameter, in names order
	state   dptr   // the block that holds the parameters (the executor's holds its moments too)
	params  []dptr // each parameter's value in state
	// BF16 GEMMs (Math "bf16"): every matrix product reads bf16 copies of its inputs and
	// accumulates in FP32 into an FP32 result; half holds the parameters' copies (rewritten by
	// every AdamW update), the programs hold their activations' copies (program.mirror).
	bf16      bool
	halfState dptr
	half      []dptr
	// dropoutStep is where dropout kernels read the training step (the executor's scratch);
	// 0 in decoding, whose graphs have no dropout
	dropoutStep dptr
	decKernel   string // decode attention: "fast", "simt" or "ref" (decoding only)
	decSplits   int    // decode attention: forced key-range splits, 0: planned (decoding only)
	closed      bool
}

// newGPURuntime starts the worker thread and, on it, the driver of GPU ordinal with its memory
// budget (opt.Memory) and the kernels. Uploading the parameters is the owner's: each lays its
// state out its own way.
func newGPURuntime(opt Options, names []string, ordinal int) (*gpuRuntime, error) {
	rt := &gpuRuntime{opt: opt, w: newWorker(), names: names}
	if err := rt.setMath(opt.Math); err != nil {
		rt.close() // its worker
		return nil, err
	}
	err := rt.w.do(func() error {
		d, err := newDriverOn(ordinal)
		if err != nil {
			return err
		}
		rt.d = d
		if err := d.setBudget(opt.Memory); err != nil {
			return err
		}
		return rt.loadKernels()
	})
	if err != nil {
		rt.close()
		return nil, err
	}
	return rt, nil
}

// setMath sets the GEMMs' compute type (and BF16 inputs) for a math mode.
func (rt *gpuRuntime) setMath(mode string) error {
	switch mode {
	case "fp32":
		rt.compute = computeStrict
	case "tf32":
		rt.compute = computeTF32
	case "bf16":
		rt.compute, rt.bf16 = computeBF16, true
	default:
		return fmt.Errorf("cuda: unknown math mode %q (allowed: fp32, tf32, bf16)", mode)
	}
	return nil
}

// loadKernels compiles the kernel module (kernels.cu, then decode.cu) for this GPU with
// NVRTC and looks up every kernel that Go launches.
func (rt *gpuRuntime) loadKernels() error {
	prog, err := nvrtc.CreateProgram(kernelSource+"\n"+decodeSource, "kernels.cu")
	if err != nil {
		return fmt.Errorf("nvrtc: %w", err)
	}
	defer prog.Destroy()
	arch := fmt.Sprintf("--gpu-architecture=compute_%d%d", rt.d.cc[0], rt.d.cc[1])
	if err := prog.Compile(arch, "--std=c++14"); err != nil {
		log, _ := prog.GetLog()
		return fmt.Errorf("nvrtc: compiling kernels.cu: %v\n%s", err, log)
	}
	ptx, err := prog.GetPTX()
	if err != nil {
		return err
	}
	return rt.d.loadPTX(ptx, moduleKernels())
}

// uploadHalf makes the bf16 copies of the parameters (BF16 GEMMs only).
func (rt *gpuRuntime) uploadHalf() error {
	if !rt.bf16 {
		return nil
	}
	var err error
	if rt.halfState, rt.half, err = rt.d.allocTensors(rt.sizes, 2, fmt.Sprintf("bf16 copies of the parameters (%d tensors)", len(rt.sizes))); err != nil {
		return err
	}
	for i, n := range rt.sizes {
		if err := rt.d.launch("k_to_bf16", grid1(n, 256), blk256, 0, rt.half[i], rt.params[i], int32(n)); err != nil {
			return err
		}
	}
	return nil
}

// close frees the parameter state and the bf16 copies, then the driver and the worker; the
// owner frees what else it holds first. Closing twice does nothing.
func (rt *gpuRuntime) close() {
	if rt.closed {
		return
	}
	rt.closed = true
	if rt.d != nil {
		rt.w.do(func() error {
			for _, x := range []dptr{rt.state, rt.halfState} {
				if x != 0 {
					rt.d.free(x)
				}
			}
			rt.d.close()
			return nil
		})
	}
	close(rt.w.ch)
}

// prepare lays p out (see layout) and lowers it into launches (see build). On failure the
// caller frees p.
func (rt *gpuRuntime) prepare(p *program, reuse bool, shared *arena) error {
	if err := rt.layout(p, reuse, shared); err != nil {
		return err
	}
	return rt.build(p)
}
