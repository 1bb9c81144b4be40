//go:build mqacuda

package cuda

// GPU incremental decoding: an infer.Backend whose Steppers run the decode-step graph
// (models.BuildDecodeStep) on the runtime that the training executor also uses (runtime.go:
// plan, static memory layout, cuBLAS GEMMs, NVRTC kernels, CUDA-graph replay), over a K/V cache preallocated on the GPU as
// [rows, KVHeads, maxLen, HeadDim] per layer and K/V, into which the decode-attention kernel
// itself appends the step's rows. Cross-attention keys and values of a translation batch are
// computed once by the encoder graph on the GPU and repeated per beam on the GPU; beam
// reordering is a gather on the batch axis on the GPU. Steppers are infer.Rankers: infer's
// greedy, top-k sampling and beam searches get each row's k best tokens ranked on the GPU
// (k_topk), so per step only those come back (Step, which returns whole rows of logits, remains
// for other uses); the benchmark's device loop chooses the token on the GPU and returns nothing.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"mqa/infer"
	"mqa/layers"
	"mqa/layers/ops"
	"mqa/models"
)

// decoderKernels are the kernels the decoder launches outside any node: caches and memory
// for beams, the device's token choice and ranking, and the benchmark's fills and copies.
var decoderKernels = []string{"k_cache_gather4", "k_cache_gather2", "k_repeat_rows", "k_argmax_advance", "k_topk", "k_sample",
	"k_fill_hash_f32", "k_fill_hash_bf16", "k_copy4", "k_read4"}

// init registers the GPU decoder as infer's "cuda" backend (translate, generate and compare
// with -device cuda or -decode-device cuda).
func init() {
	infer.RegisterBackend("cuda", func(cfg models.Config, params *layers.Params, o infer.BackendOptions) (infer.Backend, error) {
		opt, err := BackendDecodeOptions(o)
		if err != nil {
			return nil, err
		}
		return NewDecoder(cfg, params, opt)
	})
}

// Decoder is the GPU infer.Backend of one model. Its parameters stay on the GPU; compiled
// decode steps (with their caches) are kept per (rows, capacity rounded up to 16, source
// length), at most maxPrograms of them. A Decoder and its Steppers are not safe for
// concurrent use, and a new Stepper of the same shape takes over the cache of the previous
// one (which then refuses to step).
type Decoder struct {
	Cfg    models.Config
	Opt    DecodeOptions
	Device string

	params   *layers.Params
	rt       *gpuRuntime
	progs    map[[3]int]*decodeProgram
	order    [][3]int
	encoders map[[2]int]*program
	stepActs arena // the activation memory of the compiled steps (their caches are their own)
	encActs  arena // the activation memory of the compiled encoders
	gen      int
	closed   bool
}

const maxPrograms = 6

// NewDecoder uploads the parameters and compiles the kernels.
func NewDecoder(cfg models.Config, params *layers.Params, opt DecodeOptions) (*Decoder, error) {
	if opt.Cache == "" {
		opt.Cache = "fp32"
	}
	if opt.Math == "" {
		opt.Math = "fp32"
	}
	if opt.Kernel == "" {
		opt.Kernel = "fast"
	}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt, err := newGPURuntime(Options{Math: opt.Math, Reuse: true, Memory: opt.Memory}, params.Names(), 0)
	if err != nil {
		return nil, err
	}
	rt.decKernel, rt.decSplits = opt.Kernel, opt.Splits
	dec := &Decoder{Cfg: cfg, Opt: opt, params: params, rt: rt, progs: map[[3]int]*decodeProgram{},
		encoders: map[[2]int]*program{}}
	err = rt.w.do(func() error {
		d := rt.d
		dec.stepActs = arena{mem: d, onMove: dec.dropSteps}
		dec.encActs = arena{mem: d, onMove: dec.dropEncoders}
		dec.Device = fmt.Sprintf("%s (sm_%d%d, %d SMs)", d.name, d.cc[0], d.cc[1], d.sms)
		return dec.uploadParams()
	})
	if err != nil {
		rt.close()
		return nil, err
	}
	return dec, nil
}

