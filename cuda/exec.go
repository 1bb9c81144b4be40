//go:build mqacuda

package cuda

import (
	"fmt"
	"math"
	"os"
	"unsafe"

	gg "gorgonia.org/gorgonia"

	"mqa/layers/ops"
	"mqa/models"
	"mqa/train"
)

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

// Executor is the GPU executor of train.Executor: the runtime (parameters on the GPU,
// programs) and the training state, AdamW moments, gradient accumulation and the scratch.
type Executor struct {
	*gpuRuntime
	t     *train.Trainer
	decay []bool
	// the runtime's state holds, per parameter, its value then its two AdamW moments (m, v),
	// each 256-byte aligned
	m, v       []dptr
	acc        []dptr // the gradient accumulation buffer (allocAcc)
	scratch    dptr   // [0:8) dropout step (u64), [8:16) grad sum of squares (f64), [256:...) loss slots (f32)
	stepMirror uint64
	stepKnown  bool
	grads      []dptr                     // the gradient Apply reads
	programs   *lru[programKey, *program] // compiled training and evaluation programs
	acts       arena                      // the activation memory they share
	Device     string                     // the GPU's name
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
	rt, err := newGPURuntime(opt, t.ParamNames(), t.Rank)
	if err != nil {
		return nil, err
	}
	e := &Executor{gpuRuntime: rt, t: t, Device: rt.d.name}
	err = e.w.do(func() error {
		e.initPrograms(maxTrainPrograms)
		return e.upload()
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
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
	e.dropoutStep = e.scratch
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
	e.w.do(func() error {
		if e.programs != nil {
			e.programs.clear()
		}
		e.acts.release()
		if e.scratch != 0 {
			e.d.free(e.scratch)
		}
		if len(e.acc) > 0 {
			e.d.free(e.acc[0])
		}
		return nil
	})
	e.close()
	return nil
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
	if err := e.prepare(p, reuse, shared); err != nil {
		p.free(e.d)
		return nil, err
	}
	if cached {
		e.programs.add(key, p)
	}
	return p, nil
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
		if _, err := e.gradSumSq(); err != nil {
			return err
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
