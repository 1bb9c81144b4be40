//go:build mqacuda

package cuda

import (
	_ "embed"
	"fmt"
	"math"
	"os"
	"runtime"
	"unsafe"

	"gorgonia.org/cu/nvrtc"
	gg "gorgonia.org/gorgonia"

	"mqa/layers/ops"
	"mqa/models"
	"mqa/train"
)

//go:embed kernels/kernels.cu
var kernelSource string

func init() {
	train.RegisterExecutor("cuda", func(t *train.Trainer) (train.Executor, error) { return New(t, OptionsFromEnv()) })
}

// Options choose the executor's arithmetic and launch mode.
type Options struct {
	Math   string // "fp32" (strict), "tf32" (GEMM inputs rounded to TF32) or "bf16" (GEMM inputs in bf16, see halfOf)
	Graphs bool   // capture each program into a CUDA graph after its first run and replay it
	Reuse  bool   // share arena memory between nodes whose lifetimes do not overlap
	// Memory is the GPU memory budget (ParseMemoryBudget: bytes, or a fraction of the card);
	// empty: what the card has free when the executor starts.
	Memory string
}

// OptionsFromEnv reads MQA_CUDA_MATH (fp32, tf32, bf16), MQA_CUDA_GRAPHS (1 to capture) and
// MQA_CUDA_MEMORY (the memory budget, as -gpu-memory).
func OptionsFromEnv() Options {
	o := Options{Math: "fp32", Reuse: true, Memory: os.Getenv(MemoryEnv)}
	if m := os.Getenv("MQA_CUDA_MATH"); m != "" {
		o.Math = m
	}
	o.Graphs = os.Getenv("MQA_CUDA_GRAPHS") == "1"
	return o
}

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

// Executor is the GPU executor of train.Executor.
type Executor struct {
	t       *train.Trainer
	opt     Options
	w       *worker
	d       *driver
	compute int
	names   []string
	sizes   []int
	decay   []bool
	// state holds parameters, moments and the accumulation buffer, each 256-byte aligned.
	state        dptr
	params, m, v []dptr
	acc          []dptr
	scratch      dptr // [0:8) dropout step (u64), [8:16) grad sum of squares (f64), [256:...) loss slots (f32)
	stepMirror   uint64
	stepKnown    bool
	grads        []dptr                     // the gradient Apply reads
	programs     *lru[programKey, *program] // compiled training and evaluation programs
	acts         arena                      // the activation memory they share
	closed       bool
	Device       string // the GPU's name
	decKernel    string // decode attention: "fast", "simt" or "ref" (decoding only)
	decSplits    int    // decode attention: forced key-range splits, 0: planned (decoding only)
	// BF16 GEMMs (Math "bf16"): every matrix product reads bf16 copies of its inputs and
	// accumulates in FP32 into an FP32 result; half holds the parameters' copies (rewritten by
	// every AdamW update), the programs hold their activations' copies (program.mirror).
	bf16      bool
	halfState dptr
	half      []dptr
}

const maxMicro = 1024

// maxTrainPrograms bounds the compiled training and evaluation programs an executor keeps.
// Each holds only its constants, inputs and captured CUDA graph (its activations are in the
// shared arena), so memory does not grow with the number of batch shapes; the bound is large
// enough for every shape of a length-bucketed corpus (at most max_len/8+2 training shapes,
// as many for evaluation), because compiling a program again costs about 100 ms on the CPU
// (base translation model): with 16, a run cycling through 31 shapes compiled a program at
// every step, 143 ms a step against PyTorch eager's 38 ms on the same shapes (an H200).
var maxTrainPrograms = 128

// programKey names a compiled program of the training executor.
type programKey struct {
	shape    models.Shape
	training bool
}