// uploadParams copies the parameters to the GPU, one block holding them all, with their bf16
// copies for BF16 GEMMs. Worker thread.
func (dec *Decoder) uploadParams() error {
	rt, d := dec.rt, dec.rt.d
	for _, n := range dec.rt.names {
		t := dec.params.Get(n)
		if _, ok := t.Data().([]float32); !ok {
			return fmt.Errorf("cuda decode: parameter %s is %v (float32 only)", n, t.Dtype())
		}
		rt.sizes = append(rt.sizes, t.Shape().TotalSize())
	}
	var err error
	if rt.state, rt.params, err = d.allocTensors(rt.sizes, 4, fmt.Sprintf("parameters (%d tensors)", len(dec.rt.names))); err != nil {
		return err
	}
	for i, n := range dec.rt.names {
		data := dec.params.Get(n).Data().([]float32)
		if err := d.upload(rt.params[i], unsafe.Pointer(&data[0]), 4*len(data)); err != nil {
			return err
		}
	}
	if err := rt.uploadHalf(); err != nil {
		return err
	}
	return d.sync()
}

// Config is the model's configuration.
func (dec *Decoder) Config() models.Config { return dec.Cfg }

// Close frees the GPU memory and the context.
func (dec *Decoder) Close() error {
	if dec.closed {
		return nil
	}
	dec.closed = true
	dec.rt.w.do(func() error {
		dec.dropPrograms()
		dec.stepActs.release()
		dec.encActs.release()
		return nil
	})
	dec.rt.close()
	return nil
}

// dropPrograms frees every compiled step and encoder (worker thread).
func (dec *Decoder) dropPrograms() {
	dec.dropSteps()
	dec.dropEncoders()
}

// dropSteps frees every compiled step with its caches; their Steppers then refuse to step.
func (dec *Decoder) dropSteps() {
	for _, dp := range dec.progs {
		dp.free(dec.rt.d)
	}
	dec.progs, dec.order = map[[3]int]*decodeProgram{}, nil
}

// dropEncoders frees every compiled encoder (each one's outputs are copied into its step's
// memory when a Translation starts, so none is in use between calls).
func (dec *Decoder) dropEncoders() {
	for _, p := range dec.encoders {
		p.free(dec.rt.d)
	}
	dec.encoders = map[[2]int]*program{}
}

// decodeProgram is a compiled decode step with its caches.
type decodeProgram struct {
	key                  [3]int
	p                    *program
	rows, maxLen, srcLen int
	elem                 int // bytes per cache element
	cacheK, cacheV       []dptr
	memK, memV           []dptr
	buf                  dptr // caches and memory, one allocation
	scratch              dptr // one layer's cache, for beam reorder
	parents              dptr // int32[rows]
	top                  dptr // StepTopK's ranking: int32 ids then float32 log-probabilities, rows·MaxTopK each
	parentsHost          []int32
	logits               dptr
	tokOff, posOff       int
	lenOff, srcOff       int
	stepGraph, loopGraph *cudaGraph
	runs                 int
	kernels              int // launches per step (GEMMs included)
	splits               int // splits of the self-attention
	owner                int // generation of the Stepper that owns the cache
	lens                 []int
}

func (dp *decodeProgram) free(d *driver) {
	for _, g := range []*cudaGraph{dp.stepGraph, dp.loopGraph} {
		if g != nil {
			g.destroy()
		}
	}
	dp.p.free(d)
	for _, x := range []dptr{dp.buf, dp.scratch, dp.parents, dp.top} {
		if x != 0 {
			d.free(x)
		}
	}
}

func (dec *Decoder) cacheElem() int {
	if dec.Opt.Cache == "bf16" {
		return 2
	}
	return 4
}

// CacheBytes is what a step program of rows × maxLen allocates for its caches and memory.
func (dec *Decoder) CacheBytes(rows, maxLen, srcLen int) int64 {
	c := dec.Cfg
	per := int64(2 * c.Layers * rows * c.KVHeads * c.HeadDim)
	return per*int64(maxLen)*int64(dec.cacheElem()) + per*int64(srcLen)*4
}

// stepProgram returns the compiled step for rows × capacity (× srcLen); worker thread.
func (dec *Decoder) stepProgram(rows, capacity, srcLen int) (*decodeProgram, error) {
	maxLen := min((capacity+15)/16*16, dec.Cfg.MaxLen)
	key := [3]int{rows, maxLen, srcLen}
	if dp, ok := dec.progs[key]; ok {
		return dp, nil
	}
	if len(dec.order) >= maxPrograms {
		old := dec.order[0]
		dec.order = dec.order[1:]
		dec.progs[old].free(dec.rt.d)
		delete(dec.progs, old)
	}
	g, err := models.BuildDecodeStep(dec.params, dec.Cfg, rows, maxLen, srcLen)
	if err != nil {
		return nil, err
	}
	plan, err := NewDecodePlan(g, dec.rt.names)
	if err != nil {
		return nil, err
	}
	dp := &decodeProgram{key: key, rows: rows, maxLen: maxLen, srcLen: srcLen, elem: dec.cacheElem(), lens: make([]int, rows),
		parentsHost: make([]int32, rows), owner: -1}
	if err := dec.planSplits(plan, dp); err != nil {
		return nil, err
	}
	dp.p = &program{plan: plan, extern: map[string]dptr{}, externBF16: map[string]bool{},
		desc: fmt.Sprintf("a decode step of %d rows × %d positions", rows, maxLen)}
	if err := dec.allocCaches(dp); err != nil {
		dp.free(dec.rt.d)
		return nil, err
	}
	if err := dec.rt.prepare(dp.p, true, &dec.stepActs); err != nil {
		dp.free(dec.rt.d)
		return nil, err
	}
	p := dp.p
	dp.logits = p.addr[plan.Keep[0]]
	dp.tokOff, dp.posOff, dp.lenOff = p.fedOff["tokens"], p.fedOff["positions"], p.fedOff["lengths"]
	dp.srcOff = -1
	if off, ok := p.fedOff["src_lens"]; ok {
		dp.srcOff = off
	}
	dec.progs[key] = dp
	dec.order = append(dec.order, key)
	return dp, nil
}

// planSplits sets the key-range splits of each decode attention of plan (and dp.splits, the
// self-attention's) as this GPU and the decoder's options plan them.
func (dec *Decoder) planSplits(plan *Plan, dp *decodeProgram) error {
	for i := range plan.Nodes {
		pn := &plan.Nodes[i]
		if pn.Kind != KDecodeAttention {
			continue
		}
		op := pn.Node.Op().(ops.DecodeAttention)
		keys := plan.Nodes[pn.In[1]].Shape[2]
		if op.HasNew {
			keys++
		}
		l, err := dec.rt.planDecode(op, dp.rows, keys, dec.Opt.Cache == "bf16") // the splits do not depend on the cache type
		if err != nil {
			return err
		}
		pn.Splits = l.Splits
		if op.HasNew {
			dp.splits = l.Splits
		}
	}
	return nil
}

// allocCaches allocates dp's K/V caches and cross-attention memory (one zeroed block, bound to
// its program's float inputs), the beam-reorder scratch, the beam parents and the token
// ranking. On failure the caller frees dp.
func (dec *Decoder) allocCaches(dp *decodeProgram) error {
	d, cfg, rows, maxLen := dec.rt.d, dec.Cfg, dp.rows, dp.maxLen
	// caches [L][K|V][rows, kv, maxLen, dk], then memory [L][K|V][rows, kv, srcLen, dk] (float32)
	L := cfg.Layers
	layerElems := rows * cfg.KVHeads * maxLen * cfg.HeadDim
	memElems := rows * cfg.KVHeads * dp.srcLen * cfg.HeadDim
	cacheBytes := align(int64(layerElems * dp.elem))
	memBytes := align(int64(4 * memElems))
	total := int64(2*L)*cacheBytes + int64(2*L)*memBytes
	what := fmt.Sprintf("K/V cache of %d rows × %d positions (%s)", rows, maxLen, dec.Opt.Cache)
	var err error
	if dp.buf, err = d.alloc(total, what); errors.Is(err, errOutOfMemory) && len(dec.progs) > 0 {
		// the kept steps' caches are in the way: drop them (their Steppers are done or will
		// say that they were taken over) and try once more
		dec.dropSteps()
		dp.buf, err = d.alloc(total, what)
	}
	if err != nil {
		return err
	}
	if dp.scratch, err = d.alloc(cacheBytes, "beam reorder scratch"); err != nil {
		return err
	}
	if dp.parents, err = d.alloc(int64(4*rows), "beam parents"); err != nil {
		return err
	}
	if dp.top, err = d.alloc(int64(8*rows*infer.MaxTopK), "token ranking"); err != nil {
		return err
	}
	off := dp.buf
	for l := 0; l < L; l++ {
		dp.cacheK = append(dp.cacheK, off)
		dp.cacheV = append(dp.cacheV, off.add(int(cacheBytes)))
		off = off.add(int(2 * cacheBytes))
		dp.p.extern[fmt.Sprintf("cache_k.%d", l)], dp.p.extern[fmt.Sprintf("cache_v.%d", l)] = dp.cacheK[l], dp.cacheV[l]
		if dp.elem == 2 {
			dp.p.externBF16[fmt.Sprintf("cache_k.%d", l)], dp.p.externBF16[fmt.Sprintf("cache_v.%d", l)] = true, true
		}
	}
	if dp.srcLen > 0 {
		for l := 0; l < L; l++ {
			dp.memK = append(dp.memK, off)
			dp.memV = append(dp.memV, off.add(int(memBytes)))
			off = off.add(int(2 * memBytes))
			dp.p.extern[fmt.Sprintf("mem_k.%d", l)], dp.p.extern[fmt.Sprintf("mem_v.%d", l)] = dp.memK[l], dp.memV[l]
		}
	}
	return d.zero(dp.buf, int(total))
}