// New makes a GPU executor for the trainer and uploads its parameters and moments.
func New(t *train.Trainer, opt Options) (*Executor, error) {
	e := &Executor{t: t, opt: opt, w: newWorker(), names: t.ParamNames()}
	if err := e.setMath(opt.Math); err != nil {
		e.Close() // its worker
		return nil, err
	}
	err := e.w.do(func() error {
		d, err := newDriverOn(t.Rank)
		if err != nil {
			return err
		}
		e.d, e.Device = d, d.name
		if err := d.setBudget(opt.Memory); err != nil {
			return err
		}
		e.initPrograms(maxTrainPrograms)
		if err := e.loadKernels(); err != nil {
			return err
		}
		return e.upload()
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// setMath sets the GEMMs' compute type (and BF16 inputs) for a math mode.
func (e *Executor) setMath(mode string) error {
	switch mode {
	case "fp32":
		e.compute = computeStrict
	case "tf32":
		e.compute = computeTF32
	case "bf16":
		e.compute, e.bf16 = computeBF16, true
	default:
		return fmt.Errorf("cuda: unknown math mode %q (allowed: fp32, tf32, bf16)", mode)
	}
	return nil
}

func (e *Executor) loadKernels() error {
	prog, err := nvrtc.CreateProgram(kernelSource+"\n"+decodeSource, "kernels.cu")
	if err != nil {
		return fmt.Errorf("nvrtc: %w", err)
	}
	defer prog.Destroy()
	arch := fmt.Sprintf("--gpu-architecture=compute_%d%d", e.d.cc[0], e.d.cc[1])
	if err := prog.Compile(arch, "--std=c++14"); err != nil {
		log, _ := prog.GetLog()
		return fmt.Errorf("nvrtc: compiling kernels.cu: %v\n%s", err, log)
	}
	ptx, err := prog.GetPTX()
	if err != nil {
		return err
	}
	return e.d.loadPTX(ptx, moduleKernels())
}

// upload allocates the persistent state and copies parameters and moments up.
func (e *Executor) upload() error {
	n := len(e.names)
	e.sizes, e.decay = make([]int, n), make([]bool, n)
	var total int64
	for i, name := range e.names {
		p := e.t.Params.Get(name)
		e.sizes[i] = p.Shape().TotalSize()
		e.decay[i] = e.t.Opt.Decay[i]
		total += 3 * align(int64(4*e.sizes[i]))
	}
	var err error
	if e.state, err = e.d.alloc(total, fmt.Sprintf("parameters and AdamW moments (%d tensors)", n)); err != nil {
		return err
	}
	if e.scratch, err = e.d.alloc(256+4*maxMicro, "scratch"); err != nil {
		return err
	}
	off := e.state
	for i, name := range e.names {
		b := align(int64(4 * e.sizes[i]))
		e.params = append(e.params, off)
		e.m = append(e.m, off.add(int(b)))
		e.v = append(e.v, off.add(int(2*b)))
		off = off.add(int(3 * b))
		data, ok := e.t.Params.Get(name).Data().([]float32)
		if !ok {
			return fmt.Errorf("cuda: parameter %s is not float32", name)
		}
		if err := e.d.upload(e.params[i], unsafe.Pointer(&data[0]), 4*len(data)); err != nil {
			return err
		}
		if err := e.d.upload(e.m[i], unsafe.Pointer(&e.t.Opt.M[i][0]), 4*e.sizes[i]); err != nil {
			return err
		}
		if err := e.d.upload(e.v[i], unsafe.Pointer(&e.t.Opt.V[i][0]), 4*e.sizes[i]); err != nil {
			return err
		}
	}
	if err := e.uploadHalf(); err != nil {
		return err
	}
	return e.d.sync()
}

// uploadHalf makes the bf16 copies of the parameters (BF16 GEMMs only).
func (e *Executor) uploadHalf() error {
	if !e.bf16 {
		return nil
	}
	var err error
	if e.halfState, e.half, err = e.d.allocTensors(e.sizes, 2, fmt.Sprintf("bf16 copies of the parameters (%d tensors)", len(e.sizes))); err != nil {
		return err
	}
	for i, n := range e.sizes {
		if err := e.d.launch("k_to_bf16", grid1(n, 256), blk256, 0, e.half[i], e.params[i], int32(n)); err != nil {
			return err
		}
	}
	return nil
}

// Sync copies parameters and moments back into the trainer.
func (e *Executor) Sync() error {
	return e.w.do(func() error {
		for i, name := range e.names {
			data := e.t.Params.Get(name).Data().([]float32)
			if err := e.d.download(unsafe.Pointer(&data[0]), e.params[i], 4*len(data)); err != nil {
				return err
			}
			if err := e.d.download(unsafe.Pointer(&e.t.Opt.M[i][0]), e.m[i], 4*e.sizes[i]); err != nil {
				return err
			}
			if err := e.d.download(unsafe.Pointer(&e.t.Opt.V[i][0]), e.v[i], 4*e.sizes[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close frees everything the executor holds.
func (e *Executor) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.d != nil {
		e.w.do(func() error {
			if e.programs != nil {
				e.programs.clear()
			}
			e.acts.release()
			for _, x := range []dptr{e.state, e.scratch, e.halfState} {
				if x != 0 {
					e.d.free(x)
				}
			}
			if len(e.acc) > 0 {
				e.d.free(e.acc[0])
			}
			e.d.close()
			return nil
		})
	}
	close(e.w.ch)
	return nil
}

// program is a compiled plan: device memory and the launches of one graph.
type program struct {
	g          *models.Graph
	plan       *Plan
	addr       []dptr // per plan node
	arena      dptr
	consts     dptr
	fed        []int32 // host staging of the fed int inputs, in fedNames order
	fedDev     dptr
	fedOff     map[string]int
	steps      []func() error
	graph      *cudaGraph
	runs       int
	training   bool
	auxOffsets []int64
	ownArena   bool   // arena is the program's own, not an executor's shared one
	mirror     []dptr // BF16 GEMMs: the bf16 copy of each computed node that a GEMM reads (0: none)
	counters   dptr   // split decode attention: finished splits per item (int32, kept zero between launches)
	groupPtrs  dptr   // the A, B and C addresses of the GEMM groups
	// decoding: float inputs bound to caller-owned buffers (by name), those holding bf16,
	// and a description for error messages
	extern     map[string]dptr
	externBF16 map[string]bool
	desc       string
}

func (p *program) free(d *driver) {
	if p.graph != nil {
		p.graph.destroy()
	}
	for _, x := range []dptr{p.consts, p.fedDev, p.counters, p.groupPtrs} {
		if x != 0 {
			d.free(x)
		}
	}
	if p.ownArena && p.arena != 0 {
		d.free(p.arena)
	}
}

// initPrograms makes the executor's bounded program cache and its shared activation arena
// (worker thread, after the driver is made).
func (e *Executor) initPrograms(limit int) {
	e.programs = newLRU[programKey](limit, func(p *program) { p.free(e.d) })
	e.acts = arena{mem: e.d, onMove: e.programs.clear}
}

// compile builds (or returns the cached) program for a batch shape. A cached program's
// activations are in the executor's shared arena; an uncached one has memory of its own.
func (e *Executor) compile(shape models.Shape, training, reuse, cached bool) (*program, error) {
	key := programKey{shape, training}
	if p, ok := e.programs.get(key); ok && cached {
		return p, nil
	}
	g, grads, err := e.t.Graph(shape, training)
	if err != nil {
		return nil, err
	}
	plan, err := NewPlan(g, e.names, grads)
	if err != nil {
		return nil, err
	}
	p := &program{g: g, plan: plan, training: training}
	shared := &e.acts
	if cached {
		e.programs.makeRoom()
	} else {
		shared = nil
	}
	if err := e.layout(p, reuse, shared); err != nil {
		p.free(e.d)
		return nil, err
	}
	if err := e.build(p); err != nil {
		p.free(e.d)
		return nil, err
	}
	if cached {
		e.programs.add(key, p)
	}
	return p, nil
}

// layout places every node's value: parameters in the state, constants and int inputs in
// their own buffers, everything else in activation memory (see planActivations): in shared, an
// arena the caller's programs share (grown to fit, which drops the programs laid out in it
// before), or, with shared nil, in memory of the program's own.
func (e *Executor) layout(p *program, reuse bool, shared *arena) error {
	nodes := p.plan.Nodes
	p.addr = make([]dptr, len(nodes))
	// constants and int inputs
	var constBytes int64
	constOff := make([]int64, len(nodes))
	p.fedOff = map[string]int{}
	fedN := 0
	for i, pn := range nodes {
		switch pn.Kind {
		case KConst, KIntConst:
			constOff[i] = constBytes
			constBytes += align(int64(4 * pn.Size))
		case KIntFed:
			p.fedOff[pn.Fed] = fedN
			fedN += (pn.Size + 63) &^ 63
		}
	}
	var err error
	if p.consts, err = e.d.alloc(constBytes, "graph constants"); err != nil {
		return err
	}
	p.fed = make([]int32, max(fedN, 1))
	if p.fedDev, err = e.d.alloc(int64(4*len(p.fed)), "batch inputs"); err != nil {
		return err
	}
	mirrorLast, err := e.mirrorUses(p.plan)
	if err != nil {
		return err
	}
	lay := planActivations(p.plan, e.gemmGroups(p), mirrorLast, reuse)
	desc := p.desc
	if p.g != nil {
		desc = fmt.Sprintf("a %+v batch", p.g.Shape)
	}
	what := fmt.Sprintf("activations of %s (%d graph nodes)", desc, len(nodes))
	if shared != nil {
		shared.what = what
		if err := shared.reserve(lay.top); err != nil {
			return err
		}
		p.arena = shared.base
	} else {
		if p.arena, err = e.d.alloc(lay.top, what); err != nil {
			return err
		}
		p.ownArena = true
	}
	for i, pn := range nodes {
		switch {
		case pn.Kind == KParam:
			p.addr[i] = e.params[pn.Param]
		case pn.Kind == KConst || pn.Kind == KIntConst:
			p.addr[i] = p.consts.add(int(constOff[i]))
			if err := e.uploadConst(p.addr[i], pn); err != nil {
				return err
			}
		case pn.Kind == KIntFed:
			p.addr[i] = p.fedDev.add(4 * p.fedOff[pn.Fed])
		case pn.Kind == KFloatFed:
			a, ok := p.extern[pn.Fed]
			if !ok {
				return fmt.Errorf("cuda: no buffer bound to input %s", pn.Fed)
			}
			p.addr[i] = a
		case pn.Alias != i:
			p.addr[i] = p.addr[pn.Alias]
		default:
			p.addr[i] = p.arena.add(int(lay.value[i]))
		}
	}
	p.mirror = make([]dptr, len(nodes))
	for i := range mirrorLast {
		p.mirror[i] = p.arena.add(int(lay.mirror[i]))
	}
	p.auxOffsets = lay.aux
	if err := e.allocCounters(p); err != nil {
		return err
	}
	return e.d.sync()
}

// allocCounters gives a program with split decode attention its zeroed counters of finished
// splits, one per (row, K/V head) of the largest such node: the nodes run one after another and
// each leaves them zero, so they share one array.
func (e *Executor) allocCounters(p *program) error {
	n := 0
	for _, pn := range p.plan.Nodes {
		if pn.Kind == KDecodeAttention && pn.Splits > 1 {
			n = max(n, pn.Shape[0]*pn.Node.Op().(ops.DecodeAttention).KVHeads)
		}
	}
	if n == 0 {
		return nil
	}
	var err error
	if p.counters, err = e.d.alloc(int64(4*n), "decode-attention split counters"); err != nil {
		return err
	}
	return e.d.zero(p.counters, 4*n)
}

// mirrorUses is bf16MirrorUses of the plan with BF16 GEMMs, else empty.
func (e *Executor) mirrorUses(plan *Plan) (map[int]int, error) {
	if !e.bf16 {
		return map[int]int{}, nil
	}
	return bf16MirrorUses(plan)
}

// halfOf is the bf16 copy of node j's value (BF16 GEMMs).
func (e *Executor) halfOf(p *program, j int) dptr {
	r := p.plan.Nodes[j].Alias
	if pn := p.plan.Nodes[r]; pn.Kind == KParam {
		return e.half[pn.Param]
	}
	return p.mirror[r]
}

// gemmGroups is the plan's GEMM groups where this executor batches them: with TF32 or BF16
// GEMMs. In strict FP32 cuBLAS runs a pointer-array batch with a slow kernel (an H200,
// device call 11: MQA's K and V projections at batch 64 took 21 µs batched against 17 µs
// as two GEMMs), so there each product runs on its own.
func (e *Executor) gemmGroups(p *program) map[int][]int {
	if e.compute == computeStrict && !e.bf16 { // computeBF16 is the same compute type
		return nil
	}
	return p.plan.GEMMGroups
}

func (e *Executor) uploadConst(dst dptr, pn PlanNode) error {
	v := pn.Node.Value()
	if pn.Kind == KIntConst {
		xs, ok := v.Data().([]int)
		if !ok {
			return fmt.Errorf("cuda: int constant %s holds %T", pn.Node.Name(), v.Data())
		}
		ys := make([]int32, len(xs))
		for i, x := range xs {
			ys[i] = int32(x)
		}
		err := e.d.upload(dst, unsafe.Pointer(&ys[0]), 4*len(ys))
		if err == nil {
			err = e.d.sync()
		}
		return err
	}
	var ys []float32
	switch x := v.Data().(type) {
	case float32:
		ys = []float32{x}
	case float64:
		ys = []float32{float32(x)}
	case []float32:
		ys = x
	case []float64:
		ys = make([]float32, len(x))
		for i, f := range x {
			ys[i] = float32(f)
		}
	default:
		return fmt.Errorf("cuda: constant %s holds %T", pn.Node.Name(), v.Data())
	}
	if len(ys) != pn.Size {
		return fmt.Errorf("cuda: constant %s has %d values for shape %v", pn.Node.Name(), len(ys), pn.Shape)
	}
	err := e.d.upload(dst, unsafe.Pointer(&ys[0]), 4*len(ys))
	if err == nil {
		err = e.d.sync()
	}
	return err
}

// feed stages a batch's int inputs and uploads them.
func (e *Executor) feed(p *program, b train.Batch) error {
	if b.Shape != p.g.Shape {
		return fmt.Errorf("batch of shape %+v fed to a graph of shape %+v", b.Shape, p.g.Shape)
	}
	put := func(name string, xs []int, limit int) error {
		off, ok := p.fedOff[name]
		if !ok {
			return nil
		}
		n := p.plan.Nodes[p.plan.Index[fedNode(p.g, name)]].Size
		if len(xs) != n {
			return fmt.Errorf("feed: %d values of %s for %d", len(xs), name, n)
		}
		for i, x := range xs {
			if x < 0 || x >= limit {
				return fmt.Errorf("feed: %s[%d] = %d is outside 0..%d", name, i, x, limit-1)
			}
			p.fed[off+i] = int32(x)
		}
		return nil
	}
	cfg := e.t.Cfg
	srcVocab := cfg.Vocab
	if cfg.SrcVocab > 0 {
		srcVocab = cfg.SrcVocab
	}
	if err := put("tokens", b.Tokens, cfg.Vocab); err != nil {
		return err
	}
	if err := put("targets", b.Targets, cfg.Vocab); err != nil {
		return err
	}
	if p.g.Src != nil {
		if err := put("src", b.Src, srcVocab); err != nil {
			return err
		}
		for i, l := range b.SrcLens {
			if l < 1 || l > b.Shape.SrcLen {
				return fmt.Errorf("feed: source %d has length %d, outside 1..%d", i, l, b.Shape.SrcLen)
			}
		}
		if err := put("src_lens", b.SrcLens, b.Shape.SrcLen+1); err != nil {
			return err
		}
	}
	return e.d.upload(p.fedDev, unsafe.Pointer(&p.fed[0]), 4*len(p.fed))
}

func fedNode(g *models.Graph, name string) *gg.Node {
	switch name {
	case "tokens":
		return g.Tokens
	case "targets":
		return g.Targets
	case "src":
		return g.Src
	}
	return g.SrcLens
}

// run launches a program's steps (or replays its CUDA graph).
func (e *Executor) run(p *program) error {
	if p.training && (!e.stepKnown || e.stepMirror != e.t.DropoutStep) {
		e.stepMirror, e.stepKnown = e.t.DropoutStep, true
		v := new(uint64) // pointer-free memory for cgo
		*v = e.stepMirror
		if err := e.d.upload(e.scratch, unsafe.Pointer(v), 8); err != nil {
			return err
		}
	}
	p.runs++
	return e.d.replay(&p.graph, p.steps, e.opt.Graphs && p.runs == 2)
}

func (e *Executor) lossSlot(k int) dptr { return e.scratch.add(256 + 4*k) }

// TrainStep runs forward and backward on each micro-batch; the gradient (summed over the
// micro-batches) stays on the GPU for Apply.
func (e *Executor) TrainStep(micro []train.Batch) (loss, gradNorm float64, err error) {
	if len(micro) > maxMicro {
		return 0, 0, fmt.Errorf("cuda: %d micro-batches (at most %d)", len(micro), maxMicro)
	}
	err = e.w.do(func() error {
		d := e.d
		for k, b := range micro {
			p, err := e.runMicro(k, b)
			if err != nil {
				return err
			}
			if len(micro) == 1 {
				// a new slice: e.grads may be e.acc from an accumulating step
				e.grads = make([]dptr, len(p.plan.Grads))
				for i, gi := range p.plan.Grads {
					e.grads[i] = p.addr[gi]
				}
				break
			}
			if err := e.accumulate(p, k == 0); err != nil {
				return err
			}
			e.grads = e.acc
		}
		sumsq := e.scratch.add(8)
		if err := d.zero(sumsq, 8); err != nil {
			return err
		}
		for i, g := range e.grads {
			nb := min((e.sizes[i]+255)/256, 1024)
			if err := d.launch("k_sumsq", [3]int{nb, 1, 1}, blk256, 0, sumsq, g, int32(e.sizes[i])); err != nil {
				return err
			}
		}
		host := make([]float32, 64+len(micro))
		if err := d.download(unsafe.Pointer(&host[0]), e.scratch, 4*len(host)); err != nil {
			return err
		}
		ss := *(*float64)(unsafe.Pointer(&host[2]))
		for k := range micro {
			loss += float64(host[64+k]) / float64(len(micro))
		}
		gradNorm = math.Sqrt(ss) / float64(len(micro))
		return nil
	})
	return loss, gradNorm, err
}

// allocAcc allocates the gradient accumulation buffer once (Close frees it through acc[0]).
func (e *Executor) allocAcc() error {
	if e.acc != nil {
		return nil
	}
	_, acc, err := e.d.allocTensors(e.sizes, 4, "gradient accumulation")
	e.acc = acc
	return err
}

// runMicro compiles (or takes the cached) program of micro-batch k, runs it and copies its
// loss into loss slot k.
func (e *Executor) runMicro(k int, b train.Batch) (*program, error) {
	p, err := e.compile(b.Shape, true, e.opt.Reuse, true)
	if err != nil {
		return nil, err
	}
	if err := e.feed(p, b); err != nil {
		return nil, err
	}
	if err := e.run(p); err != nil {
		return nil, err
	}
	return p, e.d.copyD(e.lossSlot(k), p.addr[p.plan.Loss], 4)
}

func (e *Executor) accumulate(p *program, first bool) error {
	if err := e.allocAcc(); err != nil {
		return err
	}
	for i, gi := range p.plan.Grads {
		if err := e.d.launch("k_accum", grid1(e.sizes[i], 256), blk256, 0, e.acc[i], p.addr[gi], int32(e.sizes[i]), b2i(first)); err != nil {
			return err
		}
	}
	return nil
}

// Apply runs AdamW on the GPU, exactly as train.AdamW.Update.
func (e *Executor) Apply(lr, gradScale float64) error {
	o := e.t.Opt
	if len(e.grads) != len(e.names) {
		return fmt.Errorf("cuda: Apply without a gradient")
	}
	return e.w.do(func() error {
		o.Steps++
		bc1 := 1 - math.Pow(o.Beta1, float64(o.Steps))
		bc2 := 1 - math.Pow(o.Beta2, float64(o.Steps))
		step := float32(lr / bc1)
		rbc2 := float32(1 / math.Sqrt(bc2))
		for i := range e.names {
			decay := float32(1)
			if o.Decay[i] {
				decay = float32(1 - lr*o.WeightDecay)
			}
			var half dptr
			if e.bf16 {
				half = e.half[i]
			}
			if err := e.d.launch("k_adamw", grid1(e.sizes[i], 256), blk256, 0, e.params[i], half, e.m[i], e.v[i], e.grads[i],
				int32(e.sizes[i]), float32(o.Beta1), float32(o.Beta2), step, rbc2, float32(o.Eps), float32(gradScale), decay); err != nil {
				return err
			}
		}
		return nil
	})
}

// Loss runs the evaluation graph of a batch.
func (e *Executor) Loss(b train.Batch) (float64, error) {
	var loss float32
	err := e.evaluate(b, func(p *program) error {
		return e.d.download(unsafe.Pointer(&loss), p.addr[p.plan.Loss], 4)
	})
	return float64(loss), err
}

// TokenNLL runs the evaluation graph of a batch and returns the NLL of each target (0 at
// padding): the per-row losses that the cross-entropy kernel leaves in its scratch.
func (e *Executor) TokenNLL(b train.Batch) ([]float64, error) {
	rows := make([]float32, len(b.Targets))
	err := e.evaluate(b, func(p *program) error {
		pn := p.plan.Nodes[p.plan.Loss]
		if op, ok := pn.Node.Op().(ops.CrossEntropy); pn.Kind != KCrossEntropy || !ok || op.Smoothing != 0 {
			return fmt.Errorf("token NLL: the evaluation loss is %v, not an unsmoothed cross-entropy", pn.Node.Op())
		}
		if len(rows) == 0 {
			return nil
		}
		return e.d.download(unsafe.Pointer(&rows[0]), p.arena.add(int(p.auxOffsets[p.plan.Loss])), 4*len(rows))
	})
	if err != nil {
		return nil, err
	}
	nll := make([]float64, len(rows))
	for i, x := range rows {
		nll[i] = float64(x)
	}
	return nll, nil
}

// evaluate feeds b to the (cached) evaluation program, runs it and hands it to read, all on
// the worker thread.
func (e *Executor) evaluate(b train.Batch, read func(p *program) error) error {
	return e.w.do(func() error {
		p, err := e.compile(b.Shape, false, e.opt.Reuse, true)
		if err != nil {
			return err
		}
		if err := e.feed(p, b); err != nil {
			return err
		}
		if err := e.run(p); err != nil {
			return err
		}
		return read(p)
	})
}

// NodeValues runs one training step's graph (forward and backward, without an update)
// with every node in its own memory and returns the plan and each float node's value
// (nil for int nodes). For parity tests.
func (e *Executor) NodeValues(b train.Batch) (*Plan, *models.Graph, [][]float32, error) {
	var p *program
	var vals [][]float32
	err := e.w.do(func() error {
		var err error
		if p, err = e.compile(b.Shape, true, false, false); err != nil {
			return err
		}
		defer p.free(e.d)
		if err := e.feed(p, b); err != nil {
			return err
		}
		e.stepKnown = false
		if err := e.run(p); err != nil {
			return err
		}
		vals = make([][]float32, len(p.plan.Nodes))
		for i, pn := range p.plan.Nodes {
			if pn.Int {
				continue
			}
			vals[i] = make([]float32, pn.Size)
			if err := e.d.download(unsafe.Pointer(&vals[i][0]), p.addr[i], 4*pn.Size); err != nil {
				return fmt.Errorf("%s %v: %w", pn.Kind, pn.Node.Op(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return p.plan, p.g, vals, nil
}

// Describe says which GPU and mode the executor runs.
func (e *Executor) Describe() string {
	return fmt.Sprintf("%s (sm_%d%d), math %s, cuda graphs %v", e.Device, e.d.cc[0], e.d.cc[1], e.opt.Math, e.opt.Graphs)
}

// PeakMemory is the most device memory the executor has held at once, in bytes.
func (e *Executor) PeakMemory() int64 {
	var peak int64
	e.w.do(func() error {
		peak = e.d.peakBytes()
		return nil
	})
	return peak
}

// Reserve sets the shared activation arena to what the largest of the given batch shapes
// needs (and, when updates accumulate micro-batches, allocates the accumulation buffer), so
// that memory is settled before the first step and a run that cannot fit says so at once.
func (e *Executor) Reserve(train, eval []models.Shape) error {
	return e.w.do(func() error {
		var need int64
		var largest models.Shape
		for _, c := range []struct {
			shapes   []models.Shape
			training bool
		}{{train, true}, {eval, false}} {
			for _, shape := range largestShapes(c.shapes) {
				top, err := e.activationBytes(shape, c.training)
				if err != nil {
					return err
				}
				if top > need {
					need, largest = top, shape
				}
			}
		}
		if e.t.Settings.Accum > 1 {
			if err := e.allocAcc(); err != nil {
				return e.tooLarge(largest, need, err)
			}
		}
		e.acts.what = fmt.Sprintf("activations of the largest batch, %+v", largest)
		if err := e.acts.reserve(need); err != nil {
			return e.tooLarge(largest, need, err)
		}
		return nil
	})
}

// activationBytes plans (without allocating) the activation memory of a batch shape's program.
func (e *Executor) activationBytes(shape models.Shape, training bool) (int64, error) {
	g, grads, err := e.t.Graph(shape, training)
	if err != nil {
		return 0, err
	}
	plan, err := NewPlan(g, e.names, grads)
	if err != nil {
		return 0, err
	}
	mirrors, err := e.mirrorUses(plan)
	if err != nil {
		return 0, err
	}
	return planActivations(plan, e.gemmGroups(&program{plan: plan}), mirrors, e.opt.Reuse).top, nil
}

// tooLarge explains a run whose largest batch does not fit, with what would help.
func (e *Executor) tooLarge(largest models.Shape, need int64, err error) error {
	if !IsOutOfMemory(err) {
		return err
	}
	return fmt.Errorf("%w\n  the largest batch, %+v, needs %s of activations beside %s of parameters, optimizer state and buffers already held;\n"+
		"  to fit, lower -max-tokens (translation) or -batch/-seq (LM) and keep the tokens per update with -accum, use BF16 GEMMs "+
		"(MQA_CUDA_MATH=bf16), or raise -gpu-memory if the card has room", err, largest, mib(need), mib(e.d.meter.used))
}