// run issues one step: the captured graph once it exists, else the launches (capturing them
// on the second run when graphs are on). With loop, the step ends with the device's greedy
// choice, which becomes the next step's input (k_argmax_advance).
func (dec *Decoder) run(dp *decodeProgram, loop bool) error {
	d := dec.rt.d
	g := &dp.stepGraph
	if loop {
		g = &dp.loopGraph
	}
	if *g != nil {
		return d.launchGraph(*g)
	}
	launches := dp.p.steps
	if loop {
		fed := dp.p.fedDev
		tok, pos, lens := fed.add(4*dp.tokOff), fed.add(4*dp.posOff), fed.add(4*dp.lenOff)
		logits, vocab := dp.logits, int32(dec.Cfg.Vocab)
		launches = append(slices.Clip(launches), func() error {
			return d.launch("k_argmax_advance", [3]int{dp.rows, 1, 1}, [3]int{256, 1, 1}, 0, tok, pos, lens, logits, vocab)
		})
	}
	dp.runs++
	before := d.calls
	if err := d.replay(g, launches, dec.Opt.Graphs && dp.runs >= 2); err != nil {
		return err
	}
	dp.kernels = d.calls - before
	if loop {
		dp.kernels-- // k_argmax_advance
	}
	return nil
}

// stepper is the GPU infer.Stepper; it ranks tokens on the GPU (infer.Ranker).
type stepper struct {
	dec      *Decoder
	dp       *decodeProgram
	gen      int
	capacity int
}

var _ infer.Ranker = (*stepper)(nil)

func (dec *Decoder) newStepper(dp *decodeProgram, capacity int, srcLens []int) *stepper {
	dec.gen++
	dp.owner = dec.gen
	clear(dp.lens)
	s := &stepper{dec: dec, dp: dp, gen: dec.gen, capacity: capacity}
	if dp.srcOff >= 0 {
		for r, l := range srcLens {
			dp.p.fed[dp.srcOff+r] = int32(l)
		}
	}
	return s
}

// LM returns a Stepper over batch sequences of a language model.
func (dec *Decoder) LM(batch, capacity int) (infer.Stepper, error) {
	if dec.Cfg.Task != models.TaskLM {
		return nil, fmt.Errorf("decode: the model is a %q model, not a language model", dec.Cfg.Task)
	}
	if batch < 1 || capacity < 1 || capacity > dec.Cfg.MaxLen {
		return nil, fmt.Errorf("decode: batch %d and room for %d tokens per sequence; the model takes 1..%d (max_len)", batch, capacity, dec.Cfg.MaxLen)
	}
	var s *stepper
	err := dec.rt.w.do(func() error {
		dp, err := dec.stepProgram(batch, capacity, 0)
		if err != nil {
			return err
		}
		s = dec.newStepper(dp, capacity, nil)
		return nil
	})
	return s, err
}

// Translation encodes the sources on the GPU once and returns a Stepper over
// len(sources)·beams rows (row r decodes sources[r/beams]).
func (dec *Decoder) Translation(sources [][]int, beams, capacity int) (infer.Stepper, error) {
	cfg := dec.Cfg
	if cfg.Task != models.TaskTranslate {
		return nil, fmt.Errorf("decode: the model is a %q model, not a translation model", cfg.Task)
	}
	if len(sources) == 0 || beams < 1 {
		return nil, fmt.Errorf("decode: %d sources and beam size %d (both must be positive)", len(sources), beams)
	}
	if capacity < 1 || capacity > cfg.MaxLen {
		return nil, fmt.Errorf("decode: room for %d tokens per sequence; the model takes 1..%d (max_len)", capacity, cfg.MaxLen)
	}
	srcVocab := cfg.Vocab
	if cfg.SrcVocab > 0 {
		srcVocab = cfg.SrcVocab
	}
	srcLen := 0
	for i, s := range sources {
		if len(s) < 1 || len(s) > cfg.MaxLen {
			return nil, fmt.Errorf("decode: source %d has %d tokens; the model takes 1..%d (max_len)", i, len(s), cfg.MaxLen)
		}
		for _, t := range s {
			if t < 0 || t >= srcVocab {
				return nil, fmt.Errorf("decode: source %d has token %d outside the vocabulary of %d", i, t, srcVocab)
			}
		}
		srcLen = max(srcLen, len(s))
	}
	srcLen = min((srcLen+7)/8*8, cfg.MaxLen) // as the CPU backend: fewer shapes, padding masked
	var st *stepper
	err := dec.rt.w.do(func() error {
		enc, err := dec.encode(sources, srcLen)
		if err != nil {
			return err
		}
		rows := len(sources) * beams
		dp, err := dec.stepProgram(rows, capacity, srcLen)
		if err != nil {
			return err
		}
		d := dec.rt.d
		rowElems := int64(cfg.KVHeads * srcLen * cfg.HeadDim)
		n := int(rowElems) * rows
		for l := 0; l < cfg.Layers; l++ {
			mk, mv := enc.addr[enc.plan.Keep[l]], enc.addr[enc.plan.Keep[cfg.Layers+l]]
			if err := d.launch("k_repeat_rows", grid1(n, 256), blk256, 0, dp.memK[l], mk, rowElems, int32(rows), int32(beams)); err != nil {
				return err
			}
			if err := d.launch("k_repeat_rows", grid1(n, 256), blk256, 0, dp.memV[l], mv, rowElems, int32(rows), int32(beams)); err != nil {
				return err
			}
		}
		lens := make([]int, rows)
		for r := range lens {
			lens[r] = len(sources[r/beams])
		}
		st = dec.newStepper(dp, capacity, lens)
		return d.sync()
	})
	return st, err
}

// encode runs the encoder graph over the (padded) sources; its kept outputs are each decoder
// layer's cross-attention K then V [len(sources), kv, srcLen, dk]. Worker thread.
func (dec *Decoder) encode(sources [][]int, srcLen int) (*program, error) {
	key := [2]int{len(sources), srcLen}
	p, ok := dec.encoders[key]
	if !ok && len(dec.encoders) >= maxPrograms {
		dec.dropEncoders()
	}
	if !ok {
		g, err := models.BuildEncoder(dec.params, dec.Cfg, len(sources), srcLen)
		if err != nil {
			return nil, err
		}
		plan, err := NewEncoderPlan(g, dec.rt.names)
		if err != nil {
			return nil, err
		}
		p = &program{plan: plan, desc: fmt.Sprintf("an encoder batch of %d × %d", len(sources), srcLen)}
		if err := dec.rt.prepare(p, true, &dec.encActs); err != nil {
			p.free(dec.rt.d)
			return nil, err
		}
		dec.encoders[key] = p
	}
	src, lens := p.fed[p.fedOff["src"]:], p.fed[p.fedOff["src_lens"]:]
	for i, s := range sources {
		for j := 0; j < srcLen; j++ {
			t := int32(models.PadID)
			if j < len(s) {
				t = int32(s[j])
			}
			src[i*srcLen+j] = t
		}
		lens[i] = int32(len(s))
	}
	d := dec.rt.d
	if err := d.upload(p.fedDev, unsafe.Pointer(&p.fed[0]), 4*len(p.fed)); err != nil {
		return nil, err
	}
	for _, f := range p.steps {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (s *stepper) Batch() int    { return s.dp.rows }
func (s *stepper) Vocab() int    { return s.dec.Cfg.Vocab }
func (s *stepper) Capacity() int { return s.capacity }

func (s *stepper) check() error {
	if s.dec.closed {
		return fmt.Errorf("decode: the GPU decoder is closed")
	}
	if s.dp.owner != s.gen {
		return fmt.Errorf("decode: this GPU stepper's cache was taken over by a newer stepper of the same shape")
	}
	if s.dec.progs[s.dp.key] != s.dp {
		return fmt.Errorf("decode: this GPU stepper's cache was freed (a newer stepper of another shape needed the memory, or more shapes were in use than the decoder keeps)")
	}
	return nil
}

// stage validates tokens and writes the step's inputs into the host staging; it returns which
// rows take a token.
func (s *stepper) stage(tokens []int) ([]bool, error) {
	dp := s.dp
	if len(tokens) != dp.rows {
		return nil, fmt.Errorf("decode: %d tokens for %d sequences", len(tokens), dp.rows)
	}
	active := make([]bool, dp.rows)
	fed := dp.p.fed
	for b, t := range tokens {
		if t < 0 {
			fed[dp.tokOff+b], fed[dp.posOff+b], fed[dp.lenOff+b] = int32(models.PadID), 0, -1
			continue
		}
		if t >= s.dec.Cfg.Vocab {
			return nil, fmt.Errorf("decode: token %d of sequence %d is outside the vocabulary of %d", t, b, s.dec.Cfg.Vocab)
		}
		if dp.lens[b] >= s.capacity {
			return nil, fmt.Errorf("decode: sequence %d already holds %d tokens, the most it can take", b, s.capacity)
		}
		active[b] = true
		fed[dp.tokOff+b], fed[dp.posOff+b], fed[dp.lenOff+b] = int32(t), int32(dp.lens[b]), int32(dp.lens[b])
	}
	return active, nil
}

// run feeds one token per row (staged, uploaded) and runs the step graph, choosing each
// row's next token on the GPU when argmax is set; it returns the rows that took a token.
// The caller reads the results and then calls advance. It runs on the context's thread.
func (s *stepper) run(tokens []int, argmax bool) ([]bool, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	active, err := s.stage(tokens)
	if err != nil {
		return nil, err
	}
	dp, d := s.dp, s.dec.rt.d
	if err := d.upload(dp.p.fedDev, unsafe.Pointer(&dp.p.fed[0]), 4*len(dp.p.fed)); err != nil {
		return nil, err
	}
	return active, s.dec.run(dp, argmax)
}

// advance counts the token just fed to every active row.
func (s *stepper) advance(active []bool) {
	for b, a := range active {
		if a {
			s.dp.lens[b]++
		}
	}
}

// Step feeds one token per row and returns the logits [rows·vocab].
func (s *stepper) Step(tokens []int) ([]float32, error) {
	var logits []float32
	err := s.dec.rt.w.do(func() error {
		active, err := s.run(tokens, false)
		if err != nil {
			return err
		}
		logits = make([]float32, s.dp.rows*s.dec.Cfg.Vocab)
		if err := s.dec.rt.d.download(unsafe.Pointer(&logits[0]), s.dp.logits, 4*len(logits)); err != nil {
			return err
		}
		s.advance(active)
		return nil
	})
	return logits, err
}

// StepTopK feeds one token per row and returns each row's k most likely next tokens with
// their log-probabilities (infer.Ranker), ranked on the GPU by k_topk: only 8·k bytes per row
// come back instead of the row's logits.
func (s *stepper) StepTopK(tokens []int, k int) ([]int, []float32, error) {
	vocab := s.dec.Cfg.Vocab
	if k < 1 || k > min(infer.MaxTopK, vocab) {
		return nil, nil, fmt.Errorf("decode: %d candidates per row; 1..%d can be ranked", k, min(infer.MaxTopK, vocab))
	}
	var ids []int
	var logp []float32
	err := s.dec.rt.w.do(func() error {
		active, err := s.run(tokens, false)
		if err != nil {
			return err
		}
		dp, d := s.dp, s.dec.rt.d
		n := dp.rows * k
		if err := d.launch("k_topk", [3]int{dp.rows, 1, 1}, blk256, 0, dp.top, dp.top.add(4*n), dp.logits, int32(vocab), int32(k)); err != nil {
			return err
		}
		got := make([]int32, 2*n) // ids, then the log-probabilities' bits
		if err := d.download(unsafe.Pointer(&got[0]), dp.top, 8*n); err != nil {
			return err
		}
		ids, logp = make([]int, n), make([]float32, n)
		for i := range n {
			ids[i], logp[i] = int(got[i]), math.Float32frombits(uint32(got[n+i]))
			if b := i / k; active[b] && (ids[i] < 0 || ids[i] >= vocab) {
				return fmt.Errorf("decode: row %d has fewer than %d ranked logits (NaN in the model's output)", b, k)
			}
		}
		s.advance(active)
		return nil
	})
	return ids, logp, err
}

var _ infer.Sampler = (*stepper)(nil)

// StepSample feeds one token per row and draws each row's next token on the GPU (infer.Sampler)
// with k_sample, which walks the row's probabilities in id order to u[b] of their total: the u
// go up and one token per row comes back.
func (s *stepper) StepSample(tokens []int, temperature float64, u []float64) ([]int, error) {
	if !(temperature > 0) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("decode: sampling temperature %g must be a finite number > 0", temperature)
	}
	var ids []int
	err := s.dec.rt.w.do(func() error {
		dp, d := s.dp, s.dec.rt.d
		if len(u) != dp.rows {
			return fmt.Errorf("decode: %d uniform numbers for %d sequences", len(u), dp.rows)
		}
		active, err := s.run(tokens, false)
		if err != nil {
			return err
		}
		// dp.top (8·MaxTopK bytes per row) holds the u, then the drawn ids
		drawn := dp.top.add(8 * dp.rows)
		if err := d.upload(dp.top, unsafe.Pointer(&u[0]), 8*dp.rows); err != nil {
			return err
		}
		if err := d.launch("k_sample", [3]int{dp.rows, 1, 1}, blk256, 0, drawn, dp.logits, dp.top, int32(s.dec.Cfg.Vocab), temperature); err != nil {
			return err
		}
		got := make([]int32, dp.rows)
		if err := d.download(unsafe.Pointer(&got[0]), drawn, 4*dp.rows); err != nil {
			return err
		}
		ids = make([]int, dp.rows)
		for b, id := range got {
			ids[b] = int(id)
		}
		s.advance(active)
		return nil
	})
	return ids, err
}

// Reorder makes row b a copy of row parents[b] (beam search): for each layer's K and V a
// gather on the batch axis into a scratch layer and back, over the filled positions only.
func (s *stepper) Reorder(parents []int) error {
	return s.dec.rt.w.do(func() error {
		if err := s.check(); err != nil {
			return err
		}
		dp, d := s.dp, s.dec.rt.d
		if len(parents) != dp.rows {
			return fmt.Errorf("decode: %d parents for %d sequences", len(parents), dp.rows)
		}
		identity := true
		filled := 0
		lens := make([]int, dp.rows)
		for b, p := range parents {
			if p < 0 || p >= dp.rows {
				return fmt.Errorf("decode: parent %d of sequence %d is outside 0..%d", p, b, dp.rows-1)
			}
			identity = identity && p == b
			lens[b] = dp.lens[p]
			filled = max(filled, lens[b])
			dp.parentsHost[b] = int32(p)
		}
		if identity {
			return nil
		}
		copy(dp.lens, lens)
		if filled == 0 {
			return nil
		}
		if err := d.upload(dp.parents, unsafe.Pointer(&dp.parentsHost[0]), 4*dp.rows); err != nil {
			return err
		}
		cfg := s.dec.Cfg
		name := "k_cache_gather4"
		if dp.elem == 2 {
			name = "k_cache_gather2"
		}
		// one block row per (sequence, K/V head): its filled rows are one contiguous run
		words := (filled*cfg.HeadDim*dp.elem + 15) / 16
		grid := [3]int{dp.rows * cfg.KVHeads, min((words+255)/256, 32), 1}
		for l := 0; l < cfg.Layers; l++ {
			for _, c := range []dptr{dp.cacheK[l], dp.cacheV[l]} {
				if err := d.launch(name, grid, blk256, 0, dp.scratch, c, dp.parents, int32(cfg.KVHeads), int32(dp.maxLen), int32(cfg.HeadDim), int32(filled)); err != nil {
					return err
				}
				if err := d.launch(name, grid, blk256, 0, c, dp.scratch, dptr(0), int32(cfg.KVHeads), int32(dp.maxLen), int32(cfg.HeadDim), int32(filled)); err != nil {
					return err
				}
			}
		}
		return d.sync() // parentsHost must not change before the copy is done
	})
}
